#!/usr/bin/env bash
# `npm run bench:fuse-ops` (root; not part of npm test): where a sqlite3
# commit's time goes, request by request, on pmemfs and on bindfs over the
# same disk filesystem, in one run. The kernel's own FUSE tracepoints
# (fuse:fuse_request_send and fuse:fuse_request_end, read from tracefs after
# each run, so nothing reads them while it runs) time every request of the
# mount the same way for both daemons:
#
#   per opcode      requests per commit, and the mean time from the moment
#                   the client queued the request until the daemon's reply
#                   was written (the daemon noticing it, its work, and the
#                   reply; not the client's wake-up that follows)
#   gap             from one reply to the client's next request: the
#                   client's wake-up, its own work and system call, p50 and
#                   mean (sqlite's work is the same on both mounts)
#   commit          wall time of one commit as sqlite3 sees it
#
# The workload is durable.sh's rollback-journal one: one-row transactions
# with synchronous=FULL (SQL_TX of them, default 500, after a warm-up of
# 100), REPS (3) runs per mount, alternating; figures sum all runs.
# The region is made with mkfs.pmemfs -P unless PREALLOCATE=0.
#
# Environment: REPS, SQL_TX, PMEMFS_OPTS (dax=never,log=warn), BENCH_DIR
# (/var/tmp; refused if in memory), and those of lib.sh. Needs tracefs and a
# kernel with the fuse request tracepoints (recent ones: the 6.18 this was
# written on has them; older ones do not); about half a minute.
# The tracefs state it changes (the fuse events, the buffer size, the trace
# clock: global, as requests cross CPUs) is put back when it ends.
set -euo pipefail

REPS=${REPS:-3}
SQL_TX=${SQL_TX:-500}
PMEMFS_OPTS=${PMEMFS_OPTS:-dax=never,log=warn}
BENCH_DIR=${BENCH_DIR:-/var/tmp}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/bench/lib.sh
. "$HERE/lib.sh"

require_positive REPS SQL_TX
bench_require "$PMEMFS" "$MKFS_PMEMFS" sqlite3 bindfs mountpoint awk df
require_disk_dir "$BENCH_DIR"
TRACEFS=/sys/kernel/tracing
[[ -d $TRACEFS/events ]] || mount -t tracefs nodev "$TRACEFS" 2>/dev/null || die "tracefs is not mounted at $TRACEFS and could not be"
[[ -e $TRACEFS/events/fuse/fuse_request_send/enable && -e $TRACEFS/events/fuse/fuse_request_end/enable ]] ||
  die "this kernel ($(uname -r)) has no fuse:fuse_request_send/fuse_request_end tracepoints: run it on a recent kernel (6.18 has them)"
[[ $(cat "$TRACEFS/tracing_on") == 1 ]] || die "tracing is off ($TRACEFS/tracing_on is 0): something else is using tracefs"

SAVED_BUF=$(cat "$TRACEFS/buffer_size_kb")
SAVED_SEND=$(cat "$TRACEFS/events/fuse/fuse_request_send/enable")
SAVED_END=$(cat "$TRACEFS/events/fuse/fuse_request_end/enable")
SAVED_CLOCK=$(sed -n 's/.*\[\(.*\)\].*/\1/p' "$TRACEFS/trace_clock")
trace_restore() {
  echo "$SAVED_CLOCK" >"$TRACEFS/trace_clock"
  echo "$SAVED_SEND" >"$TRACEFS/events/fuse/fuse_request_send/enable"
  echo "$SAVED_END" >"$TRACEFS/events/fuse/fuse_request_end/enable"
  echo "$SAVED_BUF" >"$TRACEFS/buffer_size_kb"
}

