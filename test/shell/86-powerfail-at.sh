#!/usr/bin/env bash
# Crash injection at the Nth persistence point, through the real daemon:
# a fixed workload (fsync'd markers, small ones whose data a commit logs
# and a large one whose data is flushed first, a rename probe, creates, appends,
# renames across directories, hard links, unlinks, punches, a seal) runs
# once to count its persistence points; then, for N over those points
# (every point when they are few, else an even spread of POINTS of them),
# a fresh region is mounted with -o powerfail_at=N (odd N also with a
# powerfail_seed, so a random half of the unflushed pages survives), the
# workload runs until the power fails, and the next mount must recover:
# every marker whose fsync returned is intact, the rename probe is all or
# nothing, the tree reads, and fsck -n is clean after a clean unmount.
. "$(dirname "$0")/lib.sh"

_require_fuse
_require_root
_require_cmd xfs_io sha256sum fsck.pmemfs setfattr

POINTS=${PMEMFS_POWERFAIL_POINTS:-48}
_scratch_setup
DURABLE=$SCRATCH/durable   # "name sha" of every marker whose fsync returned
seq_now() { sed -n 's/^subsystem=persist .*seq=\([0-9]*\).*/\1/p' "$MNT/.pmemfs/stats"; }

# The workload; stops quietly at the first failure (the power went).
workload() {
  local i m
  : >"$DURABLE"
  mkdir "$MNT/a" "$MNT/b" || return 0
  xfs_io -f -c "pwrite -S 0x77 0 20k" -c fsync "$MNT/pair.A" >/dev/null || return 0
  echo "pair $(_sha "$MNT/pair.A")" >>"$DURABLE"
  # More new blocks than a commit logs (MAX_DATA_LOG): data flushed first, then the commit; the
  # small markers below are logged with their commits (one flush each).
  xfs_io -f -c "pwrite -S 0x66 0 300k" -c fsync "$MNT/big" >/dev/null || return 0
  echo "big $(_sha "$MNT/big")" >>"$DURABLE"
  for i in 1 2 3 4 5 6; do
    m=$MNT/m$i
    xfs_io -f -c "pwrite -S 0x$((40 + i)) 0 $((i * 7))k" -c fsync "$m" >/dev/null || return 0
    echo "m$i $(_sha "$m")" >>"$DURABLE"
    head -c $((i * 3000)) /dev/urandom >"$MNT/a/c$i" || return 0
    cat "$MNT/a/c$i" >>"$MNT/b/log" || return 0
    mv "$MNT/a/c$i" "$MNT/b/c$i" || return 0
    ln "$MNT/b/c$i" "$MNT/a/l$i" || return 0
    ((i % 2)) && { rm "$MNT/a/l$i" || return 0; }
    ((i == 3)) && { mv "$MNT/pair.A" "$MNT/pair.B" || return 0; }
    ((i == 4)) && { fallocate -p -o 4096 -l 8192 "$MNT/b/log" || return 0; }
    ((i == 5)) && { setfattr -n trusted.pmemfs.sealed -v 1 "$MNT/m2" || return 0; }
    xfs_io -c fsync "$MNT/b/log" >/dev/null || return 0
  done
}

check() {  # check WHAT
  local name want got
  while read -r name want; do
    if [[ $name == pair ]]; then
      if [[ -e $MNT/pair.A && -e $MNT/pair.B ]]; then _fail "$1: both pair.A and pair.B exist"; fi
      if [[ -e $MNT/pair.A ]]; then got=$(_sha "$MNT/pair.A"); elif [[ -e $MNT/pair.B ]]; then got=$(_sha "$MNT/pair.B"); else _fail "$1: neither pair.A nor pair.B exists"; fi
    else
      [[ -e $MNT/$name ]] || _fail "$1: fsync'd $name is missing"
      got=$(_sha "$MNT/$name")
    fi
    [[ $got == "$want" ]] || _fail "$1: fsync'd $name has the wrong content"
  done <"$DURABLE"
  _run ls -lR "$MNT"
  (( LAST_RC == 0 )) && [[ -z $LAST_ERR ]] || _fail "$1: ls -lR: $LAST_ERR"
  _run bash -c "find '$MNT' -type f -exec cat {} + >/dev/null"
  (( LAST_RC == 0 )) || _fail "$1: reading every file: $LAST_ERR"
}

_log "counting the workload's persistence points"
_mkfs -s 64m
_mount "commit=3600"
first=$(( $(seq_now) + 1 ))
workload
last=$(seq_now)
_unmount
(( last >= first + 12 )) || _fail "the workload made only $((last - first + 1)) persistence points ($first..$last)"
_log "persistence points $first..$last"

step=$(( (last - first + 1 + POINTS - 1) / POINTS ))
runs=0
for ((n = first; n <= last; n += step)); do
  opts="powerfail_at=$n,commit=3600"
  ((n % 2)) && opts+=",powerfail_seed=$n"
  rm -f "$REGION"
  _mkfs -s 64m
  _mount "$opts"
  pid=${_MOUNT_PID[$MNT]}
  workload
  for ((i = 0; i < 100; i++)); do _pid_alive "$pid" || break; sleep 0.05; done
  _pid_alive "$pid" && _fail "point $n: the daemon is still running after the workload (the power never failed)"
  _reap "$pid" || true
  _MOUNT_PID[$MNT]=''
  mountpoint -q "$MNT" && _fusermount_u "$MNT" -z
  _mount
  check "point $n ($opts)"
  _unmount
  _assert_exit 0 "$FSCK_PMEMFS" -n "$REGION"
  runs=$((runs + 1))
done
_log "power failed at $runs persistence points of $((last - first + 1)); every one recovered"
