# shellcheck shell=bash
# Shared helpers for the shell tests in test/shell/, sourced first by each
# one (xfstests habits): one case per file; exit 0 pass, 77 skip, anything
# else fail; _require_* gates that skip with a reason; assertions that fail
# with one line saying what was expected; a scratch directory with a region
# file and a mount point; everything this test started is unmounted and
# stopped by PID in an EXIT trap, never by name.
#
# Commands are called by name (npm run setup puts them on PATH); with
# PMEMFS_BIN set, "$PMEMFS_BIN/pmemfs" and friends are used instead.
# PMEMFS_TEST_KEEP=1 keeps the scratch directory for a post-mortem.
#
# Every test runs with `set -euo pipefail` and an ERR trap, so a command that
# fails where nobody expected it fails the test with its line number.

# The globals below are for the tests; shellcheck cannot see them used here.
# shellcheck disable=SC2034

set -Eeuo pipefail

TEST_NAME=$(basename "$0" .sh)
if [[ -n ${PMEMFS_BIN:-} ]]; then
  PMEMFS=$PMEMFS_BIN/pmemfs
  MKFS_PMEMFS=$PMEMFS_BIN/mkfs.pmemfs
  FSCK_PMEMFS=$PMEMFS_BIN/fsck.pmemfs
  PMEMFS_IO=$PMEMFS_BIN/pmemfs-io
else
  PMEMFS=pmemfs
  MKFS_PMEMFS=mkfs.pmemfs
  FSCK_PMEMFS=fsck.pmemfs
  PMEMFS_IO=pmemfs-io
fi
FUSERMOUNT=$(command -v fusermount || command -v fusermount3 || true)

MOUNT_TIMEOUT=${PMEMFS_MOUNT_TIMEOUT:-10}     # seconds for a mount to appear
EXIT_TIMEOUT=${PMEMFS_EXIT_TIMEOUT:-10}       # seconds for a daemon to exit after unmount
CMD_TIMEOUT=${PMEMFS_CMD_TIMEOUT:-300}        # seconds for any command run by an _assert_*

SCRATCH=''   # set by _scratch_setup
REGION=''    # $SCRATCH/region.img
MNT=''       # $SCRATCH/mnt
DAEMON_LOG='' # $SCRATCH/daemon.log: every daemon this test started, appended
LAST_RC=0    # exit status of the command an _assert_* ran
LAST_OUT=''  # its stdout
LAST_ERR=''  # its stderr

declare -A _MOUNT_PID=()  # mount point → PID of the daemon serving it (empty: not ours to stop)
declare -a _PIDS=()       # every process this test started in the background

_log() { printf '[%s] %s\n' "$TEST_NAME" "$*"; }

# _nonempty FILE: FILE reads back something. Control files (.pmemfs/busy...)
# report st_size 0, as /proc files do, so `[[ -s ]]` is no test of them.
_nonempty() { [[ -n $(cat "$1" 2>/dev/null) ]]; }

# Small shared tools: content hash, milliseconds, and the daemon log since a mark.
_sha() { sha256sum <"$1" | cut -d' ' -f1; }
_now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $(( t / 1000 )); }
_log_mark() { wc -l <"$DAEMON_LOG"; }
_log_since() { tail -n +"$(( $1 + 1 ))" "$DAEMON_LOG"; }

# _mounted_line MARK PID: the 'mounted' log line daemon PID wrote after MARK
# (the log is written asynchronously: waits up to 2 s; empty if none came).
_mounted_line() {
  local i line=''
  for ((i = 0; i < 40; i++)); do
    line=$(_log_since "$1" | grep "\"pid\":$2," | grep '"msg":"mounted"' || true)
    [[ -n $line ]] && break
    sleep 0.05
  done
  printf '%s' "$line"
}

# _skip REASON: not run (exit 77); the runner prints REASON.
_skip() {
  printf 'SKIP: %s\n' "$*"
  exit 77
}
_notrun() { _skip "$@"; }

# _fail MSG: the test failed (exit 1); MSG is its one-line verdict.
_fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}

_on_err() {
  local rc=$1 line=$2 cmd=$3
  printf 'FAIL: line %s: "%s" exited with status %s\n' "$line" "$cmd" "$rc" >&2
  exit "$rc"
}
trap '_on_err $? $LINENO "$BASH_COMMAND"' ERR

