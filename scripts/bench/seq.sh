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
# Environment: SIZE_MB (1024), BINDFS_OPTS, and those of lib.sh.
set -euo pipefail

SIZE_MB=${SIZE_MB:-1024}
BINDFS_OPTS=${BINDFS_OPTS:--o direct_io,big_writes}
# shellcheck source=scripts/bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $SIZE_MB =~ ^[1-9][0-9]*$ ]] || die "SIZE_MB must be a positive integer, got '$SIZE_MB'"
bench_require "$PMEMFS" "$MKFS_PMEMFS" bindfs dd mountpoint awk

drop_caches() {  # drop_caches FILE
  sync
  if [[ -w /proc/sys/vm/drop_caches ]] && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then return; fi
  dd if="$1" iflag=nocache count=0 status=none 2>/dev/null || true
}

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
bench_init $((REGION_MB + SIZE_MB + 64))
mkdir "$TMPFS/plain"

mount_pmemfs "$WORK/pmemfs" "$REGION_MB"
measure "$WORK/pmemfs" pmemfs

measure "$TMPFS/plain" tmpfs

# shellcheck disable=SC2086  # BINDFS_OPTS is a list of options
mount_bindfs "$TMPFS/plain" "$WORK/bindfs" $BINDFS_OPTS
measure "$WORK/bindfs" bindfs

row() { printf '%-34s %12s %12s\n' "$@"; }
echo
printf 'sequential dd, %s MiB, bs=1M (MB/s = 10^6 bytes/s)\n' "$SIZE_MB"
row target 'write MB/s' 'read MB/s'
row 'pmemfs (dax=always)' "${WRITE[pmemfs]}" "${READ[pmemfs]}"
row tmpfs "${WRITE[tmpfs]}" "${READ[tmpfs]}"
row "bindfs ($BINDFS_OPTS)" "${WRITE[bindfs]}" "${READ[bindfs]}"
row 'ratio pmemfs/tmpfs' "$(ratio "${WRITE[pmemfs]}" "${WRITE[tmpfs]}")" "$(ratio "${READ[pmemfs]}" "${READ[tmpfs]}")"
row 'ratio pmemfs/bindfs' "$(ratio "${WRITE[pmemfs]}" "${WRITE[bindfs]}")" "$(ratio "${READ[pmemfs]}" "${READ[bindfs]}")"
