#!/usr/bin/env bash
# `npm run bench:fsync-path` (root; not part of npm test): where the time of
# one 4 KiB overwrite + fsync goes on pmemfs whose region file is on a disk,
# split by what the daemon itself measures (.pmemfs/stats, subsystem=fuse_time)
# and set beside the host's own cost of the same flush, all in one run:
#
#   client          pwrite + fsync as the program sees it on pmemfs
#                   (fsync-lat rewrite: OPS overwrites at random 4 KiB offsets
#                   of a FILE_MB MiB file written beforehand), µs p50 / p99 /
#                   mean
#   daemon write    mean µs the daemon spent on one WRITE request, from its
#                   handler's start to its settling, the reply included
#   daemon fsync    the same for one FSYNC request (the flush included)
#   transport       client mean minus the two daemon means: the kernel's FUSE
#                   path both ways (request queued, read by the daemon,
#                   reply written, the client woken) and the client itself
#   host flush      the daemon's flush done by a C program on a file of the
#                   same filesystem: a 4 KiB store into a MAP_SHARED mapping
#                   + msync(MS_SYNC) of that page (fsync-lat mapped)
#   host pwrite+fsync  the same overwrites on the host filesystem itself
#   bindfs          the same overwrites through bindfs (libfuse 2, C) over a
#                   directory of the host filesystem: a FUSE passthrough's
#                   client figure, for the transport's size elsewhere
#
# Each figure is the median of REPS runs. Stats are read before and after
# the timed part only (the file is written beforehand), so the means hold
# the OPS writes and fsyncs and nothing else.
#
# The region is made with mkfs.pmemfs -P (every block allocated on the host
# first, as durable.sh does) unless PREALLOCATE=0.
#
# Environment: REPS (3), OPS (3000), FILE_MB (16), PREALLOCATE (1), PMEMFS_OPTS
# (dax=never,log=warn: the page cache, as bindfs has), BENCH_DIR (/var/tmp;
# refused if in memory), and those of lib.sh. About a minute.
set -euo pipefail

REPS=${REPS:-3}
OPS=${OPS:-3000}
FILE_MB=${FILE_MB:-16}
PMEMFS_OPTS=${PMEMFS_OPTS:-dax=never,log=warn}
BENCH_DIR=${BENCH_DIR:-/var/tmp}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/bench/lib.sh
. "$HERE/lib.sh"

require_positive REPS OPS FILE_MB
bench_require "$PMEMFS" "$MKFS_PMEMFS" cc bindfs mountpoint awk df
require_disk_dir "$BENCH_DIR"

declare -A V=()
add() {  # add METRIC VALUE
  [[ $2 =~ ^-?[0-9]+(\.[0-9]+)?$ ]] || die "$1: expected a number, got '$2'"
  V[$1]="${V[$1]:-} $2"
}
# shellcheck disable=SC2086  # V[M] is a list of numbers
med() { median ${V[$1]}; }

# stat_of OP SUBSYSTEM SUFFIX: a counter of the pmemfs daemon (fuse_ops: OP=N; fuse_time: OP_us=N).
stat_of() {
  local v
  v=$(sed -n "s/^subsystem=$2 .*\\b$1$3=\\([0-9]*\\).*/\\1/p" "$WORK/pmemfs/.pmemfs/stats")
  echo "${v:-0}"
}

bench_init 16
read -r DISK_DEV DISK_FS < <(df --output=source,fstype "$WORK" | tail -n 1)
log "compiling fsync-lat into $WORK"
cc -O2 -Wall -o "$WORK/fsync-lat" "$HERE/fsync-lat.c" || die "cc fsync-lat.c failed"
[[ ${PREALLOCATE:-1} == 0 ]] || MKFS_EXTRA=-P
mount_pmemfs_at "$WORK/region.img" "$WORK/pmemfs" $((FILE_MB * 2 + 128)) "$PMEMFS_OPTS"
mkdir "$WORK/bindfs-backing" "$WORK/host"
mount_bindfs "$WORK/bindfs-backing" "$WORK/bindfs"

