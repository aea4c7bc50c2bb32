#!/usr/bin/env bash
# mmap clients under power cuts, on the default mount (dax=always, shared
# mmap through FUSE_DIRECT_IO_ALLOW_MMAP): a libpmemobj program
# (pmdk-counter.c, built here) and sqlite3 (Python's module) in WAL and in
# rollback-journal mode commit in a loop, printing what each commit
# acknowledged; `echo powerfail [SEED] > .pmemfs/ctl` cuts the power at a
# random moment (5 cuts each: seeded, and without a seed: every unflushed
# page lost). After each remount: pmempool check says consistent, the
# counter is at least the last acknowledged value and its ring agrees (no
# torn transaction); the database passes integrity_check and holds every
# acknowledged row. fsck.pmemfs -n is clean at the end. Rollback mode runs
# with synchronous=EXTRA: with FULL, sqlite does not sync the directory after
# deleting the journal that commits a transaction, so a power cut right
# after a commit may roll it back on any filesystem (sqlite's documentation
# of EXTRA says so); this test caught exactly that with FULL.
. "$(dirname "$0")/lib.sh"

_require_root
_require_fuse
_require_cmd cc pkg-config pmempool python3
pkg-config --exists libpmemobj || _skip "libpmemobj-dev is not installed (npm run setup installs it)"
python3 -c 'import sqlite3' 2>/dev/null || _skip "python3 has no sqlite3 module"

_scratch_setup
_mkfs -s 256m
CTL=$MNT/.pmemfs/ctl
COUNTER=$SCRATCH/pmdk-counter
read -ra PMEMOBJ <<<"$(pkg-config --cflags --libs libpmemobj)"
cc -O2 -o "$COUNTER" "$(dirname "$0")/pmdk-counter.c" "${PMEMOBJ[@]}" || _fail "cannot build pmdk-counter.c"

_mount
grep -q ' direct_io_allow_mmap=1' "$MNT/.pmemfs/stats" || _skip "this kernel cannot map dax=always files shared (no FUSE_DIRECT_IO_ALLOW_MMAP)"
_unmount

# cut SEED: cut the power now (SEED '-': every unflushed page lost); wait for the daemon to go.
cut() {
  local pid=${_MOUNT_PID[$MNT]} i
  if [[ $1 == - ]]; then echo powerfail >"$CTL"; else echo "powerfail $1" >"$CTL"; fi
  for ((i = 0; i < 100; i++)); do _pid_alive "$pid" || break; sleep 0.05; done
  _pid_alive "$pid" && _fail "pmemfs (pid $pid) still running 5 s after powerfail"
  _reap "$pid" || _fail "pmemfs exited non-zero after powerfail"
  for ((i = 0; i < 40; i++)); do mountpoint -q "$MNT" || break; sleep 0.05; done
  mountpoint -q "$MNT" && _fusermount_u "$MNT" -z
  _MOUNT_PID[$MNT]=''
}

# run_until_cut SEED OUT CMD...: run CMD in the background (its stdout to OUT), cut the power
# 0.3-1.0 s after its first acknowledgement, stop CMD (its mount is gone); ACKED is the last value it acknowledged.
run_until_cut() {
  local seed=$1 out=$2 pid
  shift 2
  "$@" >"$out" 2>"$out.err" &
  pid=$!
  _PIDS+=("$pid")
  # The first acknowledgement (the program has started), then 0.3-1.0 s more.
  local i
  for ((i = 0; i < 200; i++)); do grep -qE '^[0-9]+$' "$out" && break; _pid_alive "$pid" || break; sleep 0.05; done
  sleep "0.$(( 3 + RANDOM % 8 ))"
  _pid_alive "$pid" || { cat "$out.err" >&2; _fail "$* stopped before the power cut"; }
  cut "$seed"
  kill -KILL "$pid" 2>/dev/null || true
  _reap "$pid" || true
  # The last complete line: printed after its commit returned.
  ACKED=$(grep -E '^[0-9]+$' "$out" | tail -n 1 || true)
  [[ -n $ACKED ]] || { cat "$out.err" >&2; _fail "$* acknowledged nothing before the cut"; }
}

SEEDS=(11 - 23 - 37)

_log "libpmemobj: transactions under $((${#SEEDS[@]})) power cuts"
_mount
_assert_exit 0 "$COUNTER" create "$MNT/pool"
_unmount
for s in "${SEEDS[@]}"; do
  _mount
  before=$("$COUNTER" check "$MNT/pool") || _fail "pmdk-counter check before the run"
  run_until_cut "$s" "$SCRATCH/pmdk.out" "$COUNTER" run "$MNT/pool"
  acked=$ACKED
  _mount
  _check_pmdk_counter "$COUNTER" "$MNT/pool" "$acked" "seed $s"
  _log "ok: seed $s: counter $before → $NOW after the cut, last acknowledged $acked; pmempool check consistent"
  _unmount
done

# sqlite MODE: the same with a database in journal_mode MODE.
sqlite_cuts() {
  local mode=$1 s acked rows
  _log "sqlite3 journal_mode=$mode: commits under ${#SEEDS[@]} power cuts"
  for s in "${SEEDS[@]}"; do
    _mount
    run_until_cut "$s" "$SCRATCH/sql.out" python3 -c '
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=" + sys.argv[2])
db.execute("PRAGMA synchronous=" + ("FULL" if sys.argv[2] == "wal" else "EXTRA"))
db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
n = db.execute("SELECT coalesce(max(id), 0) FROM t").fetchone()[0]
while True:
    n += 1
    db.execute("BEGIN")
    db.execute("INSERT INTO t VALUES (?, ?)", (n, "x" * 200))
    db.execute("COMMIT")
    print(n, flush=True)
' "$MNT/db-$mode" "$mode"
    acked=$ACKED
    _mount
    rows=$(python3 -c '
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
ok = db.execute("PRAGMA integrity_check").fetchone()[0]
n, lo, hi = db.execute("SELECT count(*), min(id), max(id) FROM t").fetchone()
if ok != "ok" or n != hi or lo != 1:
    sys.exit("integrity %s, %d rows, ids %s..%s" % (ok, n, lo, hi))
print(n)
' "$MNT/db-$mode") || _fail "sqlite ($mode, seed $s) after the cut: $rows"
    (( rows >= acked )) || _fail "sqlite ($mode, seed $s): $rows rows after the cut, but row $acked had been committed"
    _log "ok: $mode, seed $s: $rows rows, last acknowledged $acked, integrity ok"
    _unmount
  done
}
sqlite_cuts wal
sqlite_cuts delete

_run "$FSCK_PMEMFS" -n "$REGION"
(( LAST_RC == 0 )) || _fail "fsck.pmemfs -n at the end: $LAST_OUT $LAST_ERR"
_log "done"
