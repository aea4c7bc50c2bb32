#!/usr/bin/env bash
# Sequential throughput: pmemfs against the memory it emulates and against a
# C FUSE filesystem. `npm run bench:seq` (root; not part of npm test).
#
# For each target, dd writes SIZE_MB MiB (bs=1M, conv=fsync, from
# /dev/zero), then reads it back (bs=1M) after dropping caches:
#   pmemfs   a pmemfs mount, -o dax=always (no page cache, like fsdax)
#   tmpfs    a plain tmpfs directory
#   bindfs   bindfs (libfuse 2, C) over that tmpfs, with BINDFS_OPTS
#            (default "-o direct_io,big_writes": the same FUSE settings as
#            pmemfs dax=always, so the difference is the daemon, not the cache)
#
# The pmemfs region file lives on the same tmpfs (emulated persistent memory
# is memory), so no target touches a disk; budget about 2×SIZE_MB of RAM.
# Reads: caches are dropped with `echo 3 > /proc/sys/vm/drop_caches` when
# that is writable, else per file with dd iflag=nocache count=0
# (posix_fadvise DONTNEED). Neither empties tmpfs itself (its pages are the
# data), so tmpfs reads are memory reads; pmemfs dax=always never caches.
# O_DIRECT is not used: tmpfs refuses it.
#
# Environment: SIZE_MB (1024), BINDFS_OPTS, PMEMFS_BIN (directory of the
# pmemfs commands; default: PATH), BENCH_DIR (parent of the scratch
# directory; default ${TMPDIR:-/tmp}).
set -euo pipefail

SIZE_MB=${SIZE_MB:-1024}
BINDFS_OPTS=${BINDFS_OPTS:--o direct_io,big_writes}
PMEMFS=${PMEMFS_BIN:+$PMEMFS_BIN/}pmemfs
MKFS_PMEMFS=${PMEMFS_BIN:+$PMEMFS_BIN/}mkfs.pmemfs
FUSERMOUNT=$(command -v fusermount || command -v fusermount3 || true)
MOUNT_TIMEOUT=10

die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'bench: %s\n' "$*" >&2; }

[[ $EUID -eq 0 ]] || die "run as root (tmpfs mount, drop_caches)"
[[ $SIZE_MB =~ ^[1-9][0-9]*$ ]] || die "SIZE_MB must be a positive integer, got '$SIZE_MB'"
for c in "$PMEMFS" "$MKFS_PMEMFS" bindfs dd mountpoint awk; do
  command -v "$c" >/dev/null || die "'$c' not found: run npm run setup (bindfs: apt-get install bindfs)"
done
[[ -n $FUSERMOUNT ]] || die "fusermount not found: apt-get install fuse"
[[ -c /dev/fuse ]] || die "/dev/fuse is missing: modprobe fuse"

WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/pmemfs-bench.XXXXXX")
TMPFS=$WORK/tmpfs
PMEM_MNT=$WORK/pmemfs
BINDFS_MNT=$WORK/bindfs
mkdir "$TMPFS" "$PMEM_MNT" "$BINDFS_MNT"
PMEM_PID='' BINDFS_PID=''

# alive PID: running (an exited, not yet reaped child is a zombie: not alive).
alive() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