for ((r = 1; r <= REPS; r++)); do
  log "repetition $r of $REPS"
  f=$WORK/pmemfs/lat
  "$WORK/fsync-lat" overwrite "$f" 1 "$FILE_MB" >/dev/null   # the file written and fsynced, untimed
  w0=$(stat_of write fuse_ops ''); s0=$(stat_of fsync fuse_ops '')
  wt0=$(stat_of write fuse_time _us); st0=$(stat_of fsync fuse_time _us)
  read -r p50 p99 mean < <("$WORK/fsync-lat" rewrite "$f" "$OPS" "$FILE_MB")
  w1=$(stat_of write fuse_ops ''); s1=$(stat_of fsync fuse_ops '')
  wt1=$(stat_of write fuse_time _us); st1=$(stat_of fsync fuse_time _us)
  ((w1 - w0 >= OPS && s1 - s0 >= OPS)) || die "the daemon counted $((w1 - w0)) writes and $((s1 - s0)) fsyncs for $OPS overwrites"
  add client_p50 "$p50"; add client_p99 "$p99"; add client_mean "$mean"
  dw=$(awk -v t=$((wt1 - wt0)) -v n=$((w1 - w0)) 'BEGIN { printf "%.1f", t / n }')
  ds=$(awk -v t=$((st1 - st0)) -v n=$((s1 - s0)) 'BEGIN { printf "%.1f", t / n }')
  add daemon_write "$dw"; add daemon_fsync "$ds"
  add transport "$(awk -v m="$mean" -v a="$dw" -v b="$ds" 'BEGIN { printf "%.1f", m - a - b }')"
  rm -f "$f"

  read -r p50 p99 mean < <("$WORK/fsync-lat" mapped "$WORK/host/map" "$OPS" "$FILE_MB")
  add host_flush_p50 "$p50"; add host_flush_mean "$mean"
  rm -f "$WORK/host/map"
  read -r p50 p99 mean < <("$WORK/fsync-lat" overwrite "$WORK/host/lat" "$OPS" "$FILE_MB")
  add host_p50 "$p50"; add host_mean "$mean"
  rm -f "$WORK/host/lat"
  read -r p50 p99 mean < <("$WORK/fsync-lat" overwrite "$WORK/bindfs/lat" "$OPS" "$FILE_MB")
  add bindfs_p50 "$p50"; add bindfs_mean "$mean"
  rm -f "$WORK/bindfs/lat"
done

echo
echo "one 4 KiB overwrite + fsync, pmemfs -o $PMEMFS_OPTS (region on $DISK_FS), median of $REPS runs of $OPS, µs"
printf '%-34s %10s\n' \
  "client p50 on pmemfs" "$(med client_p50)" \
  "client p99 on pmemfs" "$(med client_p99)" \
  "client mean on pmemfs" "$(med client_mean)" \
  "  daemon: WRITE request, mean" "$(med daemon_write)" \
  "  daemon: FSYNC request, mean" "$(med daemon_fsync)" \
  "  transport and client, mean" "$(med transport)" \
  "host: store + msync, p50" "$(med host_flush_p50)" \
  "host: store + msync, mean" "$(med host_flush_mean)" \
  "host: pwrite + fsync on $DISK_FS, p50" "$(med host_p50)" \
  "host: pwrite + fsync on $DISK_FS, mean" "$(med host_mean)" \
  "bindfs over $DISK_FS, p50" "$(med bindfs_p50)" \
  "bindfs over $DISK_FS, mean" "$(med bindfs_mean)"
echo "(daemon means from .pmemfs/stats fuse_time / fuse_ops over the timed part; transport = client mean - both daemon means)"
echo "machine: $(nproc) CPUs, Linux $(uname -r), scratch $WORK on $DISK_DEV ($DISK_FS)"