# Resolve one of our commands (pmemfs, mkfs.pmemfs, ...) to what will run.
_cmd_path() {
  case $1 in
    pmemfs) echo "$PMEMFS" ;;
    mkfs.pmemfs) echo "$MKFS_PMEMFS" ;;
    fsck.pmemfs) echo "$FSCK_PMEMFS" ;;
    pmemfs-io) echo "$PMEMFS_IO" ;;
    *) echo "$1" ;;
  esac
}

# _require_cmd CMD...: skip unless every CMD is runnable.
_require_cmd() {
  local c
  for c in "$@"; do
    command -v "$(_cmd_path "$c")" >/dev/null 2>&1 \
      || _skip "command '$c' not found (install it, or run npm run setup)"
  done
}

# _require_root: skip unless uid 0.
_require_root() {
  [[ $EUID -eq 0 ]] || _skip "needs root (uid 0), running as uid $EUID"
}

# _require_fuse: skip unless a FUSE mount can be made here.
_require_fuse() {
  grep -qw fuse /proc/filesystems 2>/dev/null || _skip "the kernel has no FUSE (modprobe fuse)"
  [[ -c /dev/fuse ]] || _skip "/dev/fuse is missing (modprobe fuse, or docker --device /dev/fuse)"
  ( exec 3<>/dev/fuse ) 2>/dev/null || _skip "/dev/fuse cannot be opened by uid $EUID"
  [[ -n $FUSERMOUNT ]] || _skip "fusermount not found (apt-get install fuse)"
  _require_cmd pmemfs mkfs.pmemfs mountpoint
}

# _assert_eq EXPECTED ACTUAL [WHAT]
_assert_eq() {
  [[ $1 == "$2" ]] || _fail "${3:-value}: expected '$1', got '$2'"
}

# Run "$@" with stdout/stderr captured into LAST_OUT/LAST_ERR and the status
# into LAST_RC, never longer than CMD_TIMEOUT (shell functions run as is;
# TIMEOUT_HINT, if set, explains a timeout in the failure message).
_run() {
  local out err
  out=$(mktemp "${TMPDIR:-/tmp}/pmemfs-run.XXXXXX")
  err=$(mktemp "${TMPDIR:-/tmp}/pmemfs-run.XXXXXX")
  LAST_RC=0
  if declare -F "$1" >/dev/null; then
    "$@" >"$out" 2>"$err" </dev/null || LAST_RC=$?
  else
    timeout -k 5 "$CMD_TIMEOUT" "$@" >"$out" 2>"$err" </dev/null || LAST_RC=$?
  fi
  LAST_OUT=$(<"$out")
  LAST_ERR=$(<"$err")
  rm -f "$out" "$err"
  if (( LAST_RC == 124 )) && ! declare -F "$1" >/dev/null; then
    _fail "$* did not finish within ${CMD_TIMEOUT}s${TIMEOUT_HINT:+: $TIMEOUT_HINT}"
  fi
}

_quote() { printf '%q ' "$@"; }

# _assert_exit CODE CMD...: CMD exits with CODE.
# _check_pmdk_counter COUNTER POOL ACKED WHAT: after a power cut, the libpmemobj
# pool passes pmempool check, the counter program (test/shell/pmdk-counter.c)
# finds its ring consistent (no torn transaction), and the counter is at least
# the last acknowledged value ACKED. NOW is the counter found.
_check_pmdk_counter() {
  local counter=$1 pool=$2 acked=$3 what=$4
  _run pmempool check "$pool"
  (( LAST_RC == 0 )) || _fail "pmempool check after the cut ($what): $LAST_OUT $LAST_ERR"
  NOW=$("$counter" check "$pool") || _fail "$what: the pool's ring disagrees with its counter after the cut (a torn transaction)"
  (( NOW >= acked )) || _fail "$what: the counter is $NOW after the cut, but transaction $acked had been acknowledged"
}

_assert_exit() {
  local want=$1; shift
  _run "$@"
  (( LAST_RC == want )) || _fail "$(_quote "$@")exited $LAST_RC, expected $want; stderr: ${LAST_ERR:-(empty)}"
  _log "ok: $(_quote "$@")→ exit $LAST_RC"
}

