#!/usr/bin/env bash
# `npm run bench:durable` (root; not part of npm test or npm run bench): what
# a durable write costs on pmemfs whose region file is on a disk, against
# bindfs over that disk's filesystem and the filesystem itself, in the same
# run. Each figure is the median of REPS repetitions, with pmemfs's ratio to
# each baseline (above 1: pmemfs is better; for latencies the ratio is
# baseline over pmemfs, so above 1 is again better).
#
#   fsync_overwrite_p50/p99  one 4 KiB pwrite + fsync (µs), FSYNC_OPS times
#                   at random 4 KiB-aligned offsets of a FILE_MB MiB file
#                   written and fsynced beforehand (fsync-lat.c)
#   fsync_append_p50/p99     the same, each write at the end of a growing file
#   fio_fsync_jN    fio randwrite, 4 KiB, psync, --fsync=1, buffered, for N
#                   in FIO_JOBS (default 1 4 16: concurrent fsync-ing writers,
#                   what group commit is for; each on its own FIO_SIZE_MB MiB file,
#                   group_reporting), FIO_SECONDS s: IOPS
#   pmdk_tx         libpmemobj transactions/s for TX_SECONDS s on a POOL_MB
#                   MiB pool, each snapshotting and rewriting a 64-byte slot
#                   (pmdk-tx.c). PMEM_IS_PMEM_FORCE is unset: nothing here is
#                   DAX, so PMDK persists with msync(MS_SYNC)
#   pmdk_tx_preload the same under LD_PRELOAD=PRELOAD (libpmemfs-preload.so,
#                   installed by setup): on pmemfs PMDK gets MAP_SYNC
#                   mappings of the region's blocks and persists with cache
#                   flushes (its pmem path); elsewhere the preload passes
#                   mmap through, so the baselines measure its overhead only
#   sqlite_rollback/wal  commits/s of SQL_ROLLBACK_TX (journal_mode=DELETE)
#                   and SQL_WAL_TX (journal_mode=WAL) one-row INSERT
#                   transactions, synchronous=FULL, by the sqlite3 CLI from a
#                   generated script (timed whole: the process start is in)
#
# The three targets share one disk filesystem: the scratch directory goes
# under BENCH_DIR (default /var/tmp; refused if that is tmpfs or ramfs).
#   pmemfs   its region file in the scratch directory (mkfs.pmemfs, with -P
#            unless PREALLOCATE=0: every block of the region file allocated
#            and written on the host first, as a pmem device's are, so no
#            flush waits for the host to allocate a block the region uses
#            for the first time; a long-lived sparse region converges there), mounted
#            -o PMEMFS_OPTS (default dax=never,log=warn: the page cache, as
#            bindfs has; PMEMFS_OPTS=dax=always,log=warn measures the default
#            mount, whose files PMDK's pool and SQLite's WAL index can map
#            shared on kernels with FUSE_DIRECT_IO_ALLOW_MMAP, 6.6+;
#            powerfail recording stays on, as it is by default)
#   bindfs   bindfs (libfuse 2, C) over a scratch directory, BINDFS_OPTS
#            (default none: bindfs's own caching, the page cache and shared
#            mmap as pmemfs dax=never has; fsync reaches the disk through it)
#   the disk filesystem itself, a scratch directory (named by its type)
# At the end: the machine, and the pmemfs daemon's .pmemfs/stats lines on
# commits, persistence (host flushes) and fsyncs, counted over the whole run
# including untimed setup (prefills, fio's layout, pool creation).
#
# Environment: REPS (3), FSYNC_OPS (2000), FILE_MB (16), FIO_SECONDS (5),
# FIO_SIZE_MB (16), FIO_JOBS (1 4 16), TX_SECONDS (5), POOL_MB (64), SQL_ROLLBACK_TX (500),
# SQL_WAL_TX (2000), PMEMFS_OPTS, PREALLOCATE (1), BINDFS_OPTS, BENCH_DIR, PRELOAD
# (/usr/local/lib/libpmemfs-preload.so), IN_MEMORY (1: BENCH_DIR may be a
# tmpfs, for the same figures against bindfs over tmpfs and tmpfs), and
# those of lib.sh.
# Needs fio, sqlite3, bindfs, cc and libpmemobj (apt-get install fio sqlite3
# bindfs gcc pkg-config libpmemobj-dev). About 3 minutes with the defaults.
set -euo pipefail

