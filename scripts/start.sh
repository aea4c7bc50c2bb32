#!/usr/bin/env bash
# `npm start`: serve ./pmem.img (made on first use, 1 GiB sparse) at ./mnt in
# the foreground with dax=always, the daemon's JSON log made readable by
# pino-pretty. Ctrl-C unmounts cleanly and returns once the daemon is gone.
#
# Signals: Ctrl-C's SIGINT reaches the daemon from the terminal (same process
# group). The traps below also pass INT/TERM on as SIGTERM (npm may signal
# only us: package.json runs this script with `exec`, so a signal npm
# forwards to its script shell lands here, not in an sh that would wait; a background job starts with SIGINT ignored, which a non-Node
# daemon could not undo); the daemon ends the same way on either, and treats
# repeats as one. pino-pretty runs in its own session
# (setsid) so Ctrl-C does not kill it before the daemon's last lines
# ("unmounting", "unmounted cleanly") are through; it ends at EOF.
#
# Environment: PMEMFS_REGION (pmem.img), PMEMFS_MNT (mnt), PMEMFS_SIZE (1g),
# PMEMFS_OPTS (dax=always).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

REGION=${PMEMFS_REGION:-pmem.img}
MNT=${PMEMFS_MNT:-mnt}
SIZE=${PMEMFS_SIZE:-1g}
OPTS=${PMEMFS_OPTS:-dax=always}

die() { printf 'start: error: %s\n' "$*" >&2; exit 1; }

for c in pmemfs mkfs.pmemfs mountpoint setsid; do
  command -v "$c" >/dev/null || die "'$c' is not on PATH: run 'npm run setup' first"
done
[[ -x node_modules/.bin/pino-pretty ]] || die "pino-pretty is not installed: run 'npm run setup' first"

if [[ ! -e $REGION ]]; then
  echo "start: creating a $SIZE region in $REGION"
  mkfs.pmemfs -s "$SIZE" "$REGION"
fi
mkdir -p "$MNT"
if mountpoint -q "$MNT"; then
  die "$MNT is already mounted: unmount it first (fusermount -u $MNT)"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pmemfs-start.XXXXXX")
DAEMON_PID=''
PRETTY_PID=''

cleanup() {
  # Only reached with a live daemon if this script itself failed.
  if [[ -n $DAEMON_PID ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
  fi
  if [[ -n $PRETTY_PID ]] && kill -0 "$PRETTY_PID" 2>/dev/null; then
    wait "$PRETTY_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
forward() { if [[ -n $DAEMON_PID ]]; then kill -TERM "$DAEMON_PID" 2>/dev/null || true; fi; }
trap forward INT TERM

mkfifo "$TMP/log"
setsid -w npx --no pino-pretty <"$TMP/log" &
PRETTY_PID=$!
echo "start: serving $REGION at $MNT (-o $OPTS); Ctrl-C to unmount"
pmemfs "$REGION" "$MNT" -f -o "$OPTS" >"$TMP/log" 2>&1 &
DAEMON_PID=$!

# wait returns early (status > 128) when a trapped signal arrives; keep
# waiting until the daemon has really exited, then ask for its own status:
# a wait that a signal cut short says nothing about it (Ctrl-C brings
# SIGINT and npm's SIGTERM, and the second can end the last wait just as
# the daemon exits 0). Once the daemon is gone that wait does not block.
while kill -0 "$DAEMON_PID" 2>/dev/null; do
  wait "$DAEMON_PID" 2>/dev/null || true
done
rc=0
wait "$DAEMON_PID" || rc=$?
DAEMON_PID=''
wait "$PRETTY_PID" 2>/dev/null || true
PRETTY_PID=''

if mountpoint -q "$MNT"; then
  die "the daemon exited (status $rc) but $MNT is still mounted: run 'fusermount -u $MNT'"
fi
if (( rc == 0 )); then
  echo "start: $MNT unmounted cleanly"
else
  echo "start: the daemon exited with status $rc (its message is above)" >&2
fi
exit "$rc"
