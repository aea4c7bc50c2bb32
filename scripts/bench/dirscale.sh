#!/usr/bin/env bash
# Directory scaling through the mount: one directory filled to N entries,
# then 1000 creates, 1000 lookups (stat of existing names) and 1000 unlinks
# timed at that size, for N in SIZES, on pmemfs, tmpfs and bindfs over
# tmpfs in the same run; then the time to mount a pmemfs region holding the
# largest directory. The per-operation cost should not grow with N.
# `bash scripts/bench/dirscale.sh` as root; not part of npm test.
#
# Environment: SIZES (default "1000 10000 100000"), BINDFS_OPTS
# ("-o attr_timeout=0", as meta.sh), and those of lib.sh.
set -euo pipefail

SIZES=${SIZES:-1000 10000 100000}
BINDFS_OPTS=${BINDFS_OPTS:--o attr_timeout=0}
# shellcheck source=scripts/bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_require "$PMEMFS" "$MKFS_PMEMFS" bindfs perl mountpoint awk
MAX=0
for n in $SIZES; do [[ $n =~ ^[1-9][0-9]*$ ]] || die "SIZES: '$n' is not a positive integer"; (( n > MAX )) && MAX=$n; done

# fill DIR FROM TO: create DIR/f<FROM>..f<TO-1>
fill() { perl -e 'my ($d, $a, $b) = @ARGV; for ($a .. $b - 1) { open(my $h, ">", "$d/f$_") or die "create $d/f$_: $!\n"; close($h) }' "$@"; }
# phase DIR N: µs/op of 1000 creates, lookups, unlinks with N entries present
phase() {
  perl -MTime::HiRes=time -e '
    my ($d, $n) = @ARGV; my $k = 1000;
    my $t = time; for (1 .. $k) { open(my $h, ">", "$d/x$_") or die "create: $!\n"; close($h) } my $c = (time - $t) / $k * 1e6;
    $t = time; for (1 .. $k) { my $i = ($_ * 7919) % $n; stat("$d/f$i") or die "stat $d/f$i: $!\n" } my $l = (time - $t) / $k * 1e6;
    $t = time; for (1 .. $k) { unlink("$d/x$_") or die "unlink: $!\n" } my $u = (time - $t) / $k * 1e6;
    printf "%.1f %.1f %.1f\n", $c, $l, $u;' "$@"
}

declare -A R=()
measure() {  # measure DIR NAME
  local d=$1 name=$2 have=0 n
  mkdir "$d/big"
  for n in $SIZES; do
    log "$name: filling to $n entries"
    fill "$d/big" "$have" "$n"; have=$n
    R[$name,$n]=$(phase "$d/big" "$n")
  done
}

bench_init $((MAX / 1000 * 8 + 512))
mkdir "$TMPFS/plain"
# One inode per 16 KiB by default: size the (sparse) region for MAX files.
mount_pmemfs "$WORK/pmemfs" $((MAX / 1000 * 20 + 256)) log=warn
measure "$WORK/pmemfs" pmemfs
# Mount time of a region holding the largest directory.
unmount_last
t0=$(now)
mount_pmemfs_existing "$WORK/pmemfs" log=warn
t1=$(now)
MOUNT_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
measure "$TMPFS/plain" tmpfs
# shellcheck disable=SC2086
mount_bindfs "$TMPFS/plain" "$WORK/bindfs" $BINDFS_OPTS
rm -rf "$TMPFS/plain/big"
measure "$WORK/bindfs" bindfs

echo
echo "one directory: 1000 creates, lookups (stat) and unlinks at each size (µs/op)"
printf '%-8s %10s' target entries; printf ' %10s %10s %10s\n' create lookup unlink
for t in pmemfs tmpfs bindfs; do
  for n in $SIZES; do
    read -r c l u <<<"${R[$t,$n]}"
    printf '%-8s %10s %10s %10s %10s\n' "$t" "$n" "$c" "$l" "$u"
  done
done
for n in $SIZES; do
  read -r pc pl pu <<<"${R[pmemfs,$n]}"; read -r bc bl bu <<<"${R[bindfs,$n]}"
  printf 'ratio pmemfs/bindfs at %-7s %6s %10s %10s\n' "$n" "$(ratio "$pc" "$bc")" "$(ratio "$pl" "$bl")" "$(ratio "$pu" "$bu")"
done
echo "mount of a pmemfs region holding $MAX entries in one directory: ${MOUNT_S} s (daemon start to mounted)"
