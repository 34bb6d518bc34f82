#!/bin/bash
# Stop the Ceph cluster scripts/start-s3.sh started: its daemons by the PIDs in their PID
# files (radosgw first, the monitor last), then remove its state directory.
set -uo pipefail
DIR=${DOCKYARD_S3_DIR:-/tmp/dockyard-s3}
[ -d "$DIR" ] || exit 0
for d in rgw osd mgr mon; do
  f=$DIR/run/$d.pid
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || continue
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
done
rm -rf "$DIR"
