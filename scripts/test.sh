#!/bin/bash
# Run the whole test suite: set up (idempotent), lint, type-check, then pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k store -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/mypy .
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=25 "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "pytest collected no tests: that is a failure" >&2; exit 1; fi
exit $rc
