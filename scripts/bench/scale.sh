#!/usr/bin/env bash
# `npm run bench:scale` (root; not part of npm test or npm run bench):
# metadata at scale (issue 18), pmemfs against ext4 on a loop device of the
# same size, in one run. Files are made by mkfiles.c (one process: open,
# write of i % 101 bytes, close). Two phases, each on a FRESH filesystem of
# each kind (mkfs, mount), so every figure is about N files, not 2N:
#
#   10dirs  N files spread over 10 directories
#   1dir    N files in one directory, plus a 1k-entry directory (1000 files,
#           made before the N, untimed) to compare against
#
# Figures, per phase unless marked:
#   create       N files, files/s (mkfiles timed whole)
#   unmount      clean unmount after the creates, ms (pmemfs: fusermount -u
#                until the daemon has exited, status 0; ext4: umount)
#   fsck         a full check of the unmounted filesystem, s (fsck.pmemfs -n;
#                e2fsck -fn on the loop device)
#   rss_fsck     fsck.pmemfs's peak RSS, MiB (its closing line on stderr)
#   mount        ms (pmemfs: daemon start until `mountpoint -q` succeeds,
#                polled every 10 ms; ext4: the `mount` command)
#   rss_mount    the daemon's VmRSS right after that mount, MiB
#   find         `find MNT -type f | wc -l` over everything (count checked), s
#   rss_find     VmRSS after that find
#   rss_forget   VmRSS after sync, `echo 2 > /proc/sys/vm/drop_caches` (the
#                kernel forgets its dentries and inodes) and a 2 s wait
#   rm           `rm -rf` of everything, after the forget, s
#   1dir only, right after the mount (nothing of the filesystem in the
#   kernel's caches), before the find:
#   stat_p50     stat(2) of 1000 random existing names, one at a time (perl,
#                CLOCK_MONOTONIC per call), median in µs: in the N-entry
#                directory and in the 1k-entry directory, alternating (the
#                same daemon and host state for both)
#   stat_first   the first of those stats in the N-entry directory, ms: the
#                one that finds its entries still on media
#   create_p50   1000 creates (O_CREAT|O_EXCL, close) in each, alternating,
#                median in µs
#   ls_f         `ls -f | wc -l` of the N-entry directory, after the forget, s
# ext4 has no daemon: its rss_* figures are "-". The ratio is pmemfs / ext4
# (for files/s higher is better; for everything else lower is better). The
# issue's goals for pmemfs are checked below the table, then the machine.
#
# Both backing files (the pmemfs region, the ext4 loop file) are sparse files
# in a scratch directory under BENCH_DIR (default /var/tmp; refused if tmpfs
# or ramfs). Neither is dropped from the host page cache: both are read at
# memory speed, as pmem would be; "cold" means a fresh mount of the
# filesystem. Sizing: INODES = N * 1.2 + 4096. If `mkfs.pmemfs --help` lists
# -i, the region holds the data (one 4 KiB block per file) plus slack and -i
# gives it INODES inodes; otherwise the region is made big enough for the
# default ratio (one inode per 16 KiB) to give INODES. ext4 (mkfs.ext4 -N
# INODES, inode tables and journal initialised at mkfs) gets a loop device
# (losetup -f) over a sparse file of the same size.
#
# Environment: N (1000000, at least 1000), PMEMFS_OPTS (dax=always,log=warn),
# MOUNT_WAIT (600: seconds allowed for one mount or unmount), BENCH_DIR, and those of lib.sh.
# Needs cc, perl, losetup, mkfs.ext4. N=100000 takes under 2 minutes on 2
# CPUs. pmemfs reads inodes on demand, but fsck.pmemfs and the find load
# every one (about 1-1.3 KiB per file at N=1000000), and ext4's and pmemfs's
# backing files stay in the host page cache: the script refuses to start
# with less than N * 8 KiB + 2 GiB available. PHASES (default "10dirs 1dir")
# runs only the phases named, TARGETS (default "pmemfs ext4") only the
# filesystems named (a diagnosis run); the goals line then uses what ran.
set -euo pipefail
export LC_ALL=C