# _assert_errno TEXT CMD...: CMD fails and its stderr contains TEXT, the
# strerror text of the expected errno (e.g. "Text file busy").
_assert_errno() {
  local text=$1; shift
  _run "$@"
  (( LAST_RC != 0 )) || _fail "$(_quote "$@")succeeded, expected failure with '$text'"
  grep -qF -- "$text" <<<"$LAST_ERR" \
    || _fail "$(_quote "$@")failed (exit $LAST_RC) without '$text'; stderr: ${LAST_ERR:-(empty)}"
  _log "ok: $(_quote "$@")→ $text"
}

# _assert_refused REGEX CMD...: CMD exits non-zero with a clear refusal: at
# least one stderr line, one matching the case-insensitive extended REGEX,
# and no JavaScript stack trace.
_assert_refused() {
  local re=$1; shift
  _run "$@"
  (( LAST_RC != 0 )) || _fail "$(_quote "$@")succeeded, expected a refusal matching /$re/"
  [[ -n $LAST_ERR ]] || _fail "$(_quote "$@")failed (exit $LAST_RC) with nothing on stderr"
  grep -qEi -- "$re" <<<"$LAST_ERR" \
    || _fail "$(_quote "$@")refused (exit $LAST_RC) but stderr does not match /$re/: $LAST_ERR"
  if grep -qE '^[[:space:]]+at .+:[0-9]+:[0-9]+\)?$' <<<"$LAST_ERR"; then
    _fail "$(_quote "$@")printed a stack trace instead of a message: $LAST_ERR"
  fi
  _log "ok: $(_quote "$@")→ exit $LAST_RC: $(head -n1 <<<"$LAST_ERR")"
}

# Files a test made outside SCRATCH (a region in /dev/shm): _cleanup removes them.
_OUTSIDE_FILES=()

# _scratch_setup: a fresh directory with REGION (not yet created) and MNT.
_scratch_setup() {
  SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/pmemfs-test.XXXXXX")
  REGION=$SCRATCH/region.img
  MNT=$SCRATCH/mnt
  DAEMON_LOG=$SCRATCH/daemon.log
  mkdir "$MNT"
  : >"$DAEMON_LOG"
}

