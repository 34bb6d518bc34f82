"""The layering, enforced as go-containerregistry's depcheck_test.go does.

Dependencies point one way: imagefmt <- registry, imagefmt <- runtime <- builder;
engine may import those four, api engine and the four, commands api and the rest, cli commands; nothing
imports cli, and only cli imports commands.  Inside registry, the client and the
server meet in registry.protocol alone; the builder reaches the runtime only through
runtime.sandbox, runtime.spec and runtime.errors.  Every third-party library enters
through the modules listed for it.  No module imports itself back through others of
its package when it runs.

Our packages are read from pyproject.toml (what gets installed), plus the test-only
trees; a directory of Python code that is neither is an unknown package and fails.
Every import counts: function-local ones, those under TYPE_CHECKING and relative ones
(resolved against their package).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST_ONLY = {"tests", "bench", "support"}  # never installed; they may import anything of ours

# importer (a package or module; the longest matching prefix rules) -> what it may import of ours
MAY_IMPORT: dict[str, set[str]] = {
    "imagefmt": set(),
    "registry": {"imagefmt"},
    "registry.protocol": {"imagefmt"},
    "registry.client": {"imagefmt", "registry.protocol"},
    "registry.server": {"imagefmt", "registry.protocol"},
    "runtime": {"imagefmt"},
    "builder": {"imagefmt", "runtime.sandbox", "runtime.spec", "runtime.errors"},
    "engine": {"imagefmt", "registry", "runtime", "builder"},
    "api": {"imagefmt", "registry", "runtime", "builder", "engine"},
    "commands": {"imagefmt", "registry", "runtime", "builder", "engine", "api"},
    "cli": {"imagefmt", "registry", "runtime", "builder", "engine", "commands"},
}

# third-party library -> the only modules (or packages) that may import it
CONFINED: dict[str, set[str]] = {
    "flask": {"registry.server"},
    "werkzeug": {"registry.server"},
    "gunicorn": {"registry.server.serve", "registry.server.worker", "registry.server.bodies"},
    "bcrypt": {"registry.server.htpasswd", "registry.server.auth"},
    "cryptography": {"registry.server.auth", "registry.server.certs"},
    "requests": {"registry.client", "registry.server.notifications", "registry.fetch"},
    "urllib3": {"registry.client", "registry.fetch"},
    "boto3": {"registry.server.storage.s3"},
    "botocore": {"registry.server.storage.s3"},
    "dockerfile_parse": {"builder"},
    "tqdm": {"commands.progress"},
    "isal": {"imagefmt.compress"},
    "zstandard": {"imagefmt.compress"},
}


@cache
def installed() -> frozenset[str]:
    """The top-level packages and modules pyproject.toml installs."""
    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    names = set(setup.get("py-modules", []))
    packages = setup.get("packages", [])
    if isinstance(packages, dict):  # packages.find = {include = ["name*", ...]}
        names |= {re.sub(r"[.*].*", "", p) for p in packages["find"]["include"]}
    else:
        names |= {p.split(".")[0] for p in packages}
    return frozenset(names)


def ours() -> set[str]:
    return set(installed()) | TEST_ONLY


def module_of(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> Iterator[Path]:
    for top in sorted(installed()):
        if (REPO / f"{top}.py").is_file():
            yield REPO / f"{top}.py"
        else:
            yield from sorted((REPO / top).rglob("*.py"))


@cache
def is_module(name: str) -> bool:
    path = REPO / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def type_only(tree: ast.AST) -> set[int]:
    """The ids of the nodes under ``if TYPE_CHECKING:``: imports that never run."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def imports(path: Path, run_time: bool = False) -> set[str]:
    """The dotted names ``path`` imports, each the module it reaches: ``from a.b import c``
    gives a.b.c when c is a module of ours, else a.b; relative imports resolved.
    ``run_time``: only the imports that execute (not those for the type checker)."""
    module = module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    skip = type_only(tree) if run_time else set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                full = f"{source}.{alias.name}"
                found.add(full if is_module(full) else source)
    found.discard("__future__")
    return found


def rule_for(module: str, table: dict[str, set[str]]) -> str | None:
    """The longest key of ``table`` that is ``module`` or a package holding it."""
    keys = [k for k in table if module == k or module.startswith(k + ".")]
    return max(keys, key=len) if keys else None


