#!/usr/bin/env bash
# `npm test`: vitest (unit tests, plus the integration tests that gate
# themselves on FUSE), then every shell test test/shell/[0-9]*.sh in
# order, one at a time (they mount; the machine may have two cores).
#
# A shell test passes with exit 0, is skipped with 77 (its "SKIP: reason"
# line is shown), fails otherwise. Each test's output goes to
# .tmp/test-logs/NAME.log and is shown (tail) only when it fails. The last
# line is the summary, "N passed, N failed[, N skipped]"; the exit status
# is non-zero if anything failed.
#
# Time: the whole run is kept under PMEMFS_TEST_BUDGET seconds (default 840,
# i.e. 14 min): each step gets at most its own cap and what is left of the
# budget; a step that runs out is stopped (SIGTERM: the tests' traps unmount)
# and counted as failed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

BUDGET=${PMEMFS_TEST_BUDGET:-840}
VITEST_CAP=${PMEMFS_VITEST_TIMEOUT:-360}
SHELL_TEST_CAP=${PMEMFS_SHELL_TEST_TIMEOUT:-300}
LOG_DIR=$ROOT/.tmp/test-logs

passed=0 failed=0 skipped=0
failures=()
START=$SECONDS

mkdir -p "$LOG_DIR"
# One npm test at a time per checkout: two runs would fight over mounts and cores.
exec 9>"$ROOT/.tmp/test.lock"
if ! flock -n 9; then
  echo "test: another 'npm test' is running in $ROOT (lock .tmp/test.lock); wait for it to finish" >&2
  exit 1
fi

# The shell tests call the commands by name; without npm run setup's links,
# use this checkout's bin/ directly.
if [[ -z ${PMEMFS_BIN:-} ]] && ! command -v pmemfs >/dev/null; then
  export PMEMFS_BIN=$ROOT/bin
  echo "test: pmemfs is not on PATH (run npm run setup); using PMEMFS_BIN=$PMEMFS_BIN"
fi

budget_left() { echo $((BUDGET - (SECONDS - START))); }

# Seconds this step may take: its cap, or what is left of the budget.
allowance() {
  local left
  left=$(budget_left)
  if (( left < $1 )); then echo "$left"; else echo "$1"; fi
}

record_fail() { failed=$((failed + 1)); failures+=("$1"); }

run_vitest() {
  local t rc=0 t0=$SECONDS
  t=$(allowance "$VITEST_CAP")
  echo "=== vitest (unit + gated integration tests, limit ${t}s)"
  # One test file at a time: integration tests mount, and native code and
  # parallel mounts on two cores make for flaky timing.
  timeout -k 10 "$t" npx vitest run --no-file-parallelism --passWithNoTests </dev/null || rc=$?
  if (( rc == 0 )); then
    passed=$((passed + 1))
    echo "PASS vitest ($((SECONDS - t0))s)"
  else
    (( rc == 124 )) && echo "vitest did not finish within ${t}s"
    echo "FAIL vitest (exit $rc)"
    record_fail vitest
  fi
}

# The tests type-check too (tsconfig.test.json: src and test, no output):
# a test that calls an API with the wrong shape passes at run time by luck.
run_typecheck() {
  local rc=0 t0=$SECONDS
  echo "=== typecheck (src and tests)"
  timeout -k 10 "$(allowance 120)" npx tsc -p tsconfig.test.json </dev/null || rc=$?
  if (( rc == 0 )); then
    passed=$((passed + 1))
    echo "PASS typecheck ($((SECONDS - t0))s)"
  else
    echo "FAIL typecheck (exit $rc)"
    record_fail typecheck
  fi
}

run_shell_test() {
  local file=$1 name log t rc=0 t0=$SECONDS reason
  name=$(basename "$file" .sh)
  log=$LOG_DIR/$name.log
  t=$(allowance "$SHELL_TEST_CAP")
  if (( $(budget_left) < 10 )); then
    echo "FAIL $name: not run, the ${BUDGET}s time budget is used up"
    record_fail "$name"
    return
  fi
  printf '=== %s ... ' "$name"
  timeout -k 15 "$t" bash "$file" >"$log" 2>&1 </dev/null || rc=$?
  case $rc in
    0)
      passed=$((passed + 1))
      echo "PASS ($((SECONDS - t0))s)"
      ;;
    77)
      skipped=$((skipped + 1))
      reason=$(grep -m1 '^SKIP: ' "$log" | sed 's/^SKIP: //')
      echo "SKIP: ${reason:-no reason given}"
      ;;
    *)
      record_fail "$name"
      if (( rc == 124 || rc == 137 )); then
        echo "FAIL (stopped after ${t}s)"
      else
        echo "FAIL (exit $rc, $((SECONDS - t0))s)"
      fi
      tail -n 40 "$log" | sed 's/^/    | /'
      echo "    (full log: $log)"
      ;;
  esac
}

run_typecheck
run_vitest
shopt -s nullglob
for f in test/shell/[0-9]*.sh; do
  run_shell_test "$f"
done

echo "total time $((SECONDS - START))s; logs in $LOG_DIR"
(( failed )) && echo "failed: ${failures[*]}"
summary="$passed passed, $failed failed"
(( skipped )) && summary+=", $skipped skipped"
echo "$summary"
(( failed == 0 ))