# _mkfs [ARGS...]: mkfs.pmemfs ARGS REGION (ARGS default: -s 1g).
_mkfs() {
  (( $# )) || set -- -s 1g
  _run "$MKFS_PMEMFS" "$@" "$REGION"
  (( LAST_RC == 0 )) || _fail "mkfs.pmemfs $* failed (exit $LAST_RC): $LAST_ERR"
}

# _pid_alive PID: running (a zombie, exited but not yet reaped, is not).
_pid_alive() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

# _reap PID: wait for our child PID and forget it (a reaped PID may be
# reused by someone else's process, which cleanup must never signal).
# Returns the child's exit status.
_reap() {
  local pid=$1 rc=0 p keep=()
  wait "$pid" 2>/dev/null || rc=$?
  for p in "${_PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  _PIDS=("${keep[@]}")
  return "$rc"
}

_log_tail() { tail -n "${2:-20}" "${1:-$DAEMON_LOG}" 2>/dev/null | sed 's/^/    | /'; }

# _mount_at REGION MNT [OPTS]: start `pmemfs REGION MNT -f [-o OPTS]` in the
# background (log appended to DAEMON_LOG) and wait until MNT is a mount point.
_mount_at() {
  local region=$1 mnt=$2 opts=${3:-} pid i
  local args=("$region" "$mnt" -f)
  [[ -n $opts ]] && args+=(-o "$opts")
  printf -- '--- %s: pmemfs %s\n' "$(date +%T)" "${args[*]}" >>"$DAEMON_LOG"
  "$PMEMFS" "${args[@]}" >>"$DAEMON_LOG" 2>&1 </dev/null &
  pid=$!
  _PIDS+=("$pid")
  _MOUNT_PID[$mnt]=$pid
  for ((i = 0; i < MOUNT_TIMEOUT * 10; i++)); do
    mountpoint -q "$mnt" && { _log "mounted $mnt (pid $pid${opts:+, -o $opts})"; return 0; }
    if ! _pid_alive "$pid"; then
      local rc=0
      _reap "$pid" || rc=$?
      unset '_MOUNT_PID[$mnt]'
      _fail "pmemfs exited with status $rc before $mnt was mounted (daemon log below)"
    fi
    sleep 0.1
  done
  _fail "$mnt was not mounted within ${MOUNT_TIMEOUT}s (daemon log below)"
}

# _mount [OPTS]: mount the scratch REGION at MNT.
_mount() { _mount_at "$REGION" "$MNT" "${1:-}"; }

# _is_mounted MNT: something is mounted at MNT (from /proc/self/mountinfo:
# unlike mountpoint(1) this needs no access to the mount, which root lacks
# on another user's FUSE mount made without allow_other).
_is_mounted() {
  local m
  m=$(realpath -m "$1")
  awk -v m="$m" '{ gsub(/\\040/, " ", $5) } $5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo
}

# _fusermount_u MNT [-z]: unmount a FUSE mount (lazily with -z).
_fusermount_u() {
  if [[ -n $FUSERMOUNT ]]; then
    "$FUSERMOUNT" -u ${2:+"$2"} "$1"
  elif [[ ${2:-} == -z ]]; then
    umount -l "$1"
  else
    umount "$1"
  fi
}

# _unmount_at MNT: fusermount -u, then the daemon must exit 0 within
# EXIT_TIMEOUT seconds (a clean unmount flushes and exits 0).
_unmount_at() {
  local mnt=$1 pid=${_MOUNT_PID[$1]:-} err i rc=0
  err=$(_fusermount_u "$mnt" 2>&1) || _fail "fusermount -u $mnt failed: $err"
  if [[ -n $pid ]]; then
    for ((i = 0; i < EXIT_TIMEOUT * 10; i++)); do
      _pid_alive "$pid" || break
      sleep 0.1
    done
    _pid_alive "$pid" && { _fail "pmemfs (pid $pid) still running ${EXIT_TIMEOUT}s after unmounting $mnt"; }
    _reap "$pid" || rc=$?
    (( rc == 0 )) || { _fail "pmemfs (pid $pid) exited with status $rc after unmounting $mnt"; }
  fi
  unset '_MOUNT_PID[$mnt]'
  ! mountpoint -q "$mnt" || _fail "$mnt is still mounted after fusermount -u"
  _log "unmounted $mnt"
}

# _unmount: unmount the scratch MNT.
_unmount() { _unmount_at "$MNT"; }

# _remount [OPTS]: unmount and mount again (the persistence check).
_remount() { _unmount; _mount "${1:-}"; }

# _register_mount MNT: have _cleanup unmount MNT if something (e.g. a
# refusal that unexpectedly succeeded) mounts it without _mount.
_register_mount() { [[ -n ${_MOUNT_PID[$1]+x} ]] || _MOUNT_PID[$1]=''; }

# EXIT trap: unmount what this test mounted, stop what it started (by PID),
# remove the scratch directory. Keeps the test's exit status unless cleanup
# itself went wrong on a passing test.
_cleanup() {
  local rc=$? mnt pid i busy=0
  trap - ERR
  set +e
  for mnt in "${!_MOUNT_PID[@]}"; do
    if _is_mounted "$mnt"; then
      _fusermount_u "$mnt" -z 2>/dev/null || umount -l "$mnt" 2>/dev/null
      _is_mounted "$mnt" && { echo "cleanup: cannot unmount $mnt" >&2; busy=1; }
    fi
  done
  # Only unreaped children are left in _PIDS: their PIDs cannot have been reused.
  for pid in "${_PIDS[@]}"; do
    for ((i = 0; i < 50; i++)); do _pid_alive "$pid" || break; sleep 0.1; done
    if _pid_alive "$pid"; then
      echo "cleanup: stopping pid $pid" >&2
      kill -TERM "$pid" 2>/dev/null
      for ((i = 0; i < 30; i++)); do _pid_alive "$pid" || break; sleep 0.1; done
      _pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
  done
  (( ${#_OUTSIDE_FILES[@]} )) && rm -f -- "${_OUTSIDE_FILES[@]}"
  if [[ -n $SCRATCH && -d $SCRATCH ]]; then
    if (( rc != 0 && rc != 77 )) && [[ -s $DAEMON_LOG ]]; then
      echo "daemon log ($DAEMON_LOG), last lines:" >&2
      _log_tail "$DAEMON_LOG" 15 >&2
    fi
    if [[ ${PMEMFS_TEST_KEEP:-} == 1 ]]; then
      echo "cleanup: kept $SCRATCH" >&2
    elif (( busy )); then
      echo "cleanup: left $SCRATCH in place (a mount is still there)" >&2
    else
      rm -rf --one-file-system "$SCRATCH"
    fi
  fi
  (( rc == 0 && busy )) && rc=1
  exit "$rc"
}
trap _cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
