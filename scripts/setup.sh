#!/bin/bash
# Install everything dockyard and its tests need on a fresh Debian 12 machine (run as root):
# the peers and tools from apt, and a project venv (.venv) with dockyard installed in it.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
# qemu-user-static: another CPU's RUN steps and containers (build/run --platform linux/arm64)
# ceph-* and radosgw: the S3 the registry's s3 driver is tested on (scripts/start-s3.sh starts it when a test needs it)
PKGS=(skopeo docker-registry busybox-static umoci docker.io runc tmux iproute2 curl python3-venv
      ceph-mon ceph-mgr ceph-osd radosgw ceph-common uuid-runtime qemu-user-static
      docker-compose podman)  # the API service's tests and bench drive compose; podman is its bench peer
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The venv runs on Debian's /usr/bin/python3, not the first python3 on PATH (pyenv's on these
# machines): Debian's is a static executable built with optimizations, and runs every
# command ~10% faster than pyenv's --enable-shared build (docs/benchmarks.md, Container start).
PYTHON=/usr/bin/python3
if [ -x .venv/bin/python ] && ! grep -qx "home = $(dirname "$PYTHON")" .venv/pyvenv.cfg; then
  echo "setup: .venv was made by another interpreter; making it again with $PYTHON"
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c 'import cli, imagefmt, pytest, ruff' >/dev/null 2>&1 \
   || [ pyproject.toml -nt .venv/.installed ]; then
  echo "setup: pip install -e .[test]"
  # compat mode: a plain .pth path entry, cheaper at start-up than the import-hook finder
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
  touch .venv/.installed
fi
# The dockyard command without the site module (3-4 ms of each command; see the script)
scripts/write-launcher.sh "$PWD/.venv/bin/python" .venv/bin/dockyard
# Byte-compile our modules: where PYTHONDONTWRITEBYTECODE is set, every command would
# otherwise recompile them (it doubles the start-up of `dockyard run`).
.venv/bin/python -m compileall -q cli.py imagefmt registry runtime builder engine api commands
fixtures/make-busybox-rootfs.sh >/dev/null
# busybox for arm64, for the multi-platform tests (downloaded here: tests reach only loopback)
BUSYBOX_ARCH=arm64 fixtures/make-busybox-rootfs.sh >/dev/null \
  || { apt-get update -qq && BUSYBOX_ARCH=arm64 fixtures/make-busybox-rootfs.sh >/dev/null; } \
  || echo "setup: no busybox for arm64: tests/test_multiplatform.py will skip" >&2
echo "setup: ok ($(.venv/bin/dockyard --version))"