N=${N:-1000000}
PMEMFS_OPTS=${PMEMFS_OPTS:-dax=always,log=warn}
MOUNT_WAIT=${MOUNT_WAIT:-600}
PHASES=${PHASES:-10dirs 1dir}
TARGETS=${TARGETS:-pmemfs ext4}
for p in $PHASES; do [[ $p == 10dirs || $p == 1dir ]] || { echo "scale.sh: PHASES may name 10dirs and 1dir, got '$p'" >&2; exit 2; }; done
for t in $TARGETS; do [[ $t == pmemfs || $t == ext4 ]] || { echo "scale.sh: TARGETS may name pmemfs and ext4, got '$t'" >&2; exit 2; }; done
BENCH_DIR=${BENCH_DIR:-/var/tmp}
SAMPLES=1000  # stats and creates per directory; also the small directory's size
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/bench/lib.sh
. "$HERE/lib.sh"

[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$N'"
((N >= SAMPLES)) || die "N must be at least $SAMPLES, got '$N'"
[[ $MOUNT_WAIT =~ ^[1-9][0-9]*$ ]] || die "MOUNT_WAIT must be a positive integer, got '$MOUNT_WAIT'"
bench_require "$PMEMFS" "$MKFS_PMEMFS" cc perl losetup mkfs.ext4 mountpoint find awk df
perl -MTime::HiRes=clock_gettime,CLOCK_MONOTONIC -MList::Util=shuffle -e 1 || die "perl lacks Time::HiRes or List::Util"
[[ -d $BENCH_DIR ]] || die "BENCH_DIR=$BENCH_DIR is not a directory"

# Sizes, in MiB unless named otherwise.
INODES=$((N * 12 / 10 + 4096))
DATA_MB=$((N * 4096 * 11 / 10 / 1048576 + 512))  # a block per file, directories, the log
ITABLE_MB=$((INODES * 512 / 1048576 + 1))
if "$MKFS_PMEMFS" --help 2>&1 | grep -Eq '(^|[[:space:]])-i,'; then
  REGION_MB=$((DATA_MB + ITABLE_MB))
  ((REGION_MB * 1048576 / INODES >= 1024)) || REGION_MB=$(((INODES * 1024 + 1048575) / 1048576))
  MKFS_ARGS=(-i "$((REGION_MB * 1048576 / INODES))")
  SIZING="mkfs.pmemfs -i ${MKFS_ARGS[1]}"
else
  ((INODES <= 1 << 22)) || die "N=$N needs more than 4M inodes: mkfs.pmemfs has no -i to go past its default cap"
  REGION_MB=$(((INODES * 16384 + 1048575) / 1048576))
  ((REGION_MB >= DATA_MB + ITABLE_MB)) || REGION_MB=$((DATA_MB + ITABLE_MB))
  MKFS_ARGS=()
  SIZING="mkfs.pmemfs default ratio (no -i), region sized for the inodes"
fi
MEM_MB=$(awk '/^MemAvailable:/ { printf "%d", $2 / 1024 }' /proc/meminfo)
((MEM_MB >= N * 8 / 1024 + 2048)) || die "about $((N * 8 / 1024 + 2048)) MiB of free memory needed for N=$N (pmemfs's RSS), $MEM_MB available"

# ms_between T0 T1 (EPOCHREALTIME values); s_between likewise in seconds.
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
s_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
rss_mib() { awk '/^VmRSS:/ { printf "%d", $2 / 1024 }' "/proc/$1/status"; }

declare -A R=()
# put TARGET METRIC VALUE: a figure, which must be a number (or "-" for ext4's RSS).
put() {
  [[ $3 =~ ^[0-9]+(\.[0-9]+)?$ || ($1 == ext4 && $2 == rss_* && $3 == -) ]] || die "$1 $2: expected a number, got '$3'"
  R[$1,$2]=$3
  log "$1: $2 = $3"
}

# pmemfs_fsck / ext4_fsck: a full read-only check of the unmounted filesystem; FSCK_S, FSCK_MIB.
FSCK_PMEMFS=${PMEMFS_BIN:+$PMEMFS_BIN/}fsck.pmemfs
pmemfs_fsck() {
  local t0=$EPOCHREALTIME
  "$FSCK_PMEMFS" -n "$PM_REGION" >"$WORK/fsck.out" 2>"$WORK/fsck.err" || { cat "$WORK/fsck.out" "$WORK/fsck.err" >&2; die "fsck.pmemfs -n found problems"; }
  FSCK_S=$(s_between "$t0" "$EPOCHREALTIME")
  # Its closing line on a large region: "... checked in T s, peak M MiB resident"; a small one prints none.
  FSCK_MIB=$(sed -n 's/.* peak \([0-9]*\) MiB resident$/\1/p' "$WORK/fsck.err")
  [[ -n $FSCK_MIB ]] || FSCK_MIB=0
}
ext4_fsck() {
  local t0=$EPOCHREALTIME
  e2fsck -fn "$LOOPDEV" >"$WORK/fsck.out" 2>&1 || { cat "$WORK/fsck.out" >&2; die "e2fsck -fn found problems"; }
  FSCK_S=$(s_between "$t0" "$EPOCHREALTIME")
  FSCK_MIB=-
}

# --- pmemfs: the region file, the daemon started and stopped by PID -------
PM_REGION='' PM_MNT='' PM_PID=''
pmemfs_fresh() {
  rm -f "$PM_REGION"
  log "pmemfs: mkfs.pmemfs -s ${REGION_MB}m ${MKFS_ARGS[*]} (sparse, on disk)"
  "$MKFS_PMEMFS" -s "${REGION_MB}m" "${MKFS_ARGS[@]}" "$PM_REGION" >/dev/null
  pmemfs_mount
}
# pmemfs_mount: start the daemon; MOUNT_MS from its start to mounted (10 ms polls).
pmemfs_mount() {
  local t0 t1
  t0=$EPOCHREALTIME
  "$PMEMFS" "$PM_REGION" "$PM_MNT" -f -o "$PMEMFS_OPTS" >>"$WORK/pmemfs.log" 2>&1 </dev/null &
  PM_PID=$!
  BENCH_DAEMONS+=("$PM_MNT $PM_PID")
  until mountpoint -q "$PM_MNT"; do
    alive "$PM_PID" || { tail -n 20 "$WORK/pmemfs.log" >&2; die "the pmemfs daemon exited before mounting (log above)"; }
    ((${EPOCHREALTIME%.*} - ${t0%.*} < MOUNT_WAIT)) || die "pmemfs not mounted within ${MOUNT_WAIT}s"
    sleep 0.01
  done
  t1=$EPOCHREALTIME
  MOUNT_MS=$(ms_between "$t0" "$t1")
}
# pmemfs_unmount: fusermount -u, then the daemon's exit (status 0); UNMOUNT_MS.
pmemfs_unmount() {
  local t0 t1 rc=0
  t0=$EPOCHREALTIME
  "$FUSERMOUNT" -u "$PM_MNT" || die "fusermount -u $PM_MNT failed"
  while alive "$PM_PID"; do
    ((${EPOCHREALTIME%.*} - ${t0%.*} < MOUNT_WAIT)) || die "the pmemfs daemon still runs ${MOUNT_WAIT}s after its unmount"
    sleep 0.01
  done
  t1=$EPOCHREALTIME
  wait "$PM_PID" || rc=$?
  unset 'BENCH_DAEMONS[-1]'
  ((rc == 0)) || { tail -n 20 "$WORK/pmemfs.log" >&2; die "the pmemfs daemon exited with status $rc on unmount (log above)"; }
  UNMOUNT_MS=$(ms_between "$t0" "$t1")
}
pmemfs_destroy() { pmemfs_unmount; rm -f "$PM_REGION"; }
# pmemfs_rss: VmRSS in MiB; the log gets its split and the daemon's in-core counts (what a jump is made of).
pmemfs_rss() {
  local split counts
  split=$(awk '/^Rss(Anon|File|Shmem):/ { printf "%s %d MiB ", $1, $2 / 1024 }' "/proc/$PM_PID/status")
  counts=$(grep -oE '(^| )(in_core|dir_entries_in_core|dirs_unread|evictions|forgets)=[0-9]+' "$PM_MNT/.pmemfs/stats" | tr -d ' ' | tr '\n' ' ') || counts='?'
  log "pmemfs: $split| $counts" >&2
  rss_mib "$PM_PID"
}

# --- ext4: a sparse file of the same size on a loop device we attach ------
EXT4_FILE='' EXT4_MNT='' LOOPDEV=''
ext4_fresh() {
  rm -f "$EXT4_FILE"
  truncate -s "${REGION_MB}M" "$EXT4_FILE"
  LOOPDEV=$(losetup -f --show "$EXT4_FILE")
  log "ext4: mkfs.ext4 -N $INODES on $LOOPDEV"
  mkfs.ext4 -q -F -N "$INODES" -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$LOOPDEV"
  ext4_mount
}
ext4_mount() {
  local t0 t1
  t0=$EPOCHREALTIME
  mount -t ext4 "$LOOPDEV" "$EXT4_MNT"
  t1=$EPOCHREALTIME
  MOUNT_MS=$(ms_between "$t0" "$t1")
}
ext4_unmount() {
  local t0 t1
  t0=$EPOCHREALTIME
  umount "$EXT4_MNT"
  t1=$EPOCHREALTIME
  UNMOUNT_MS=$(ms_between "$t0" "$t1")
}
ext4_destroy() {
  ext4_unmount
  losetup -d "$LOOPDEV"
  LOOPDEV=
  rm -f "$EXT4_FILE"
}
ext4_rss() { echo -; }

scale_cleanup() {
  set +e
  if [[ -n $LOOPDEV ]]; then
    if mountpoint -q "$EXT4_MNT"; then umount "$EXT4_MNT" || umount -l "$EXT4_MNT"; fi
    losetup -d "$LOOPDEV"
  fi
  bench_cleanup
}

# --- the measurements -------------------------------------------------------
# stat_pair BIG NBIG SMALL NSMALL: median µs of SAMPLES stats of distinct
# random names among BIG/f0..f<NBIG-1>, and of SAMPLES among SMALL's (a
# fixed seed: the same names on both targets), and the first BIG stat in ms,
# printed "BIG SMALL FIRST". The two
# directories' stats alternate, so both are measured in the same state of
# the daemon and the host: measured one after the other, whichever came
# first after the mount was 30-70% slower (the daemon warming up).
stat_pair() {
  perl -MTime::HiRes=clock_gettime,CLOCK_MONOTONIC -MList::Util=shuffle -e '
    my ($bd, $bn, $sd, $sn, $k) = @ARGV; srand(18);
    my @b = map { "$bd/f$_" } (shuffle(0 .. $bn - 1))[0 .. $k - 1];
    my @s = map { "$sd/f$_" } (shuffle(0 .. $sn - 1))[0 .. $k - 1];
    my (@tb, @ts);
    for my $i (0 .. $k - 1) {
      for my $w ([$b[$i], \@tb], [$s[$i], \@ts]) {
        my $t0 = clock_gettime(CLOCK_MONOTONIC); stat($w->[0]) or die "stat $w->[0]: $!\n"; push @{$w->[1]}, clock_gettime(CLOCK_MONOTONIC) - $t0;
      }
    }
    my $p50 = sub { my @t = sort { $a <=> $b } @_; $t[int($#t / 2)] * 1e6 };
    printf "%.1f %.1f %.2f\n", $p50->(@tb), $p50->(@ts), $tb[0] * 1e3' "$1" "$2" "$3" "$4" "$SAMPLES"
}
# create_pair BIG SMALL: median µs of SAMPLES creates of new empty files
# BIG/c<i>, and of SAMPLES SMALL/c<i>, alternating, printed "BIG SMALL".
create_pair() {
  perl -MTime::HiRes=clock_gettime,CLOCK_MONOTONIC -MFcntl -e '
    my ($bd, $sd, $k) = @ARGV; my (@tb, @ts);
    for my $i (0 .. $k - 1) {
      for my $w (["$bd/c$i", \@tb], ["$sd/c$i", \@ts]) {
        my $t0 = clock_gettime(CLOCK_MONOTONIC); sysopen(my $h, $w->[0], O_WRONLY | O_CREAT | O_EXCL, 0644) or die "create $w->[0]: $!\n"; close($h); push @{$w->[1]}, clock_gettime(CLOCK_MONOTONIC) - $t0;
      }
    }
    my $p50 = sub { my @t = sort { $a <=> $b } @_; $t[int($#t / 2)] * 1e6 };
    printf "%.1f %.1f\n", $p50->(@tb), $p50->(@ts)' "$1" "$2" "$SAMPLES"
}
# timed_count EXPECTED CMD...: run CMD (its output is a count), check the
# count, print the seconds taken.
timed_count() {
  local want=$1 t0 t1 got
  shift
  t0=$EPOCHREALTIME
  got=$("$@")
  t1=$EPOCHREALTIME
  [[ $got == "$want" ]] || die "$*: counted $got, expected $want"
  s_between "$t0" "$t1"
}
count_files() { find "$1" -type f | wc -l; }
# shellcheck disable=SC2012  # the figure is ls -f's; our names are plain
count_entries() { ls -f "$1" | wc -l; }

# phase TARGET PHASE (10dirs or 1dir): everything above, on a fresh filesystem.
phase() {
  local t=$1 p=$2 mnt root t0 t1 files dirs=() i
  case $t in pmemfs) mnt=$PM_MNT ;; ext4) mnt=$EXT4_MNT ;; esac
  root=$mnt/t
  log "$t, $p: fresh filesystem, $N files"
  "${t}_fresh"
  mkdir "$root"
  if [[ $p == 10dirs ]]; then
    for ((i = 0; i < 10; i++)); do mkdir "$root/d$i"; dirs+=("$root/d$i"); done
    files=$N
  else
    mkdir "$root/big" "$root/small"
    "$WORK/mkfiles" "$SAMPLES" "$root/small" || die "$t: mkfiles (1k-entry directory) failed"
    dirs=("$root/big")
    files=$((N + SAMPLES))
  fi
  t0=$EPOCHREALTIME
  "$WORK/mkfiles" "$N" "${dirs[@]}" || die "$t: mkfiles failed"
  t1=$EPOCHREALTIME
  put "$t" "create_$p" "$(awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')"
  "${t}_unmount"; put "$t" "unmount_$p" "$UNMOUNT_MS"
  "${t}_fsck"; put "$t" "fsck_$p" "$FSCK_S"; put "$t" "rss_fsck_$p" "$FSCK_MIB"
  "${t}_mount"; put "$t" "mount_$p" "$MOUNT_MS"
  put "$t" "rss_mount_$p" "$("${t}_rss")"
  if [[ $p == 1dir ]]; then
    local pair st_big st_1k st_first
    read -r st_big st_1k st_first < <(stat_pair "$root/big" "$N" "$root/small" "$SAMPLES")
    put "$t" stat_p50_big "$st_big"; put "$t" stat_p50_1k "$st_1k"; put "$t" stat_first_big "$st_first"
    pair=$(create_pair "$root/big" "$root/small")
    put "$t" create_p50_big "${pair% *}"; put "$t" create_p50_1k "${pair#* }"
    files=$((files + 2 * SAMPLES))
  fi
  put "$t" "find_$p" "$(timed_count "$files" count_files "$mnt")"
  put "$t" "rss_find_$p" "$("${t}_rss")"
  sync
  echo 2 >/proc/sys/vm/drop_caches
  sleep 2
  put "$t" "rss_forget_$p" "$("${t}_rss")"
  [[ $p == 10dirs ]] || put "$t" ls_f "$(timed_count $((N + SAMPLES + 2)) count_entries "$root/big")"
  t0=$EPOCHREALTIME
  rm -rf "$root"
  t1=$EPOCHREALTIME
  put "$t" "rm_$p" "$(s_between "$t0" "$t1")"
  "${t}_destroy"
}

bench_init 16
trap scale_cleanup EXIT
case $(df --output=fstype "$WORK" | tail -n 1) in
  tmpfs | ramfs) die "$WORK is in memory: set BENCH_DIR to a directory on a disk" ;;
esac
AVAIL_MB=$(df -m --output=avail "$WORK" | tail -n 1 | tr -d ' ')
((AVAIL_MB >= DATA_MB + ITABLE_MB + 1024)) || die "about $((DATA_MB + ITABLE_MB + 1024)) MiB needed in $WORK, $AVAIL_MB free"
read -r DISK_DEV DISK_FS < <(df --output=source,fstype "$WORK" | tail -n 1)
PM_REGION=$WORK/region.img PM_MNT=$WORK/pmemfs
EXT4_FILE=$WORK/ext4.img EXT4_MNT=$WORK/ext4
mkdir "$PM_MNT" "$EXT4_MNT"
log "compiling mkfiles into $WORK"
cc -O2 -Wall -o "$WORK/mkfiles" "$HERE/mkfiles.c" || die "cc mkfiles.c failed"
log "N=$N, $INODES inodes, ${REGION_MB} MiB region and ext4 ($SIZING)"

TREE_ID=$(git -C "$HERE" describe --always --dirty 2>/dev/null || echo '?')  # the tree at the start
START=$EPOCHREALTIME
for p in $PHASES; do
  for t in $TARGETS; do phase "$t" "$p"; done
done
TOOK=$(s_between "$START" "$EPOCHREALTIME")

BIG=$N
((N % 1000000 == 0)) && BIG=$((N / 1000000))M
((N % 1000000 != 0 && N % 1000 == 0)) && BIG=$((N / 1000))k
# name, unit
METRICS=(
  "create_10dirs files/s" "create_1dir files/s"
  "unmount_10dirs ms" "unmount_1dir ms" "fsck_10dirs s" "fsck_1dir s" "rss_fsck_10dirs MiB" "rss_fsck_1dir MiB"
  "mount_10dirs ms" "mount_1dir ms"
  "rss_mount_10dirs MiB" "rss_mount_1dir MiB"
  "find_10dirs s" "find_1dir s"
  "rss_find_10dirs MiB" "rss_find_1dir MiB" "rss_forget_10dirs MiB" "rss_forget_1dir MiB"
  "stat_p50_big µs" "stat_p50_1k µs" "stat_first_big ms" "create_p50_big µs" "create_p50_1k µs"
  "ls_f s" "rm_10dirs s" "rm_1dir s"
)
# A phase PHASES left out: its figures are "-".
for m in "${METRICS[@]}"; do
  read -r name _ <<<"$m"
  for t in pmemfs ext4; do [[ -v "R[$t,$name]" ]] || R[$t,$name]=-; done
done
echo
echo "metadata at scale: N=$N files of 0-100 bytes, pmemfs -o $PMEMFS_OPTS vs ext4 on a loop device, each phase on a fresh filesystem"
echo "(big: the ${BIG}-entry directory; 1k: a 1000-entry one; ratio: pmemfs / ext4, files/s higher is better, the rest lower)"
printf '%-18s %-8s %10s %10s %9s\n' metric unit pmemfs ext4 ratio
for m in "${METRICS[@]}"; do
  read -r name unit <<<"$m"
  pv=${R[pmemfs,$name]} ev=${R[ext4,$name]}
  r=-
  [[ $ev == - || $pv == - ]] || r=$(awk -v a="$pv" -v b="$ev" 'BEGIN { if (b > 0) printf (a / b >= 100 ? "%.0f" : "%.3g"), a / b; else print "n/a" }')
  printf '%-18s %-8s %10s %10s %9s\n' "${name/big/$BIG}" "$unit" "$pv" "$ev" "$r"
done
q() { if [[ $1 == - || $2 == - ]]; then echo -; else awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; fi; }
maxof() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b) ? a : b }'; }
echo "issue 18 goals for pmemfs (ext4 alongside):"
printf '  %-34s %s ms (ext4 %s)\n' "mount < 200 ms:" "$(maxof "${R[pmemfs,mount_10dirs]}" "${R[pmemfs,mount_1dir]}")" "$(maxof "${R[ext4,mount_10dirs]}" "${R[ext4,mount_1dir]}")"
printf '  %-34s %s MiB\n' "RSS after mount < 300 MiB:" "$(maxof "${R[pmemfs,rss_mount_10dirs]}" "${R[pmemfs,rss_mount_1dir]}")"
printf '  %-34s %s MiB\n' "RSS after find + forget < 300 MiB:" "$(maxof "${R[pmemfs,rss_forget_10dirs]}" "${R[pmemfs,rss_forget_1dir]}")"
printf '  %-34s %s (ext4 %s)\n' "cold stat p50 $BIG / 1k <= 2:" "$(q "${R[pmemfs,stat_p50_big]}" "${R[pmemfs,stat_p50_1k]}")" "$(q "${R[ext4,stat_p50_big]}" "${R[ext4,stat_p50_1k]}")"
printf '  %-34s %s (ext4 %s)\n' "create p50 $BIG / 1k <= 2:" "$(q "${R[pmemfs,create_p50_big]}" "${R[pmemfs,create_p50_1k]}")" "$(q "${R[ext4,create_p50_big]}" "${R[ext4,create_p50_1k]}")"
echo "sizing: $INODES inodes, ${REGION_MB} MiB region and ext4 loop file ($SIZING); run took ${TOOK} s"
echo "machine: $(nproc) CPUs, $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r)," \
  "$("$PMEMFS" -V 2>/dev/null || echo 'pmemfs ?') (tree $TREE_ID), scratch $WORK on $DISK_DEV ($DISK_FS)"