REPS=${REPS:-3}
FSYNC_OPS=${FSYNC_OPS:-2000}
FILE_MB=${FILE_MB:-16}
FIO_SECONDS=${FIO_SECONDS:-5}
FIO_SIZE_MB=${FIO_SIZE_MB:-16}
FIO_JOBS=${FIO_JOBS:-1 4 16}
TX_SECONDS=${TX_SECONDS:-5}
POOL_MB=${POOL_MB:-64}
SQL_ROLLBACK_TX=${SQL_ROLLBACK_TX:-500}
SQL_WAL_TX=${SQL_WAL_TX:-2000}
PMEMFS_OPTS=${PMEMFS_OPTS:-dax=never,log=warn}
PRELOAD=${PRELOAD:-/usr/local/lib/libpmemfs-preload.so}
BINDFS_OPTS=${BINDFS_OPTS:-}
BENCH_DIR=${BENCH_DIR:-/var/tmp}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/bench/lib.sh
. "$HERE/lib.sh"

require_positive REPS FSYNC_OPS FILE_MB FIO_SECONDS FIO_SIZE_MB TX_SECONDS POOL_MB SQL_ROLLBACK_TX SQL_WAL_TX
((POOL_MB >= 8)) || die "POOL_MB must be at least 8 (libpmemobj's smallest pool)"
# dax=always needs FUSE_DIRECT_IO_ALLOW_MMAP (kernel 6.6+) for the PMDK pool and SQLite's WAL index:
# the pmemfs mount log says when the kernel lacks it, and those figures then fail.
for c in fio sqlite3 bindfs cc pkg-config; do
  command -v "$c" >/dev/null || die "'$c' not found: apt-get install $c (cc: gcc)"
done
pkg-config --exists libpmemobj || die "libpmemobj not found (pkg-config): apt-get install libpmemobj-dev"
bench_require "$PMEMFS" "$MKFS_PMEMFS" node mountpoint awk df
[[ -r $PRELOAD ]] || die "PRELOAD=$PRELOAD is missing: npm run setup builds and installs libpmemfs-preload.so"
[[ -d $BENCH_DIR ]] || die "BENCH_DIR=$BENCH_DIR is not a directory"
case $(df --output=fstype "$BENCH_DIR" | tail -n 1) in
  tmpfs | ramfs) [[ ${IN_MEMORY:-0} == 1 ]] || die "BENCH_DIR=$BENCH_DIR is in memory: set BENCH_DIR to a directory on a disk (or IN_MEMORY=1 to compare against tmpfs on purpose)" ;;
esac

# shellcheck disable=SC2086  # V[T,M] is a list of numbers
med() { median ${V[$1,$2]}; }  # med TARGET METRIC

