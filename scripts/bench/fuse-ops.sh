#!/usr/bin/env bash
# `npm run bench:fuse-ops` (root; not part of npm test): where a durable
# operation's time goes, request by request, on pmemfs and on bindfs over
# the same disk filesystem, in one run. The kernel's own FUSE tracepoints
# (fuse:fuse_request_send and fuse:fuse_request_end, read from tracefs after
# each run, so nothing reads them while it runs) time every request of the
# mount the same way for both daemons:
#
#   per opcode      requests per operation, and the mean time from the
#                   moment the client queued the request until the daemon's
#                   reply was written (the daemon noticing it, its work, and
#                   the reply; not the client's wake-up that follows)
#   gaps            from one reply to the client's next request: the
#                   client's wake-up, its own work and system call, p50 and
#                   mean (the client's work is the same on both mounts)
#   operation       wall time of one operation as the client sees it
#
# Workloads (WORKLOADS, default both):
#   sqlite     durable.sh's rollback-journal commits: one-row transactions
#              with synchronous=FULL, SQL_TX of them (500) after a warm-up
#              of 100; the operation is one commit
#   overwrite  fsync-lat rewrite: OPS (3000) 4 KiB pwrites at random
#              offsets of a FILE_MB (16) MiB file written beforehand, each
#              followed by fsync; the operation is one write + fsync
# REPS (3) runs per workload and mount, alternating; figures sum all runs.
# The region is made with mkfs.pmemfs -P unless PREALLOCATE=0.
#
# Environment: REPS, WORKLOADS, SQL_TX, OPS, FILE_MB, PMEMFS_OPTS
# (dax=never,log=warn), BENCH_DIR (/var/tmp; refused if in memory), and
# those of lib.sh. Needs tracefs and a kernel with the fuse request
# tracepoints (recent ones: the 6.18 this was written on has them; older
# ones do not); about a minute. The tracefs state it changes (the fuse
# events, the buffer size, the trace clock: global, as requests cross
# CPUs) is put back when it ends.
set -euo pipefail

REPS=${REPS:-3}
WORKLOADS=${WORKLOADS:-sqlite overwrite}
SQL_TX=${SQL_TX:-500}
OPS=${OPS:-3000}
FILE_MB=${FILE_MB:-16}
PMEMFS_OPTS=${PMEMFS_OPTS:-dax=never,log=warn}
BENCH_DIR=${BENCH_DIR:-/var/tmp}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/bench/lib.sh
. "$HERE/lib.sh"

require_positive REPS SQL_TX OPS FILE_MB
for w in $WORKLOADS; do
  [[ $w == sqlite || $w == overwrite ]] || die "WORKLOADS: '$w' is not a workload (sqlite, overwrite)"
done
bench_require "$PMEMFS" "$MKFS_PMEMFS" sqlite3 bindfs cc mountpoint awk df
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
trace_events() {  # trace_events 0|1
  echo "$1" >"$TRACEFS/events/fuse/fuse_request_send/enable"
  echo "$1" >"$TRACEFS/events/fuse/fuse_request_end/enable"
}

bench_init 16
trap 'trace_restore; bench_cleanup' EXIT
read -r DISK_DEV DISK_FS < <(df --output=source,fstype "$WORK" | tail -n 1)
sql_script() {  # sql_script N: N one-row transactions
  echo "PRAGMA synchronous=FULL;"
  awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) print "BEGIN; INSERT INTO t (v) VALUES (randomblob(100)); COMMIT;" }'
}
sql_script "$SQL_TX" >"$TMPFS/tx.sql"
sql_script 100 >"$TMPFS/warm.sql"
cc -O2 -Wall -o "$WORK/fsync-lat" "$HERE/fsync-lat.c" || die "cc fsync-lat.c failed"
[[ ${PREALLOCATE:-1} == 0 ]] || MKFS_EXTRA=-P
mount_pmemfs_at "$WORK/region.img" "$WORK/pmemfs" $((SQL_TX / 4 + FILE_MB * 2 + 256)) "$PMEMFS_OPTS"
mkdir "$WORK/bindfs-backing"
mount_bindfs "$WORK/bindfs-backing" "$WORK/bindfs"
echo 16384 >"$TRACEFS/buffer_size_kb"   # per CPU: room for ~40 requests x 2 events per commit
echo global >"$TRACEFS/trace_clock"     # a request is queued on one CPU and answered on another

