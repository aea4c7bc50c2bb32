#!/usr/bin/env bash
# Metadata speed: per-operation latency of stat, create and unlink, and the
# time to copy a real tree in (cp -a) and walk it (find -ls), for pmemfs,
# tmpfs and bindfs over tmpfs, measured in the same run.
# `npm run bench:meta` as root; not part of npm test.
#
#   stat     NOPS stat(2) calls on one file, one perl process (start-up
#            amortised); on pmemfs each is a FUSE GETATTR (attr_timeout=0)
#   create   NFILES empty files created (open O_CREAT, close) in one directory
#   unlink   the same files removed
#   cp -a    TREE (default /usr/share/doc) copied in: data, modes, times,
#            xattrs, hard links, symlinks
#   find -ls the copy walked, every entry stat'ed
#   scaling  then scripts/bench/dirscale.sh: creates, lookups and unlinks in
#            one directory of 1k, 10k and 100k entries (skip: DIRSCALE=0)
#
# pmemfs runs with its default options (dax=never: the page cache serves
# data; attr_timeout=0, so every stat reaches the daemon). bindfs runs with
# BINDFS_OPTS, by default "-o attr_timeout=0": the same attribute caching,
# so the difference is the daemon. BINDFS_OPTS=" " gives libfuse 2's default
# 1 s caching, which answers repeated stats in the kernel.
#
# Environment: NOPS (20000), NFILES (2000), TREE (/usr/share/doc),
# BINDFS_OPTS ("-o attr_timeout=0"), and those of lib.sh.
set -euo pipefail

NOPS=${NOPS:-20000}
NFILES=${NFILES:-2000}
TREE=${TREE:-/usr/share/doc}
BINDFS_OPTS=${BINDFS_OPTS:--o attr_timeout=0}
# shellcheck source=scripts/bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $NOPS =~ ^[1-9][0-9]*$ ]] || die "NOPS must be a positive integer, got '$NOPS'"
[[ $NFILES =~ ^[1-9][0-9]*$ ]] || die "NFILES must be a positive integer, got '$NFILES'"
[[ -d $TREE ]] || die "TREE=$TREE is not a directory"
bench_require "$PMEMFS" "$MKFS_PMEMFS" bindfs perl cp find du mountpoint awk

TREE_MB=$(du -sm "$TREE" | awk '{ print $1 }')
TREE_ENTRIES=$(find "$TREE" | wc -l)
REGION_MB=$((TREE_MB * 2 + 256))

ns() { date +%s%N; }
us_per() { awk -v t0="$1" -v t1="$2" -v n="$3" 'BEGIN { printf "%.1f", (t1 - t0) / 1000 / n }'; }
secs() { awk -v t0="$1" -v t1="$2" 'BEGIN { printf "%.2f", (t1 - t0) / 1e9 }'; }

# measure DIR NAME: sets STAT, CREATE, UNLINK (µs/op), CP, WALK (s) for NAME.
declare -A STAT=() CREATE=() UNLINK=() CP=() WALK=()
measure() {
  local d=$1 name=$2 t0 t1
  log "$name: $NOPS stat, $NFILES create/unlink, cp -a $TREE ($TREE_ENTRIES entries, $TREE_MB MiB)"
  : >"$d/probe"
  t0=$(ns); perl -e 'my ($f, $n) = @ARGV; for (1 .. $n) { stat($f) or die "stat $f: $!\n" }' "$d/probe" "$NOPS"; t1=$(ns)
  STAT[$name]=$(us_per "$t0" "$t1" "$NOPS")
  mkdir "$d/many"
  t0=$(ns)
  perl -e 'my ($d, $n) = @ARGV; for (1 .. $n) { open(my $h, ">", "$d/f$_") or die "create $d/f$_: $!\n"; close($h) }' "$d/many" "$NFILES"
  t1=$(ns)
  CREATE[$name]=$(us_per "$t0" "$t1" "$NFILES")
  t0=$(ns); perl -e 'my ($d, $n) = @ARGV; for (1 .. $n) { unlink("$d/f$_") or die "unlink $d/f$_: $!\n" }' "$d/many" "$NFILES"; t1=$(ns)
  UNLINK[$name]=$(us_per "$t0" "$t1" "$NFILES")
  t0=$(ns); cp -a "$TREE" "$d/tree"; t1=$(ns)
  CP[$name]=$(secs "$t0" "$t1")
  t0=$(ns); find "$d/tree" -ls >/dev/null; t1=$(ns)
  WALK[$name]=$(secs "$t0" "$t1")
  rm -rf "$d/tree" "$d/many" "$d/probe"
}

# The tmpfs holds the region and, in turn, the tmpfs copy (bindfs shows it too).
bench_init $((REGION_MB + TREE_MB + 256))
mkdir "$TMPFS/plain"

mount_pmemfs "$WORK/pmemfs" "$REGION_MB" log=warn
measure "$WORK/pmemfs" pmemfs
measure "$TMPFS/plain" tmpfs
# shellcheck disable=SC2086  # BINDFS_OPTS is a list of options
mount_bindfs "$TMPFS/plain" "$WORK/bindfs" $BINDFS_OPTS
measure "$WORK/bindfs" bindfs

row() { printf '%-26s %10s %10s %10s %10s %10s\n' "$@"; }
echo
printf 'metadata: stat x%s, create/unlink x%s (µs/op); cp -a and find -ls of %s, %s entries (s)\n' \
  "$NOPS" "$NFILES" "$TREE" "$TREE_ENTRIES"
row target 'stat µs' 'create µs' 'unlink µs' 'cp -a s' 'find -ls s'
for t in pmemfs tmpfs bindfs; do
  label=$t
  if [[ $t == bindfs ]]; then label="bindfs $BINDFS_OPTS"; [[ -n ${BINDFS_OPTS// /} ]] || label='bindfs (defaults)'; fi
  row "$label" "${STAT[$t]}" "${CREATE[$t]}" "${UNLINK[$t]}" "${CP[$t]}" "${WALK[$t]}"
done
for b in tmpfs bindfs; do
  row "ratio pmemfs/$b" "$(ratio "${STAT[pmemfs]}" "${STAT[$b]}")" "$(ratio "${CREATE[pmemfs]}" "${CREATE[$b]}")" \
    "$(ratio "${UNLINK[pmemfs]}" "${UNLINK[$b]}")" "$(ratio "${CP[pmemfs]}" "${CP[$b]}")" "$(ratio "${WALK[pmemfs]}" "${WALK[$b]}")"
done
echo '(ratios are pmemfs time over the baseline time: above 1 means pmemfs is slower)'

if [[ ${DIRSCALE:-1} != 0 ]]; then
  echo
  bash "$(dirname "${BASH_SOURCE[0]}")/dirscale.sh"
fi