# add TARGET METRIC VALUE: one repetition's figure, which must be a number.
declare -A V=()
add() {
  [[ $3 =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "$1 $2: expected a number, got '$3'"
  V[$1,$2]="${V[$1,$2]:-} $3"
}

fsync_lat() {  # fsync_lat DIR TARGET
  local p50 p99
  read -r p50 p99 _ < <("$WORK/fsync-lat" overwrite "$1/lat" "$FSYNC_OPS" "$FILE_MB")
  add "$2" fsync_overwrite_p50 "$p50"; add "$2" fsync_overwrite_p99 "$p99"
  read -r p50 p99 _ < <("$WORK/fsync-lat" append "$1/lat" "$FSYNC_OPS")
  add "$2" fsync_append_p50 "$p50"; add "$2" fsync_append_p99 "$p99"
  rm -f "$1/lat"
}

fio_fsync() {  # fio_fsync DIR TARGET
  local j out
  for j in $FIO_JOBS; do
    out=$(fio --name=w --directory="$1" --size="${FIO_SIZE_MB}m" --bs=4k --rw=randwrite --fsync=1 \
      --ioengine=psync --numjobs="$j" --group_reporting --time_based --runtime="$FIO_SECONDS" \
      --randrepeat=0 --output-format=json 2>"$WORK/fio.err") || { cat "$WORK/fio.err" >&2; die "$2: fio failed"; }
    add "$2" "fio_fsync_j$j" "$(node -e 'const j = JSON.parse(require("fs").readFileSync(0, "utf8")); console.log(Math.round(j.jobs[0].write.iops))' <<<"$out")"
    rm -f "$1"/w.*
  done
}

sqlite_commits() {  # sqlite_commits DIR TARGET MODE SCRIPT N METRIC
  local db=$1/s.db t0 t1
  rm -f "$db" "$db-journal" "$db-wal" "$db-shm"
  sqlite3 -bail "$db" "PRAGMA journal_mode=$3; CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);" >/dev/null
  t0=$(now)
  sqlite3 -bail "$db" <"$4" >/dev/null || die "$2: sqlite3 ($3) failed"
  t1=$(now)
  [[ $(sqlite3 "$db" 'PRAGMA journal_mode; SELECT count(*) FROM t;' | tr '\n' ' ') == "$3 $5 " ]] ||
    die "$2: sqlite3 $3: the journal mode or the row count is not what was run"
  add "$2" "$6" "$(awk -v n="$5" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')"
  rm -f "$db" "$db-journal" "$db-wal" "$db-shm"
}

# One repetition of everything in directory D (created, then removed) for target T.
rep() {
  local d=$1 t=$2
  mkdir "$d"
  fsync_lat "$d" "$t"
  fio_fsync "$d" "$t"
  add "$t" pmdk_tx "$(env -u PMEM_IS_PMEM_FORCE "$WORK/pmdk-tx" "$d/pool" "$POOL_MB" "$TX_SECONDS")"
  rm -f "$d/pool"
  add "$t" pmdk_tx_preload "$(env -u PMEM_IS_PMEM_FORCE LD_PRELOAD="$PRELOAD" "$WORK/pmdk-tx" "$d/pool" "$POOL_MB" "$TX_SECONDS")"
  rm -f "$d/pool"
  sqlite_commits "$d" "$t" delete "$TMPFS/rollback.sql" "$SQL_ROLLBACK_TX" sqlite_rollback
  sqlite_commits "$d" "$t" wal "$TMPFS/wal.sql" "$SQL_WAL_TX" sqlite_wal
  rmdir "$d"
}

sql_script() {  # sql_script MODE N: the timed SQL, N one-row transactions
  printf 'PRAGMA journal_mode=%s;\nPRAGMA synchronous=FULL;\n' "$1"
  awk -v n="$2" 'BEGIN { for (i = 0; i < n; i++) print "BEGIN; INSERT INTO t (v) VALUES (randomblob(100)); COMMIT;" }'
}

bench_init 16
case $(df --output=fstype "$WORK" | tail -n 1) in
  tmpfs | ramfs) [[ ${IN_MEMORY:-0} == 1 ]] || die "$WORK is in memory: set BENCH_DIR to a directory on a disk" ;;
esac
read -r DISK_DEV DISK_FS < <(df --output=source,fstype "$WORK" | tail -n 1)
log "compiling fsync-lat and pmdk-tx into $WORK"
cc -O2 -Wall -o "$WORK/fsync-lat" "$HERE/fsync-lat.c" || die "cc fsync-lat.c failed"
# shellcheck disable=SC2046  # pkg-config prints a list of flags
cc -O2 -Wall -o "$WORK/pmdk-tx" "$HERE/pmdk-tx.c" $(pkg-config --cflags --libs libpmemobj) || die "cc pmdk-tx.c failed"
sql_script delete "$SQL_ROLLBACK_TX" >"$TMPFS/rollback.sql"
sql_script wal "$SQL_WAL_TX" >"$TMPFS/wal.sql"

# Room for the largest test at once (fio's four files or the pool) and the metadata.
FIO_MAX_JOBS=$(tr ' ' '\n' <<<"$FIO_JOBS" | sort -n | tail -1)
REGION_MB=$((FILE_MB + FSYNC_OPS * 4 / 1024 + FIO_MAX_JOBS * FIO_SIZE_MB + POOL_MB + 256))
[[ ${PREALLOCATE:-1} == 0 ]] || MKFS_EXTRA=-P
mount_pmemfs_at "$WORK/region.img" "$WORK/pmemfs" "$REGION_MB" "$PMEMFS_OPTS"
mkdir "$WORK/bindfs-backing" "$WORK/fs-$DISK_FS"
# shellcheck disable=SC2086  # BINDFS_OPTS is a list of options
mount_bindfs "$WORK/bindfs-backing" "$WORK/bindfs" $BINDFS_OPTS
for ((r = 1; r <= REPS; r++)); do
  log "repetition $r of $REPS: pmemfs"; rep "$WORK/pmemfs/r" pmemfs
  log "repetition $r of $REPS: bindfs-$DISK_FS"; rep "$WORK/bindfs/r" bindfs
  log "repetition $r of $REPS: $DISK_FS"; rep "$WORK/fs-$DISK_FS/r" disk
done
mapfile -t STATS < <(grep -Ei 'commit|persist|flush|fsync' "$WORK/pmemfs/.pmemfs/stats" || echo '(none)')

# name, unit, higher-is-better (1) or lower (0)
METRICS=(
  "fsync_overwrite_p50 µs 0" "fsync_overwrite_p99 µs 0" "fsync_append_p50 µs 0" "fsync_append_p99 µs 0"
)
for j in $FIO_JOBS; do METRICS+=("fio_fsync_j$j IOPS 1"); done
METRICS+=("pmdk_tx tx/s 1" "pmdk_tx_preload tx/s 1" "sqlite_rollback commits/s 1" "sqlite_wal commits/s 1")
echo
echo "pmemfs -o $PMEMFS_OPTS (region on $DISK_FS, $([[ ${PREALLOCATE:-1} == 0 ]] && echo sparse || echo 'preallocated, mkfs -P')) vs bindfs ${BINDFS_OPTS:-(default options)} over $DISK_FS vs $DISK_FS, median of $REPS"
printf '%-20s %-10s %10s %12s %10s %12s %12s\n' metric unit pmemfs "bindfs-$DISK_FS" "$DISK_FS" 'vs bindfs' "vs $DISK_FS"
for m in "${METRICS[@]}"; do
  read -r name unit up <<<"$m"
  p=$(med pmemfs "$name"); b=$(med bindfs "$name"); e=$(med disk "$name")
  if ((up)); then rb=$(ratio "$p" "$b"); re=$(ratio "$p" "$e"); else rb=$(ratio "$b" "$p"); re=$(ratio "$e" "$p"); fi
  printf '%-20s %-10s %10s %12s %10s %12s %12s\n' "$name" "$unit" "$p" "$b" "$e" "$rb" "$re"
done
echo "(ratios above 1: pmemfs is better; $FSYNC_OPS fsyncs on $FILE_MB MiB; fio ${FIO_SECONDS} s on ${FIO_SIZE_MB} MiB per job;" \
  "PMDK ${TX_SECONDS} s on a ${POOL_MB} MiB pool; SQLite $SQL_ROLLBACK_TX rollback and $SQL_WAL_TX WAL commits)"
echo "machine: $(nproc) CPUs, Linux $(uname -r), scratch $WORK on $DISK_DEV ($DISK_FS, $(findmnt -no OPTIONS -T "$WORK" 2>/dev/null || echo '?'))"
echo "pmemfs .pmemfs/stats, whole run (commits, host flushes, fsyncs):"
printf '  %s\n' "${STATS[@]}"
