"""Dependencies point one way: imagefmt <- registry, imagefmt <- runtime <- builder; engine may
import all four, commands those and engine; nothing imports cli, only cli imports commands."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OURS = {"imagefmt", "registry", "runtime", "builder", "engine", "commands", "cli"}
MAY_IMPORT = {
    "imagefmt": set(),
    "registry": {"imagefmt"},
    "runtime": {"imagefmt"},
    "builder": {"imagefmt", "runtime"},
    "engine": {"imagefmt", "registry", "runtime", "builder"},
    "commands": {"imagefmt", "registry", "runtime", "builder", "engine"},
    "cli": OURS - {"cli"},
}
ONLY_IN = {
    "flask": {"registry"},
    "dockerfile_parse": {"builder"},
    "tqdm": {"cli", "commands"},
    "gunicorn": {"registry"},
}


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_layering() -> None:
    problems = []
    for package, allowed in MAY_IMPORT.items():
        files = [REPO / "cli.py"] if package == "cli" else sorted((REPO / package).rglob("*.py"))
        for f in files:
            for name in imports_of(f):
                if name in OURS and name != package and name not in allowed:
                    problems.append(f"{f.relative_to(REPO)} imports {name}")
                if name in ONLY_IN and package not in ONLY_IN[name]:
                    problems.append(f"{f.relative_to(REPO)} imports {name} (only {ONLY_IN[name]} may)")
    assert problems == []
