#!/usr/bin/env bash
# `npm run bench` (root; not part of npm test): every figure the FUSE
# transport is judged by, for pmemfs, tmpfs and bindfs over tmpfs in the
# same run, each the median of REPS repetitions, with pmemfs's ratio to
# each baseline (above 1: pmemfs is faster for throughput and IOPS; for
# times the ratio is baseline over pmemfs, so above 1 is again faster).
#
#   dd write/read   SIZE_MB MiB, bs=1M, conv=fsync; read after dropping caches
#   fio randread    4 KiB, psync QD1, O_DIRECT; and libaio QD16, O_DIRECT
#   fio randwrite   the same
#   create/stat/unlink  NFILES empty files in one directory (µs/op); the stats
#                   start 1.5 s after the creates, past pmemfs's and libfuse's
#                   1 s entry/attribute timeouts, so each is a lookup round trip
#                   on both FUSE filesystems whatever the create speed
#   cp -a           TREE copied in (s)
#
# pmemfs runs -o dax=always (direct_io: every byte reaches the daemon);
# bindfs runs with BINDFS_OPTS (default "-o direct_io,big_writes": libfuse 2 caches entries and attributes for 1 s, as pmemfs does,
# the same FUSE settings). tmpfs takes O_DIRECT on kernels >= 6.6. The daemon's
# RSS (VmRSS, VmHWM) is printed at the end.
#
# Environment: REPS (3), SIZE_MB (1024), FIO_SECONDS (5), FIO_SIZE_MB (256), PMEMFS_OPTS
# (dax=always,log=warn; e.g. add nopowerfail),
# NFILES (10000), TREE (/usr/share/doc), BINDFS_OPTS, and those of lib.sh.
set -euo pipefail

REPS=${REPS:-3}
SIZE_MB=${SIZE_MB:-1024}
FIO_SECONDS=${FIO_SECONDS:-5}
FIO_SIZE_MB=${FIO_SIZE_MB:-256}
NFILES=${NFILES:-10000}
TREE=${TREE:-/usr/share/doc}
BINDFS_OPTS=${BINDFS_OPTS:--o direct_io,big_writes}
PMEMFS_OPTS=${PMEMFS_OPTS:-dax=always,log=warn}
# shellcheck source=scripts/bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_positive REPS SIZE_MB FIO_SECONDS FIO_SIZE_MB NFILES
[[ -d $TREE ]] || die "TREE=$TREE is not a directory"
bench_require "$PMEMFS" "$MKFS_PMEMFS" bindfs dd fio perl node cp mountpoint awk du

TREE_MB=$(du -sm "$TREE" | awk '{ print $1 }')
REGION_MB=$((SIZE_MB + FIO_SIZE_MB + TREE_MB * 2 + 512))

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
mbps() { awk -v b="$1" -v t0="$2" -v t1="$3" 'BEGIN { printf "%.0f", b / 1048576 / (t1 - t0) }'; }

