# shellcheck shell=bash
# What the pmemfs benchmarks share: messages, a scratch directory on a
# private tmpfs, mounting pmemfs and bindfs daemons in the foreground and
# stopping them again by PID (never by name), whatever happens.
#
# A script sources this, then calls bench_init SCRATCH_MB; bench_cleanup runs
# on EXIT. Environment: PMEMFS_BIN (directory of the pmemfs commands;
# default: PATH), BENCH_DIR (parent of the scratch directory; default
# ${TMPDIR:-/tmp}).

PMEMFS=${PMEMFS_BIN:+$PMEMFS_BIN/}pmemfs
MKFS_PMEMFS=${PMEMFS_BIN:+$PMEMFS_BIN/}mkfs.pmemfs
FUSERMOUNT=$(command -v fusermount || command -v fusermount3 || true)
MOUNT_TIMEOUT=10

die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'bench: %s\n' "$*" >&2; }

# bench_require CMD...: each must be on PATH.
bench_require() {
  local c
  [[ $EUID -eq 0 ]] || die "run as root (tmpfs mount, drop_caches)"
  for c in "$@"; do
    command -v "$c" >/dev/null || die "'$c' not found: run npm run setup (bindfs: apt-get install bindfs)"
  done
  [[ -n $FUSERMOUNT ]] || die "fusermount not found: apt-get install fuse"
  [[ -c /dev/fuse ]] || die "/dev/fuse is missing: modprobe fuse"
}

# alive PID: running (an exited, not yet reaped child is a zombie: not alive).
alive() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

# The daemons we started, as "MNT PID" lines, newest last.
BENCH_DAEMONS=()

# Unmount MNT, then wait for (or stop) its daemon PID.
stop_daemon() {  # stop_daemon MNT PID
  local mnt=$1 pid=$2 i
  if mountpoint -q "$mnt"; then "$FUSERMOUNT" -u "$mnt" 2>/dev/null || "$FUSERMOUNT" -uz "$mnt" 2>/dev/null || true; fi
  [[ -n $pid ]] || return 0
  for ((i = 0; i < 100; i++)); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
  set +e
  local i busy=0
  for ((i = ${#BENCH_DAEMONS[@]} - 1; i >= 0; i--)); do
    # shellcheck disable=SC2086  # "MNT PID"
    stop_daemon ${BENCH_DAEMONS[i]}
    mountpoint -q "${BENCH_DAEMONS[i]% *}" && busy=1
  done
  [[ -n ${WORK:-} ]] || return 0
  if mountpoint -q "$TMPFS"; then umount "$TMPFS" || umount -l "$TMPFS"; fi
  mountpoint -q "$TMPFS" && busy=1
  if ((busy)); then log "left $WORK in place: something is still mounted there"; else rm -rf --one-file-system "$WORK"; fi
}

# bench_init TMPFS_MB: WORK (scratch directory) with TMPFS, a private tmpfs
# of TMPFS_MB MiB mounted on it; cleanup on any exit.
bench_init() {
  WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/pmemfs-bench.XXXXXX")
  TMPFS=$WORK/tmpfs
  mkdir "$TMPFS"
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  mount -t tmpfs -o "size=${1}m,mode=0755" pmemfs-bench "$TMPFS"
}

wait_mounted() {  # wait_mounted MNT PID LOG
  local i
  for ((i = 0; i < MOUNT_TIMEOUT * 10; i++)); do
    mountpoint -q "$1" && return 0
    alive "$2" || { tail -n 20 "$3" >&2; die "the daemon for $1 exited before mounting (log above)"; }
    sleep 0.1
  done
  tail -n 20 "$3" >&2
  die "$1 not mounted within ${MOUNT_TIMEOUT}s"
}

# mount_pmemfs MNT REGION_MB [OPTS]: format $TMPFS/region.img and mount it
# at MNT (created) in the foreground; default options dax=always,log=warn.
mount_pmemfs() {
  log "pmemfs: mkfs.pmemfs -s ${2}m on the tmpfs"
  "$MKFS_PMEMFS" -s "${2}m" "$TMPFS/region.img" >/dev/null
  mount_pmemfs_existing "$1" "${3:-}"
}

# mount_pmemfs_existing MNT [OPTS]: mount $TMPFS/region.img as it is.
mount_pmemfs_existing() {
  start_pmemfs "$TMPFS/region.img" "$@"
}

# mount_pmemfs_at REGION MNT REGION_MB [OPTS]: format the region file REGION
# (anywhere, e.g. on a disk for durability figures) and mount it at MNT
# (created); options as for mount_pmemfs. REGION must not exist yet.
# MKFS_EXTRA: more mkfs.pmemfs options (e.g. -P).
mount_pmemfs_at() {
  log "pmemfs: mkfs.pmemfs ${MKFS_EXTRA:+$MKFS_EXTRA }-s ${3}m $1"
  # shellcheck disable=SC2086  # MKFS_EXTRA is a list of options
  "$MKFS_PMEMFS" ${MKFS_EXTRA:-} -s "${3}m" "$1" >/dev/null
  start_pmemfs "$1" "$2" "${4:-}"
}

# start_pmemfs REGION MNT [OPTS]: the daemon, in the foreground, for REGION.
start_pmemfs() {
  local region=$1 mnt=$2 opts=${3:-dax=always,log=warn} pid
  [[ -n $opts ]] || opts=dax=always,log=warn
  mkdir -p "$mnt"
  log "pmemfs: mount -o $opts"
  "$PMEMFS" "$region" "$mnt" -f -o "$opts" >>"$WORK/pmemfs.log" 2>&1 </dev/null &
  pid=$!
  BENCH_DAEMONS+=("$mnt $pid")
  wait_mounted "$mnt" "$pid" "$WORK/pmemfs.log"
}

# unmount_last: unmount the newest mount and stop its daemon.
unmount_last() {
  local last=${BENCH_DAEMONS[-1]}
  stop_daemon "${last% *}" "${last#* }"
  unset 'BENCH_DAEMONS[-1]'
}

# mount_bindfs DIR MNT OPTS...: bindfs (libfuse 2, C) of DIR at MNT (created).
mount_bindfs() {
  local dir=$1 mnt=$2 pid
  shift 2
  mkdir -p "$mnt"
  log "bindfs $* $dir $mnt"
  bindfs -f "$@" "$dir" "$mnt" >"$WORK/bindfs.log" 2>&1 </dev/null &
  pid=$!
  BENCH_DAEMONS+=("$mnt $pid")
  wait_mounted "$mnt" "$pid" "$WORK/bindfs.log"
}

now() { date +%s.%N; }
# median NUMBER...: the middle one (the mean of the two middle ones for an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# require_positive VAR...: each variable holds a positive integer.
require_positive() {
  local v
  for v in "$@"; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
  done
}
# require_disk_dir DIR: DIR is a directory on a filesystem that is not in memory (durability figures).
require_disk_dir() {
  [[ -d $1 ]] || die "BENCH_DIR=$1 is not a directory"
  case $(df --output=fstype "$1" | tail -n 1) in
    tmpfs | ramfs) die "BENCH_DIR=$1 is in memory: set BENCH_DIR to a directory on a disk" ;;
  esac
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
