#!/usr/bin/env bash
# kill -9 of the daemon at random moments of a mixed workload, 50 rounds
# (PMEMFS_KILL9_ROUNDS; PMEMFS_KILL9_SEED repeats the random choices, not
# the timing). Each round: mount; two fsync'd markers of random content and
# a fsync'd pair.A; then a background loop creates (head -c, xfs_io
# pwrite), appends, truncates, renames within and across two directories
# and over existing files, hard-links, removes, copies with cp (inside the
# mount copy_file_range shares the blocks: later writes copy on write),
# mkdir/rmdir/renames directories, and now and then fsyncs a file or a
# directory, while a stream of fsync'd markers (some of them cp copies of
# earlier ones, so shared blocks) runs alongside; 0-400 ms after the workload
# starts, `mv pair.A pair.B` and kill -9 of the daemon at (nearly) the same
# moment; fusermount -u -z; mount again, which must recover: every marker
# whose fsync returned (this round's and all earlier ones) is there with
# its sha; exactly one of pair.A/pair.B exists, intact; ls -lR and reading
# every file work; every file's link count is its number of names; the
# unmount is clean and fsck.pmemfs -n exits 0.
. "$(dirname "$0")/lib.sh"

_require_fuse
_require_root
_require_cmd xfs_io sha256sum find truncate fsck.pmemfs

ROUNDS=${PMEMFS_KILL9_ROUNDS:-50}
SEED=${PMEMFS_KILL9_SEED:-$(( $(date +%s) % 32768 ))}
RANDOM=$SEED
[[ $ROUNDS =~ ^[0-9]+$ ]] || _fail "PMEMFS_KILL9_ROUNDS must be a number, not '$ROUNDS'"

_scratch_setup
_mkfs -s 64m
MANIFEST=$SCRATCH/markers.sha256   # "sha  path" (relative to MNT) of every marker whose fsync returned
: >"$MANIFEST"


# The daemon log of the failing round goes with the verdict (the cleanup
# prints the last lines too).
round_fail() {
  printf 'FAIL: round %s of %s (PMEMFS_KILL9_SEED=%s): %s\n' "$round" "$ROUNDS" "$SEED" "$*" >&2
  echo "daemon log since round $round started:" >&2
  _log_since "$round_mark" | tail -n 40 | sed 's/^/    | /' >&2
  exit 1
}

# marker PATH SRC: write SRC to MNT/PATH and fsync it; on success, record it.
marker() {
  local sum
  sum=$(_sha "$2")
  xfs_io -f -c "pwrite -i $2 0 $(stat -c %s "$2")" -c fsync "$MNT/$1" >/dev/null 2>&1 || return 1
  echo "$sum  $1" >>"$MANIFEST"
}

# random_src FILE [MAX]: 1 to MAX (96 KiB) bytes of random content, any alignment.
random_src() { head -c $(( (RANDOM * 3) % ${2:-98304} + 1 )) /dev/urandom >"$1"; }

# The background workload (own process group: stopped with everything it
# started by one kill). It stops by itself when the mount is gone.
workload() {
  trap - ERR
  set +eEu +o pipefail
  RANDOM=$1
  local d=("$MNT/w1" "$MNT/w2") a b f g
  while [[ -d ${d[0]} && -d ${d[1]} ]]; do
    a=${d[RANDOM % 2]} b=${d[RANDOM % 2]}
    f=$a/f$(( RANDOM % 16 )) g=$b/f$(( RANDOM % 16 ))
    case $(( RANDOM % 22 )) in
      0 | 1) head -c $(( RANDOM * 4 )) /dev/urandom >"$f" ;;
      2) xfs_io -f -c "pwrite -S 0x$(( RANDOM % 90 + 10 )) $(( RANDOM * 2 )) $(( RANDOM % 8192 + 1 ))" "$f" ;;
      3 | 4) (( $(stat -c %s "$f" || echo 0) < 262144 )) && head -c $(( RANDOM % 16384 + 1 )) /dev/urandom >>"$f" ;;
      5) truncate -s $(( RANDOM * 2 )) "$f" ;;
      6) mv "$f" "$a/f$(( RANDOM % 16 ))" ;;
      7 | 8) mv "$f" "$g" ;;
      9) ln "$f" "$g" ;;
      10) rm -f "$f" ;;
      11) mkdir "$a/s$(( RANDOM % 4 ))" ;;
      12) rmdir "$a/s$(( RANDOM % 4 ))" ;;
      13) head -c $(( RANDOM % 32768 )) /dev/urandom >"$a/s$(( RANDOM % 4 ))/f$(( RANDOM % 4 ))" ;;
      14) mv "$f" "$a/s$(( RANDOM % 4 ))/f$(( RANDOM % 4 ))" ;;
      15) mv -T "$a/s$(( RANDOM % 4 ))" "$b/s$(( RANDOM % 4 ))" ;;
      16) rm -rf "$a/s$(( RANDOM % 4 ))" ;;
      17) xfs_io -c fsync "$f" ;;
      18) sync "$f" ;;
      19) sync "$a" ;;
      20 | 21) cp "$f" "$g" ;;
    esac
    printf .
  done
}