declare -A WALL=()
# one_run TARGET WORKLOAD REP: the workload's untimed part, then its timed part with the fuse events on;
# keeps this mount's events (its connection: the minor of st_dev) in $WORK/TARGET.WORKLOAD.REP.trace.
one_run() {
  local mnt=$WORK/$1 conn t0 t1 n lost
  conn=$(mountpoint -d "$mnt") && conn=${conn#*:}   # FUSE: the connection number is st_dev's minor
  if [[ $2 == sqlite ]]; then
    n=$SQL_TX
    rm -f "$mnt/s.db" "$mnt/s.db-journal"
    sqlite3 -bail "$mnt/s.db" "PRAGMA journal_mode=delete; CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);" >/dev/null
    sqlite3 -bail "$mnt/s.db" <"$TMPFS/warm.sql" >/dev/null
  else
    n=$OPS
    "$WORK/fsync-lat" overwrite "$mnt/lat" 1 "$FILE_MB" >/dev/null   # the file written and fsynced, untimed
  fi
  echo >"$TRACEFS/trace"
  trace_events 1
  t0=$(now)
  if [[ $2 == sqlite ]]; then
    sqlite3 -bail "$mnt/s.db" <"$TMPFS/tx.sql" >/dev/null || die "$1: sqlite3 failed"
  else
    "$WORK/fsync-lat" rewrite "$mnt/lat" "$OPS" "$FILE_MB" >/dev/null || die "$1: fsync-lat failed"
  fi
  t1=$(now)
  trace_events 0
  if [[ $2 == sqlite ]]; then
    [[ $(sqlite3 "$mnt/s.db" 'SELECT count(*) FROM t;') == $((SQL_TX + 100)) ]] || die "$1: the row count is not what was run"
  fi
  lost=$(cat "$TRACEFS"/per_cpu/cpu*/stats | awk '/^overrun:/ { s += $2 } END { print s + 0 }')
  ((lost == 0)) || die "$1: the trace buffer overflowed ($lost events lost): lower SQL_TX or OPS"
  awk -v c="$conn" '/fuse_request_(send|end):/ && $0 ~ ("connection " c " ")' "$TRACEFS/trace" >"$WORK/$1.$2.$3.trace"
  [[ -s $WORK/$1.$2.$3.trace ]] || die "$1: no fuse events were recorded for its mount"
  echo >"$TRACEFS/trace"
  WALL[$1,$2]="${WALL[$1,$2]:-} $(awk -v a="$t0" -v b="$t1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')"
  rm -f "$mnt/s.db" "$mnt/s.db-journal" "$mnt/lat"
}

# summarize TARGET WORKLOAD: "OPCODE count mean_us" lines (sorted), then "~gap p50 mean" and
# "~cpu same_percent same_mean across_mean" (µs), from send/end pairs by request id in each run's trace
# (a gap never spans two runs; "same": the reply was written on the CPU the next request came from).
summarize() {
  awk -v gaps="$WORK/$1.$2.gaps" '
    FNR == 1 { last = ""; delete sent }
    { for (i = 1; i <= NF; i++) { if ($i ~ /^[0-9]+\.[0-9]+:$/) t = substr($i, 1, length($i) - 1); if ($i ~ /^\[[0-9]+\]$/) cpu = $i; if ($i == "req") r = $(i + 1); if ($i == "opcode") o = $(i + 2) } }
    /fuse_request_send:/ {
      sent[r] = t; op[r] = o
      if (last != "") { g = (t - last) * 1e6; printf "%.1f\n", g >gaps; k = (cpu == lastcpu); gn[k]++; gs[k] += g }
      last = ""; next
    }
    /fuse_request_end:/ { if (r in sent) { d = (t - sent[r]) * 1e6; n[op[r]]++; s[op[r]] += d; delete sent[r] } last = t; lastcpu = cpu }
    END {
      for (k in n) { name = k; gsub(/[()]|FUSE_/, "", name); printf "%s %d %.2f\n", name, n[k], s[k] / n[k] }
      all = gn[0] + gn[1]
      printf "~cpu %.0f %.1f %.1f\n", all ? 100 * gn[1] / all : 0, gn[1] ? gs[1] / gn[1] : 0, gn[0] ? gs[0] / gn[0] : 0
    }' "$WORK/$1.$2".*.trace | sort
  sort -g "$WORK/$1.$2.gaps" | awk '{ g[NR] = $1; s += $1 } END { printf "~gap %.1f %.1f\n", NR ? g[int((NR + 1) / 2)] : 0, NR ? s / NR : 0 }'
}

# report WORKLOAD UNITS WHAT: the table of one workload.
report() {
  local wp wb
  summarize pmemfs "$1" >"$WORK/pmemfs.$1.sum"
  summarize bindfs "$1" >"$WORK/bindfs.$1.sum"
  # shellcheck disable=SC2086  # WALL[T,W] is a list of numbers
  wp=$(median ${WALL[pmemfs,$1]}); wb=$(median ${WALL[bindfs,$1]})
  echo
  echo "$3, pmemfs -o $PMEMFS_OPTS (region on $DISK_FS) vs bindfs over $DISK_FS, $REPS x $(($2 / REPS)); per operation:"
  awk -v n="$2" -v wp="$wp" -v wb="$wb" '
    FNR == 1 { f++ }
    $1 == "~gap" { g50[f] = $2; gm[f] = $3; next }
    $1 == "~cpu" { same[f] = $2; sm[f] = $3; xm[f] = $4; next }
    { if (!($1 in ops)) { ops[$1] = 1; names[++nk] = $1 } c[f, $1] = $2; m[f, $1] = $3; req[f] += $2 }
    END {
      printf "%-16s %8s %8s %9s   %8s %8s %9s   %9s\n", "request", "pm n/op", "pm µs", "pm µs/op", "bf n/op", "bf µs", "bf µs/op", "pm - bf"
      for (i = 1; i <= nk; i++) {
        o = names[i]; p = c[1, o] * m[1, o] / n; b = c[2, o] * m[2, o] / n; tp += p; tb += b
        printf "%-16s %8.2f %8.1f %9.1f   %8.2f %8.1f %9.1f   %+9.1f\n", o, c[1, o] / n, m[1, o], p, c[2, o] / n, m[2, o], b, p - b
      }
      printf "%-16s %8.2f %8s %9.1f   %8.2f %8s %9.1f   %+9.1f\n", "all requests", req[1] / n, "", tp, req[2] / n, "", tb, tp - tb
      gp = req[1] / n * gm[1]; gb = req[2] / n * gm[2]
      printf "%-16s %8s %8.1f %9.1f   %8s %8.1f %9.1f   %+9.1f\n", "gaps (p50 mean)", g50[1], gm[1], gp, g50[2], gm[2], gb, gp - gb
      printf "%-16s %7s%% %8s %9s   %7s%% %8s %9s\n", "  on one CPU", same[1], "", "", same[2], "", ""
      printf "%-16s %8s %8.1f %9s   %8s %8.1f %9s\n", "    mean", "", sm[1], "", "", sm[2], ""
      printf "%-16s %8s %8.1f %9s   %8s %8.1f %9s\n", "  across CPUs", "", xm[1], "", "", xm[2], ""
      printf "%-16s %8s %8s %9.1f   %8s %8s %9.1f   %+9.1f   pmemfs at %.2fx bindfs\n", "operation (wall)", "", "", wp, "", "", wb, wp - wb, wb / wp
    }' "$WORK/pmemfs.$1.sum" "$WORK/bindfs.$1.sum"
}

for ((r = 1; r <= REPS; r++)); do
  for w in $WORKLOADS; do
    log "repetition $r of $REPS, $w: pmemfs"; one_run pmemfs "$w" "$r"
    log "repetition $r of $REPS, $w: bindfs"; one_run bindfs "$w" "$r"
  done
done
for w in $WORKLOADS; do
  case $w in
    sqlite) report sqlite $((REPS * SQL_TX)) "sqlite3 rollback-journal commits (synchronous=FULL)" ;;
    overwrite) report overwrite $((REPS * OPS)) "4 KiB overwrite + fsync (fsync-lat rewrite, $FILE_MB MiB file)" ;;
  esac
done
echo
echo "(n/op: requests per operation; µs: mean time from queued to replied; µs/op: their sum per operation; gaps: from a"
echo " reply to the client's next request, split by whether the reply was written on the CPU that request then came"
echo " from (share of gaps, mean µs); operation: median over the runs of wall time per operation; pm - bf: what pmemfs"
echo " adds per operation)"
echo "machine: $(nproc) CPUs, Linux $(uname -r), scratch $WORK on $DISK_DEV ($DISK_FS)"
