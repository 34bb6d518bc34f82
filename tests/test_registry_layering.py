"""registry/ imports only imagefmt of ours, and only the libraries the issue allows;
protocol.py, shared with the future client, imports no web framework."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = {"imagefmt", "registry", "runtime", "builder", "cli", "tests", "bench", "support"}
# urllib3 comes with requests: the client catches its stream errors (requests maps them
# only in iter_content, which would also undo a Content-Encoding and so break digests).
ALLOWED_LIBRARIES = {"flask", "werkzeug", "gunicorn", "bcrypt", "cryptography", "requests", "urllib3"}


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_registry_imports() -> None:
    for path in sorted((ROOT / "registry").glob("*.py")):
        names = imports(path) - {"__future__"}
        ours = names & OURS
        assert ours <= {"imagefmt", "registry"}, f"{path.name} imports {ours}"
        third_party = names - OURS - set(sys.stdlib_module_names)
        assert third_party <= ALLOWED_LIBRARIES, f"{path.name} imports {third_party}"


def test_protocol_is_framework_free() -> None:
    names = imports(ROOT / "registry" / "protocol.py")
    assert not names & {"flask", "werkzeug", "gunicorn", "requests"}
    storage = imports(ROOT / "registry" / "storage.py") | imports(ROOT / "registry" / "uploads.py")
    assert not storage & {"flask", "werkzeug", "gunicorn", "requests"}  # storage knows no HTTP