# Concurrent fsync'd markers until the kill; each one recorded only once
# its fsync returned.
marker_stream() {
  trap - ERR
  set +eEu +o pipefail
  RANDOM=$2
  local i
  for ((i = 1; i <= 40; i++)); do
    random_src "$SCRATCH/stream.src" 8192
    marker "m/r$1.s$i" "$SCRATCH/stream.src" || break
    # Every third marker also gets a copy sharing its blocks (cp: copy_file_range), fsync'd.
    if (( i % 3 == 0 )); then
      cp "$MNT/m/r$1.s$i" "$MNT/m/r$1.c$i" 2>/dev/null && xfs_io -c fsync "$MNT/m/r$1.c$i" >/dev/null 2>&1 || break
      echo "$(_sha "$SCRATCH/stream.src")  m/r$1.c$i" >>"$MANIFEST"
    fi
  done
}

# bg_group VAR FUNC ARGS...: run FUNC in the background in its own process
# group (so that one kill stops it and whatever it started); its PID in VAR.
bg_group() {
  local var=$1; shift
  set -m
  "$@" </dev/null &
  printf -v "$var" %s $!
  set +m
  _PIDS+=("${!var}")
}
stop_group() {
  { kill -KILL -- "-$1"; _reap "$1"; } 2>/dev/null || true   # (no "Killed" job notice)
}

_mount
mkdir "$MNT/w1" "$MNT/w2" "$MNT/m" "$MNT/pair"
_unmount