bench_init 16
trap 'trace_restore; bench_cleanup' EXIT
read -r DISK_DEV DISK_FS < <(df --output=source,fstype "$WORK" | tail -n 1)
{
  echo "PRAGMA synchronous=FULL;"
  awk -v n="$SQL_TX" 'BEGIN { for (i = 0; i < n; i++) print "BEGIN; INSERT INTO t (v) VALUES (randomblob(100)); COMMIT;" }'
} >"$TMPFS/tx.sql"
{
  echo "PRAGMA synchronous=FULL;"
  awk 'BEGIN { for (i = 0; i < 100; i++) print "BEGIN; INSERT INTO t (v) VALUES (randomblob(100)); COMMIT;" }'
} >"$TMPFS/warm.sql"
[[ ${PREALLOCATE:-1} == 0 ]] || MKFS_EXTRA=-P
mount_pmemfs_at "$WORK/region.img" "$WORK/pmemfs" $((SQL_TX / 4 + 256)) "$PMEMFS_OPTS"
mkdir "$WORK/bindfs-backing"
mount_bindfs "$WORK/bindfs-backing" "$WORK/bindfs"
echo 16384 >"$TRACEFS/buffer_size_kb"   # per CPU: room for ~40 requests x 2 events per commit
echo global >"$TRACEFS/trace_clock"     # a request is queued on one CPU and answered on another

