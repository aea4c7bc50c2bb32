#!/usr/bin/env bash
# `npm start` serves a region and ends cleanly on a signal: Ctrl-C (SIGINT
# to the whole process group, as a terminal sends it) and a SIGINT or
# SIGTERM that npm alone receives (kill, a process manager) both unmount,
# npm exits 0, and the region checks clean. The second once left the mount
# behind: npm's script shell waited on the script and the signal stopped
# there.
. "$(dirname "$0")/lib.sh"

_require_fuse
_require_cmd npm setsid mountpoint

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
_scratch_setup
_register_mount "$MNT"

# start_npm: `npm start` for the scratch region in a session of its own (its
# PID is its process group); waits for the mount.
start_npm() {
  local i
  (cd "$ROOT" && PMEMFS_REGION=$REGION PMEMFS_MNT=$MNT PMEMFS_SIZE=64m PMEMFS_OPTS=dax=never \
    exec setsid npm start >>"$DAEMON_LOG" 2>&1 </dev/null) &
  NPM_PID=$!
  _PIDS+=("$NPM_PID")
  for ((i = 0; i < MOUNT_TIMEOUT * 10; i++)); do
    mountpoint -q "$MNT" && return 0
    _pid_alive "$NPM_PID" || _fail "npm start exited before $MNT was mounted"
    sleep 0.1
  done
  _fail "npm start did not mount $MNT within ${MOUNT_TIMEOUT}s"
}

# stopped_by WHAT KILL_ARGS...: send the signal, then MNT must be unmounted
# and npm gone with status 0 within EXIT_TIMEOUT seconds.
stopped_by() {
  local what=$1 i rc=0
  shift
  kill "$@"
  for ((i = 0; i < EXIT_TIMEOUT * 10; i++)); do
    _pid_alive "$NPM_PID" || break
    sleep 0.1
  done
  _pid_alive "$NPM_PID" && _fail "$what: npm start still runs ${EXIT_TIMEOUT}s later"
  _reap "$NPM_PID" || rc=$?
  ! _is_mounted "$MNT" || _fail "$what: npm start exited (status $rc) and left $MNT mounted"
  (( rc == 0 )) || _fail "$what: npm start exited with status $rc"
  _assert_exit 0 fsck.pmemfs -n "$REGION"
  _log "$what: unmounted, npm exited 0, region clean"
}

start_npm
echo kept >"$MNT/file"
stopped_by "Ctrl-C (SIGINT to the process group)" -INT -- "-$NPM_PID"

start_npm
_assert_eq kept "$(cat "$MNT/file")" "a file written before the first stop"
stopped_by "SIGINT to npm alone" -INT "$NPM_PID"

start_npm
stopped_by "SIGTERM to npm alone" -TERM "$NPM_PID"
