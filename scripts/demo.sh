#!/bin/bash
# The main job on a fresh machine: set up, make the busybox base image from Debian's
# busybox-static, run it, serve a registry on port 5000, push the image to it, remove it
# locally and pull it back, then run the pulled copy.
# Uses its own store (DOCKYARD_ROOT, default /tmp/dockyard-demo) so it never touches yours.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export DOCKYARD_ROOT=${DOCKYARD_ROOT:-/tmp/dockyard-demo}
dy() { echo "+ dockyard $*" >&2; .venv/bin/dockyard "$@"; }

tar=$(fixtures/make-busybox-rootfs.sh)
dy import -c 'CMD ["sh"]' "$tar" busybox:latest
dy images
dy run --rm busybox echo "hello from a dockyard container"

# build the example app (two stages, busybox httpd) and fetch its page from inside it
dy build -t dockyard-example:latest --build-arg VERSION=demo fixtures/example
dy build -t dockyard-example:latest --build-arg VERSION=demo fixtures/example | grep -c "Using cache"
dy history dockyard-example:latest
dy run --rm dockyard-example sh -c 'httpd -p 8080 -h /var/www && wget -qO- http://127.0.0.1:8080/ | grep "<h1>"'

if ! curl -sf http://127.0.0.1:5000/v2/ >/dev/null; then
  mkdir -p "$DOCKYARD_ROOT/registry"
  .venv/bin/dockyard registry serve --addr 127.0.0.1:5000 --root "$DOCKYARD_ROOT/registry" \
    > "$DOCKYARD_ROOT/registry.log" 2>&1 &
  echo $! > "$DOCKYARD_ROOT/registry.pid"
  for _ in $(seq 50); do curl -sf http://127.0.0.1:5000/v2/ >/dev/null && break; sleep 0.1; done
  echo "registry: pid $(cat "$DOCKYARD_ROOT/registry.pid") on 127.0.0.1:5000 (stop: kill \$(cat $DOCKYARD_ROOT/registry.pid))"
fi
curl -si http://127.0.0.1:5000/v2/ | head -1

dy tag busybox localhost:5000/demo/busybox:latest
dy push localhost:5000/demo/busybox:latest
dy rmi localhost:5000/demo/busybox:latest
dy pull localhost:5000/demo/busybox:latest
dy run --rm localhost:5000/demo/busybox:latest sh -c 'echo pulled image runs: $(busybox | head -1)'
echo "demo: ok"