declare -A WALL=()
# one_run TARGET: a fresh database, the warm-up, then the timed commits with the fuse events on;
# keeps this mount's events (its connection: the minor of st_dev) in $WORK/TARGET.REP.trace.
one_run() {
  local mnt=$WORK/$1 db conn t0 t1 lost
  db=$mnt/s.db
  rm -f "$db" "$db-journal"
  sqlite3 -bail "$db" "PRAGMA journal_mode=delete; CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);" >/dev/null
  sqlite3 -bail "$db" <"$TMPFS/warm.sql" >/dev/null
  conn=$(mountpoint -d "$mnt") && conn=${conn#*:}   # FUSE: the connection number is st_dev's minor
  echo >"$TRACEFS/trace"
  echo 1 >"$TRACEFS/events/fuse/fuse_request_send/enable"
  echo 1 >"$TRACEFS/events/fuse/fuse_request_end/enable"
  t0=$(now)
  sqlite3 -bail "$db" <"$TMPFS/tx.sql" >/dev/null || die "$1: sqlite3 failed"
  t1=$(now)
  echo 0 >"$TRACEFS/events/fuse/fuse_request_send/enable"
  echo 0 >"$TRACEFS/events/fuse/fuse_request_end/enable"
  [[ $(sqlite3 "$db" 'SELECT count(*) FROM t;') == $((SQL_TX + 100)) ]] || die "$1: the row count is not what was run"
  lost=$(cat "$TRACEFS"/per_cpu/cpu*/stats | awk '/^overrun:/ { s += $2 } END { print s + 0 }')
  ((lost == 0)) || die "$1: the trace buffer overflowed ($lost events lost): lower SQL_TX"
  awk -v c="$conn" '/fuse_request_(send|end):/ && $0 ~ ("connection " c " ")' "$TRACEFS/trace" >"$WORK/$1.$2.trace"
  echo >"$TRACEFS/trace"
  WALL[$1]="${WALL[$1]:-} $(awk -v a="$t0" -v b="$t1" -v n="$SQL_TX" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')"
  rm -f "$db" "$db-journal"
}

for ((r = 1; r <= REPS; r++)); do
  log "repetition $r of $REPS: pmemfs"; one_run pmemfs "$r"
  log "repetition $r of $REPS: bindfs"; one_run bindfs "$r"
  for t in pmemfs bindfs; do
    [[ -s $WORK/$t.$r.trace ]] || die "$t: no fuse events were recorded for its mount"
  done
done

# summarize TARGET: "OPCODE count mean_us" lines (sorted), then "~gap p50 mean" (µs), from send/end pairs by
# request id in each run's trace (a gap never spans two runs).
summarize() {
  awk -v gaps="$WORK/$1.gaps" '
    FNR == 1 { last = ""; delete sent }
    { for (i = 1; i <= NF; i++) { if ($i ~ /^[0-9]+\.[0-9]+:$/) t = substr($i, 1, length($i) - 1); if ($i == "req") r = $(i + 1); if ($i == "opcode") o = $(i + 2) } }
    /fuse_request_send:/ { sent[r] = t; op[r] = o; if (last != "") printf "%.1f\n", (t - last) * 1e6 >gaps; last = ""; next }
    /fuse_request_end:/ { if (r in sent) { d = (t - sent[r]) * 1e6; n[op[r]]++; s[op[r]] += d; delete sent[r] } last = t }
    END { for (k in n) { name = k; gsub(/[()]|FUSE_/, "", name); printf "%s %d %.2f\n", name, n[k], s[k] / n[k] } }' "$WORK/$1".*.trace | sort
  sort -g "$WORK/$1.gaps" | awk '{ g[NR] = $1; s += $1 } END { printf "~gap %.1f %.1f\n", NR ? g[int((NR + 1) / 2)] : 0, NR ? s / NR : 0 }'
}
summarize pmemfs >"$WORK/pmemfs.sum"
summarize bindfs >"$WORK/bindfs.sum"
# shellcheck disable=SC2086  # WALL[T] is a list of numbers
WP=$(median ${WALL[pmemfs]}); WB=$(median ${WALL[bindfs]})

echo
echo "sqlite3 rollback-journal commits (synchronous=FULL), pmemfs -o $PMEMFS_OPTS (region on $DISK_FS) vs bindfs over $DISK_FS, $REPS x $SQL_TX commits"
awk -v n=$((REPS * SQL_TX)) -v wp="$WP" -v wb="$WB" '
  FNR == 1 { f++ }
  $1 == "~gap" { g50[f] = $2; gm[f] = $3; next }
  { if (!($1 in ops)) { ops[$1] = 1; names[++nk] = $1 } c[f, $1] = $2; m[f, $1] = $3; req[f] += $2 }
  END {
    printf "%-16s %8s %8s %9s   %8s %8s %9s   %9s\n", "request", "pm n/c", "pm µs", "pm µs/c", "bf n/c", "bf µs", "bf µs/c", "pm - bf"
    for (i = 1; i <= nk; i++) {
      o = names[i]; p = c[1, o] * m[1, o] / n; b = c[2, o] * m[2, o] / n; tp += p; tb += b
      printf "%-16s %8.2f %8.1f %9.1f   %8.2f %8.1f %9.1f   %+9.1f\n", o, c[1, o] / n, m[1, o], p, c[2, o] / n, m[2, o], b, p - b
    }
    printf "%-16s %8.2f %8s %9.1f   %8.2f %8s %9.1f   %+9.1f\n", "all requests", req[1] / n, "", tp, req[2] / n, "", tb, tp - tb
    gp = req[1] / n * gm[1]; gb = req[2] / n * gm[2]
    printf "%-16s %8s %8.1f %9.1f   %8s %8.1f %9.1f   %+9.1f\n", "gaps (p50 mean)", g50[1], gm[1], gp, g50[2], gm[2], gb, gp - gb
    printf "%-16s %8s %8s %9.1f   %8s %8s %9.1f   %+9.1f   pmemfs at %.2fx bindfs\n", "commit (wall)", "", "", wp, "", "", wb, wp - wb, wb / wp
  }' "$WORK/pmemfs.sum" "$WORK/bindfs.sum"
echo "(n/c: requests per commit; µs: mean time from queued to replied; µs/c: their sum per commit; gaps: from a reply to"
echo " the client's next request; commit: median over the runs of wall time per commit; pm - bf: what pmemfs adds per commit)"
echo "machine: $(nproc) CPUs, Linux $(uname -r), scratch $WORK on $DISK_DEV ($DISK_FS)"