# One repetition of everything on directory D; appends to the arrays of target T.
declare -A V=()
add() { V[$1,$2]="${V[$1,$2]:-} $3"; }
rep() {
  local d=$1 t=$2 t0 t1 bytes=$((SIZE_MB * 1048576)) mode qd eng out
  t0=$(now); dd if=/dev/zero of="$d/seq" bs=1M count="$SIZE_MB" conv=fsync status=none; t1=$(now)
  add "$t" dd_write "$(mbps "$bytes" "$t0" "$t1")"
  drop_caches
  t0=$(now); dd if="$d/seq" of=/dev/null bs=1M status=none; t1=$(now)
  add "$t" dd_read "$(mbps "$bytes" "$t0" "$t1")"
  rm -f "$d/seq"
  for mode in randread randwrite; do
    for qd in 1 16; do
      eng=psync; ((qd > 1)) && eng=libaio
      out=$(fio --name=b --filename="$d/fio" --size="${FIO_SIZE_MB}m" --bs=4k --rw="$mode" --direct=1 \
        --ioengine="$eng" --iodepth="$qd" --time_based --runtime="$FIO_SECONDS" --randrepeat=0 \
        --output-format=json 2>/dev/null)
      add "$t" "${mode}_qd$qd" "$(node -e 'const j = JSON.parse(require("fs").readFileSync(0, "utf8")); const o = j.jobs[0]; console.log(Math.round(o.read.iops + o.write.iops))' <<<"$out")"
    done
  done
  rm -f "$d/fio"
  mkdir "$d/many"
  out=$(perl -MTime::HiRes=time -e '
    my ($d, $n) = @ARGV;
    my $t = time; for (1 .. $n) { open(my $h, ">", "$d/f$_") or die "create: $!\n"; close($h) } my $c = (time - $t) / $n * 1e6;
    select(undef, undef, undef, 1.5);   # past the 1 s entry/attribute timeouts: every stat is a lookup
    $t = time; for (1 .. $n) { stat("$d/f$_") or die "stat: $!\n" } my $s = (time - $t) / $n * 1e6;
    $t = time; for (1 .. $n) { unlink("$d/f$_") or die "unlink: $!\n" } my $u = (time - $t) / $n * 1e6;
    printf "%.1f %.1f %.1f\n", $c, $s, $u;' "$d/many" "$NFILES")
  read -r c s u <<<"$out"
  add "$t" create_us "$c"; add "$t" stat_us "$s"; add "$t" unlink_us "$u"
  rmdir "$d/many"
  t0=$(now); cp -a "$TREE" "$d/tree"; t1=$(now)
  add "$t" cp_s "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
  rm -rf "$d/tree"
}

bench_init $((REGION_MB + SIZE_MB + FIO_SIZE_MB + TREE_MB + 512))
mkdir "$TMPFS/plain"
mount_pmemfs "$WORK/pmemfs" "$REGION_MB" "$PMEMFS_OPTS"
PMEMFS_PID=${BENCH_DAEMONS[-1]#* }
# shellcheck disable=SC2086  # BINDFS_OPTS is a list of options
mount_bindfs "$TMPFS/plain" "$WORK/bindfs" $BINDFS_OPTS
mkdir "$TMPFS/plain/b" "$TMPFS/t"
for ((r = 1; r <= REPS; r++)); do
  log "repetition $r of $REPS: pmemfs"; rep "$WORK/pmemfs" pmemfs
  log "repetition $r of $REPS: tmpfs"; rep "$TMPFS/t" tmpfs
  log "repetition $r of $REPS: bindfs"; rep "$WORK/bindfs/b" bindfs
done
RSS=$(awk '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } /^RssAnon/ { a = $2 } /^RssFile/ { f = $2 } /^RssShmem/ { s = $2 }
  END { printf "%d MiB (peak %d MiB): %d MiB heap and other anonymous memory, %d MiB of the mapped region and files", r / 1024, h / 1024, a / 1024, (f + s) / 1024 }' "/proc/$PMEMFS_PID/status")

# name, unit, higher-is-better (1) or lower (0)
METRICS=(
  "dd_write MB/s 1" "dd_read MB/s 1"
  "randread_qd1 IOPS 1" "randread_qd16 IOPS 1" "randwrite_qd1 IOPS 1" "randwrite_qd16 IOPS 1"
  "create_us µs/op 0" "stat_us µs/op 0" "unlink_us µs/op 0" "cp_s s 0"
)
echo
echo "pmemfs -o $PMEMFS_OPTS vs tmpfs vs bindfs $BINDFS_OPTS, median of $REPS; $(nproc) CPUs, $(uname -r)"
printf '%-16s %-7s %10s %10s %10s %12s %12s\n' metric unit pmemfs tmpfs bindfs 'vs tmpfs' 'vs bindfs'
for m in "${METRICS[@]}"; do
  read -r name unit up <<<"$m"
  # shellcheck disable=SC2086
  p=$(median ${V[pmemfs,$name]}); t=$(median ${V[tmpfs,$name]}); b=$(median ${V[bindfs,$name]})
  if ((up)); then rt=$(ratio "$p" "$t"); rb=$(ratio "$p" "$b"); else rt=$(ratio "$t" "$p"); rb=$(ratio "$b" "$p"); fi
  printf '%-16s %-7s %10s %10s %10s %12s %12s\n' "$name" "$unit" "$p" "$t" "$b" "$rt" "$rb"
done
echo "(ratios above 1: pmemfs is better; dd write/read of ${SIZE_MB} MiB; fio ${FIO_SECONDS} s on ${FIO_SIZE_MB} MiB; ${NFILES} files; cp -a of $TREE, ${TREE_MB} MiB)"
echo "pmemfs daemon RSS: $RSS"