_log "$ROUNDS rounds, PMEMFS_KILL9_SEED=$SEED"
t_start=$(_now_ms)
replays=0 total_ops=0 pair_b=0 used=
for ((round = 1; round <= ROUNDS; round++)); do
  round_mark=$(_log_mark)
  _mount
  dpid=${_MOUNT_PID[$MNT]}
  delay=$(( RANDOM % 401 ))

  # Two fsync'd markers and the pair, before the workload starts.
  for i in 1 2; do random_src "$SCRATCH/src.$i"; done
  random_src "$SCRATCH/pair.src"
  pair_sum=$(_sha "$SCRATCH/pair.src")

  for i in 1 2; do
    marker "m/r$round.$i" "$SCRATCH/src.$i" || round_fail "fsync'd marker m/r$round.$i could not be written (daemon alive)"
  done
  xfs_io -f -c "pwrite -i $SCRATCH/pair.src 0 $(stat -c %s "$SCRATCH/pair.src")" -c fsync "$MNT/pair/pair.A" >/dev/null \
    || round_fail "pair.A could not be written and fsync'd"

  bg_group wpid workload $(( RANDOM )) >"$SCRATCH/ops" 2>/dev/null
  t0=$(_now_ms)
  bg_group spid marker_stream "$round" $(( RANDOM )) >/dev/null 2>&1

  left=$(( delay - ($(_now_ms) - t0) ))
  (( left > 0 )) && sleep "$(printf '0.%03d' "$left")"
  mv "$MNT/pair/pair.A" "$MNT/pair/pair.B" 2>/dev/null &
  mvpid=$!; _PIDS+=("$mvpid")
  # Right away, or after the workload had a chance to commit the rename.
  case $(( RANDOM % 4 )) in 1) sleep 0.001 ;; 2) sleep 0.005 ;; 3) sleep 0.05 ;; esac
  killed_at=$(( $(_now_ms) - t0 ))
  { kill -KILL "$dpid"; _reap "$dpid"; } 2>/dev/null || true   # (no "Killed" job notice)

  stop_group "$wpid"
  stop_group "$spid"
  for ((i = 0; i < 50; i++)); do _pid_alive "$mvpid" || break; sleep 0.05; done
  _pid_alive "$mvpid" && round_fail "mv pair.A pair.B still running 2.5 s after the daemon was killed"
  _reap "$mvpid" || true
  err=$(_fusermount_u "$MNT" -z 2>&1) || round_fail "fusermount -u -z after kill -9: $err"
  _MOUNT_PID[$MNT]=''
  ops=$(wc -c <"$SCRATCH/ops")

  # Recovery.
  mark=$(_log_mark)
  _mount
  pid=${_MOUNT_PID[$MNT]}
  mounted=$(_mounted_line "$mark" "$pid")
  [[ -n $mounted ]] || round_fail "no 'mounted' line from pid $pid in the daemon log"
  grep -q '"recovered":true' <<<"$mounted" || round_fail "the mount after kill -9 did not recover: $mounted"
  replayed=no
  if _log_since "$mark" | grep "\"pid\":$pid," | grep -q '"msg":"journal: replayed'; then replayed=yes; replays=$(( replays + 1 )); fi

  sums=$(cd "$MNT" && sha256sum --quiet -c "$MANIFEST" 2>&1) \
    || round_fail "fsync'd markers lost or damaged: $(tr '\n' ';' <<<"$sums")"
  a=0 b=0
  [[ -e $MNT/pair/pair.A ]] && a=1
  [[ -e $MNT/pair/pair.B ]] && b=1
  (( a + b == 1 )) || round_fail "pair: expected exactly one of pair.A/pair.B, found pair.A=$a pair.B=$b"
  if (( a )); then p=pair.A; else p=pair.B; pair_b=$(( pair_b + 1 )); fi
  got=$(_sha "$MNT/pair/$p")
  [[ $got == "$pair_sum" ]] || round_fail "$p survived with the wrong content (sha $got, expected $pair_sum)"

  _run ls -lR "$MNT"
  (( LAST_RC == 0 )) && [[ -z $LAST_ERR ]] || round_fail "ls -lR after recovery: exit $LAST_RC: $LAST_ERR"
  _run bash -c 'find "$1" -type f -exec cat {} + >/dev/null' find-cat "$MNT"
  (( LAST_RC == 0 )) || round_fail "reading every file after recovery: $LAST_ERR"
  links=$(find "$MNT" -type f -printf '%i %n\n' | sort | uniq -c | awk '$1 != $3 { print "ino " $2 ": " $1 " names, nlink " $3 }')
  [[ -z $links ]] || round_fail "link counts do not match the names: $(tr '\n' ';' <<<"$links")"

  rm -f "$MNT/pair/pair.A" "$MNT/pair/pair.B"
  used=$(stat -f -c '%b %f' "$MNT" | awk '{ printf "%d%%", 100 * ($1 - $2) / $1 }')
  _unmount
  _run "$FSCK_PMEMFS" -n "$REGION"
  (( LAST_RC == 0 )) || round_fail "fsck.pmemfs -n after recovery and a clean unmount exited $LAST_RC: $LAST_OUT $LAST_ERR"

  n=$(wc -l <"$MANIFEST")
  total_ops=$(( total_ops + ops ))
  _log "round $round: kill -9 at ${killed_at} ms (delay ${delay}), ${ops} ops, ${n} markers checked, ${p} survived, journal replay: ${replayed}"
done

_log "$ROUNDS rounds in $(( ($(_now_ms) - t_start) / 1000 )) s: ${total_ops} workload ops, $(wc -l <"$MANIFEST") fsync'd markers, pair.B survived ${pair_b} times, journal replayed ${replays} times; ${used} of the region used at the end"