# Unmount in reverse order of mounting, stop our daemons by PID.
stop_daemon() {  # stop_daemon MNT PID
  local mnt=$1 pid=$2 i
  if mountpoint -q "$mnt"; then "$FUSERMOUNT" -u "$mnt" 2>/dev/null || "$FUSERMOUNT" -uz "$mnt" 2>/dev/null || true; fi
  [[ -n $pid ]] || return 0
  for ((i = 0; i < 100; i++)); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  set +e
  stop_daemon "$BINDFS_MNT" "$BINDFS_PID"
  stop_daemon "$PMEM_MNT" "$PMEM_PID"
  if mountpoint -q "$TMPFS"; then umount "$TMPFS" || umount -l "$TMPFS"; fi
  if mountpoint -q "$TMPFS" || mountpoint -q "$PMEM_MNT" || mountpoint -q "$BINDFS_MNT"; then
    log "left $WORK in place: something is still mounted there"
  else
    rm -rf --one-file-system "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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

drop_caches() {  # drop_caches FILE
  sync
  if [[ -w /proc/sys/vm/drop_caches ]] && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then return; fi
  dd if="$1" iflag=nocache count=0 status=none 2>/dev/null || true
}

now() { date +%s.%N; }
mbps() { awk -v b="$1" -v t0="$2" -v t1="$3" 'BEGIN { printf "%.0f", b / 1e6 / (t1 - t0) }'; }

# measure DIR NAME: sets WRITE[NAME] and READ[NAME] (MB/s, 10^6 bytes/s).
declare -A WRITE=() READ=()
measure() {
  local f=$1/bench.dat name=$2 t0 t1 bytes=$((SIZE_MB * 1024 * 1024))
  log "$name: write $SIZE_MB MiB"
  t0=$(now)
  dd if=/dev/zero of="$f" bs=1M count="$SIZE_MB" conv=fsync status=none || die "$name: write failed"
  t1=$(now)
  WRITE[$name]=$(mbps "$bytes" "$t0" "$t1")
  drop_caches "$f"
  log "$name: read $SIZE_MB MiB"
  t0=$(now)
  dd if="$f" of=/dev/null bs=1M status=none || die "$name: read failed"
  t1=$(now)
  READ[$name]=$(mbps "$bytes" "$t0" "$t1")
  rm -f "$f"
}

# The tmpfs holds the region (up to SIZE_MB + slack once written) and, in
# turn, the tmpfs and bindfs test files (SIZE_MB each, deleted after use).
REGION_MB=$((SIZE_MB + SIZE_MB / 8 + 64))
mount -t tmpfs -o "size=$((REGION_MB + SIZE_MB + 64))m,mode=0755" pmemfs-bench "$TMPFS"
mkdir "$TMPFS/plain"

log "pmemfs: mkfs.pmemfs -s ${REGION_MB}m on the tmpfs"
"$MKFS_PMEMFS" -s "${REGION_MB}m" "$TMPFS/region.img" >/dev/null
"$PMEMFS" "$TMPFS/region.img" "$PMEM_MNT" -f -o dax=always,log=warn >"$WORK/pmemfs.log" 2>&1 </dev/null &
PMEM_PID=$!
wait_mounted "$PMEM_MNT" "$PMEM_PID" "$WORK/pmemfs.log"
measure "$PMEM_MNT" pmemfs

measure "$TMPFS/plain" tmpfs

log "bindfs $BINDFS_OPTS $TMPFS/plain $BINDFS_MNT"
# shellcheck disable=SC2086  # BINDFS_OPTS is a list of options
bindfs -f $BINDFS_OPTS "$TMPFS/plain" "$BINDFS_MNT" >"$WORK/bindfs.log" 2>&1 </dev/null &
BINDFS_PID=$!
wait_mounted "$BINDFS_MNT" "$BINDFS_PID" "$WORK/bindfs.log"
measure "$BINDFS_MNT" bindfs

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
row() { printf '%-34s %12s %12s\n' "$@"; }
echo
printf 'sequential dd, %s MiB, bs=1M (MB/s = 10^6 bytes/s)\n' "$SIZE_MB"
row target 'write MB/s' 'read MB/s'
row 'pmemfs (dax=always)' "${WRITE[pmemfs]}" "${READ[pmemfs]}"
row tmpfs "${WRITE[tmpfs]}" "${READ[tmpfs]}"
row "bindfs ($BINDFS_OPTS)" "${WRITE[bindfs]}" "${READ[bindfs]}"
row 'ratio pmemfs/tmpfs' "$(ratio "${WRITE[pmemfs]}" "${WRITE[tmpfs]}")" "$(ratio "${READ[pmemfs]}" "${READ[tmpfs]}")"
row 'ratio pmemfs/bindfs' "$(ratio "${WRITE[pmemfs]}" "${WRITE[bindfs]}")" "$(ratio "${READ[pmemfs]}" "${READ[bindfs]}")"