def within(name: str, prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_every_package_is_known() -> None:
    """A new top-level package must be declared in pyproject.toml (or be test-only)."""
    unknown = []
    for child in sorted(REPO.iterdir()):
        if child.name.startswith(".") or child.name in ("build", "fixtures", "scripts", "docs"):
            continue
        code = child.suffix == ".py" or (child.is_dir() and any(child.glob("*.py")))
        name = child.stem if child.suffix == ".py" else child.name
        if code and name not in ours():
            unknown.append(child.name)
    assert unknown == [], f"not in pyproject.toml's packages: {unknown}"


def test_layering() -> None:
    problems = []
    for path in source_files():
        module = module_of(path)
        top = module.split(".")[0]
        allowed = MAY_IMPORT[rule_for(module, MAY_IMPORT) or top]
        for name in sorted(imports(path)):
            first = name.split(".")[0]
            if first in TEST_ONLY:
                problems.append(f"{module} imports {name}: tests, bench and support are not installed")
            elif first in ours() and first != top and not within(name, allowed):
                problems.append(f"{module} imports {name}")
            elif first == top and (rule := rule_for(module, MAY_IMPORT)) and rule != top:
                # inside a package with sub-rules (registry): a side reaches only itself and what it may
                side = rule_for(name, MAY_IMPORT)
                if side not in (None, top, rule) and not within(name, allowed):
                    problems.append(f"{module} imports {name}")
    assert not problems, "\n".join(problems)


def test_third_party_libraries_are_confined() -> None:
    stdlib = set(sys.stdlib_module_names)
    problems = []
    for path in source_files():
        module = module_of(path)
        for name in sorted(imports(path)):
            first = name.split(".")[0]
            if first in stdlib or first in ours():
                continue
            if first not in CONFINED:
                problems.append(f"{module} imports {first}, a library with no entry in CONFINED")
            elif not within(module, CONFINED[first]):
                problems.append(f"{module} imports {first} (only {sorted(CONFINED[first])} may)")
    assert not problems, "\n".join(problems)


def test_no_import_loop_inside_a_package() -> None:
    """Imports that run, function-local ones included; a module may name another's type
    for the checker (``if TYPE_CHECKING:``), which never imports it."""
    graph: dict[str, set[str]] = {}
    for path in source_files():
        module = module_of(path)
        top = module.split(".")[0]
        graph[module] = {
            n for n in imports(path, run_time=True) if n.split(".")[0] == top and is_module(n) and n != module
        }
    loops = loops_in(graph)
    assert not loops, "\n".join(loops)


def loops_in(graph: dict[str, set[str]]) -> list[str]:
    """Every cycle a depth-first walk of ``graph`` meets, as ``a -> b -> a``."""
    loops = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                loops.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return loops


def test_no_two_classes_share_a_name() -> None:
    """A class name says which one is meant (no two ``Client``, ``Cancelled``...):
    among the installed code, every public class name is defined once."""
    where: dict[str, list[str]] = {}
    for path in source_files():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                where.setdefault(node.name, []).append(module_of(path))
    assert {n: m for n, m in where.items() if len(m) > 1} == {}


def test_protocol_and_storage_know_no_http() -> None:
    web = {"flask", "werkzeug", "gunicorn", "requests", "urllib3"}
    protocol = imports(REPO / "registry" / "protocol.py")
    assert not {n.split(".")[0] for n in protocol} & web
    assert not {n for n in protocol if n.startswith("registry")}  # the meeting point depends on neither side
    storage = [*(REPO / "registry/server/storage").rglob("*.py")]
    storage += [REPO / "registry/server/uploads.py", REPO / "registry/server/gc.py"]
    for path in storage:
        assert not {n.split(".")[0] for n in imports(path)} & web, f"{module_of(path)}: storage knows no HTTP"


def test_the_checks_see_what_they_must() -> None:
    """The walker itself: relative imports resolve, a module imported by name is found."""
    found = imports(REPO / "registry" / "client" / "push.py")
    assert any(n.startswith("registry.client.") for n in found)
    assert "registry.protocol" in {n for n in imports(REPO / "registry" / "client" / "remote.py")}
    assert {"imagefmt", "registry", "runtime", "builder", "engine", "commands", "cli"} <= installed()
    assert loops_in({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]
    assert rule_for("registry.client.push", MAY_IMPORT) == "registry.client"
