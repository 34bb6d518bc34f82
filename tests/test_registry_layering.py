"""registry/ imports only imagefmt of ours, and only the libraries the issue allows.
Its two sides meet in protocol.py alone: registry.client never reaches
registry.server, nor the server the client; protocol.py imports neither and no web
framework; storage knows no HTTP.  Relative imports count as the absolute ones."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = ROOT / "registry"
OURS = {"imagefmt", "registry", "runtime", "builder", "cli", "tests", "bench", "support"}
# urllib3 comes with requests: the client catches its stream errors (requests maps them
# only in iter_content, which would also undo a Content-Encoding and so break digests).
SERVER_LIBRARIES = {
    "flask",
    "werkzeug",
    "gunicorn",
    "bcrypt",
    "cryptography",
    "requests",
}  # requests: webhooks
CLIENT_LIBRARIES = {"requests", "urllib3"}
WEB = {"flask", "werkzeug", "gunicorn", "requests", "urllib3"}


def module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The full dotted names ``path`` imports (``from a.b import c`` gives a.b and
    a.b.c), relative imports resolved against its package."""
    package = module_of(path) if path.name == "__init__.py" else module_of(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}
    return found


def tops(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def files(sub: str = "") -> list[Path]:
    return sorted((REGISTRY / sub).rglob("*.py"))


def test_registry_imports() -> None:
    for path in files():
        names = tops(imports(path)) - {"__future__"}
        ours = names & OURS
        assert ours <= {"imagefmt", "registry"}, f"{path.relative_to(ROOT)} imports {ours}"
        third_party = names - OURS - set(sys.stdlib_module_names)
        assert third_party <= SERVER_LIBRARIES | CLIENT_LIBRARIES, f"{path.name} imports {third_party}"


def test_client_and_server_meet_only_in_protocol() -> None:
    for side, other in (("client", "server"), ("server", "client")):
        for path in files(side):
            reached = {
                n for n in imports(path) if n == f"registry.{other}" or n.startswith(f"registry.{other}.")
            }
            assert not reached, f"{path.relative_to(ROOT)} imports {sorted(reached)}"
            shared = {
                n for n in imports(path) if n.startswith("registry.") and not n.startswith(f"registry.{side}")
            }
            assert shared <= {"registry.protocol"} | {f"registry.protocol.{x}" for x in _protocol_names()}, (
                f"{path.relative_to(ROOT)} imports {sorted(shared)}"
            )
    libraries = {"client": CLIENT_LIBRARIES, "server": SERVER_LIBRARIES}
    for side, allowed in libraries.items():
        for path in files(side):
            third_party = tops(imports(path)) - OURS - set(sys.stdlib_module_names) - {"__future__"}
            assert third_party <= allowed, f"{path.relative_to(ROOT)} imports {third_party}"


def _protocol_names() -> set[str]:
    tree = ast.parse((REGISTRY / "protocol.py").read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def test_protocol_is_framework_free() -> None:
    names = imports(REGISTRY / "protocol.py")
    assert not tops(names) & WEB
    assert not {n for n in names if n.startswith("registry")}  # the meeting point depends on neither side
    storage = [*files("server/storage"), REGISTRY / "server" / "uploads.py", REGISTRY / "server" / "gc.py"]
    for path in storage:
        assert not tops(imports(path)) & WEB, f"{path.relative_to(ROOT)}: storage knows no HTTP"
