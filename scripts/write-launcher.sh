#!/bin/bash
# Write the `dockyard` command to DEST for PYTHON (a venv's interpreter, absolute) and this
# checkout: `PYTHON -S`, then the two directories the site module would have put on sys.path
# (the venv's site-packages and, as the editable install's .pth does, the checkout).  Skipping
# site saves 3-4 ms of every command, a twentieth of a container start (docs/benchmarks.md).
# Usage: scripts/write-launcher.sh PYTHON DEST.  Rewrites DEST only when it differs.
set -euo pipefail
python=$1 dest=$2
repo=$(cd "$(dirname "$0")/.." && pwd)
"$python" - "$python" "$dest" "$repo" <<'PY'
import os
import sys
import sysconfig

python, dest, repo = sys.argv[1:]
paths = [*dict.fromkeys(sysconfig.get_path(k) for k in ("purelib", "platlib")), repo]
text = f"""#!{python} -S
# The dockyard command, written by scripts/write-launcher.sh (in place of pip's console
# script): -S skips the site module; these are the directories it would have added.
import sys

sys.path += {paths!r}
from cli import entry

entry()
"""
try:
    with open(dest) as f:
        if f.read() == text:
            sys.exit(0)
except OSError:
    pass
with open(dest + ".tmp", "w") as f:
    f.write(text)
os.chmod(dest + ".tmp", 0o755)
os.replace(dest + ".tmp", dest)
PY
