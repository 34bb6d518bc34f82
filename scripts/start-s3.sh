#!/bin/bash
# Start a single-node Ceph cluster serving S3 (radosgw) on 127.0.0.1, for the S3 storage
# driver's tests, benchmarks and the demo: 1 mon, 1 mgr, 1 bluestore OSD on a sparse file,
# 1 radosgw (path-style, signature v4, region us-east-1), a user and a bucket.
#
#   scripts/start-s3.sh            install (apt) if needed, start if not running; prints the endpoint
#   eval "$(scripts/start-s3.sh --env)"   the same, then export S3_ENDPOINT, S3_REGION, S3_BUCKET,
#                                  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and unset AWS_CA_BUNDLE)
#   scripts/stop-s3.sh             stop the daemons by their PIDs and remove the state
#
# Everything lives under one directory, $DOCKYARD_S3_DIR (default /tmp/dockyard-s3): the
# config, the daemons' data, logs, PID files and env.sh.  Idempotent: when radosgw answers
# already, only the env is printed; a half-dead cluster is stopped and made again (~10 s).
# Ports: $DOCKYARD_S3_PORT (radosgw, 7480) and $DOCKYARD_S3_MON_PORT (the monitor, 6790).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${DOCKYARD_S3_DIR:-/tmp/dockyard-s3}
PORT=${DOCKYARD_S3_PORT:-7480}
MON_PORT=${DOCKYARD_S3_MON_PORT:-6790}
BUCKET=${DOCKYARD_S3_BUCKET:-dockyard}
ACCESS=dockyardaccesskey
SECRET=dockyardsecretkey0123456789
ENV_ONLY=0
[ "${1:-}" = "--env" ] && ENV_ONLY=1
log() { echo "start-s3: $*" >&2; }
trap 'log "failed (logs in $DIR/log)"' ERR

PKGS=(ceph-mon ceph-mgr ceph-osd radosgw ceph-common uuid-runtime curl)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

answers() {  # radosgw answers an anonymous request
  curl -s -o /dev/null -m 2 "http://127.0.0.1:$PORT/" 2>/dev/null
}
alive() {
  for d in mon mgr osd rgw; do
    [ -f "$DIR/run/$d.pid" ] && kill -0 "$(cat "$DIR/run/$d.pid")" 2>/dev/null || return 1
  done
  answers
}

print_env() {
  cat "$DIR/env.sh"
  [ "$ENV_ONLY" = 1 ] || log "radosgw on http://127.0.0.1:$PORT, bucket $BUCKET (state in $DIR)"
}

if alive; then print_env; exit 0; fi
if [ -d "$DIR" ]; then
  log "restarting: a previous cluster in $DIR is not whole"
  scripts/stop-s3.sh >&2
fi

mkdir -p "$DIR"/{run,log,mon,mgr,osd,rgw}
FSID=$(uuidgen)
cat >"$DIR/ceph.conf" <<EOF
[global]
fsid = $FSID
mon host = v1:127.0.0.1:$MON_PORT
mon initial members = a
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
keyring = $DIR/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd pool default pg num = 4
osd pool default pgp num = 4
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
paxos propose interval = 0.01
paxos min wait = 0.001
mon osd reporter subtree level = osd
auth allow insecure global id reclaim = false
mon max pg per osd = 1000
ms bind msgr2 = false
[mon]
pid file = $DIR/run/mon.pid
mon data = $DIR/mon
[mgr]
pid file = $DIR/run/mgr.pid
mgr data = $DIR/mgr
mgr disabled modules = dashboard prometheus restful
[osd]
pid file = $DIR/run/osd.pid
osd data = $DIR/osd
osd objectstore = bluestore
bluestore block path = $DIR/osd.block
bluestore block create = true
bluestore block size = 21474836480
bluestore block db create = false
bluestore block wal create = false
bluestore fsck on mount = false
osd memory target = 939524096
bluestore cache autotune = false
bluestore cache size = 268435456
osd op num threads per shard = 1
[client.rgw]
pid file = $DIR/run/rgw.pid
rgw frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
rgw data = $DIR/rgw
rgw dns name = localhost
rgw enable usage log = false
rgw thread pool size = 64
EOF
export CEPH_CONF=$DIR/ceph.conf
ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
monmaptool --create --fsid "$FSID" --add a "v1:127.0.0.1:$MON_PORT" "$DIR/monmap" >/dev/null
ceph-mon --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring" 2>>"$DIR/log/mkfs.log"
ceph-mon -i a 2>>"$DIR/log/daemons.log"
ceph-mgr -i x 2>>"$DIR/log/daemons.log"
for _ in $(seq 100); do timeout 5 ceph mon stat >/dev/null 2>&1 && break; sleep 0.1; done
OSD_UUID=$(uuidgen)
OSD_ID=$(ceph osd new "$OSD_UUID")
ceph-osd -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" 2>>"$DIR/log/mkfs.log"
ceph-osd -i "$OSD_ID" 2>>"$DIR/log/daemons.log"
radosgw -n client.rgw 2>>"$DIR/log/daemons.log"
for _ in $(seq 300); do answers && break; sleep 0.1; done
answers || { log "radosgw did not answer on :$PORT (logs in $DIR/log)"; exit 1; }
radosgw-admin user create --uid=dockyard --display-name=dockyard \
  --access-key="$ACCESS" --secret-key="$SECRET" >/dev/null 2>>"$DIR/log/admin.log" || true
# The bucket, made with curl's own SigV4 (no S3 client on the machine needed)
for _ in $(seq 50); do
  code=$(env -u CURL_CA_BUNDLE curl -s -o /dev/null -w '%{http_code}' -X PUT \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS:$SECRET" "http://127.0.0.1:$PORT/$BUCKET") || true
  case $code in 200|409) break ;; esac
  sleep 0.2
done
case $code in 200|409) ;; *) log "could not create bucket $BUCKET (HTTP $code)"; exit 1 ;; esac
cat >"$DIR/env.sh" <<EOF
export S3_ENDPOINT=http://127.0.0.1:$PORT
export S3_REGION=us-east-1
export S3_BUCKET=$BUCKET
export AWS_ACCESS_KEY_ID=$ACCESS
export AWS_SECRET_ACCESS_KEY=$SECRET
unset AWS_CA_BUNDLE
EOF
print_env
