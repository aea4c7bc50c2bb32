#!/usr/bin/env bash
# Emulated power failure through the real daemon: with -o nopowerfail the
# ctl command is EOPNOTSUPP and the mount keeps working; by default (with
# commit=3600: only fsync commits), `echo powerfail > ctl`
# stops the daemon (exit 0, mount gone) leaving a region that fsck -n calls
# not unmounted cleanly; the next mount recovers it: what was fsync'd is
# intact, what came after the last fsync (a new file, a rename, a link, a
# mkdir, an in-place overwrite) is gone; fsck -n is clean after unmounting.
# Then `powerfail 7` (a seeded random half of the unflushed pages reaches
# the media): fsync'd data intact, the tree readable, fsck clean.
. "$(dirname "$0")/lib.sh"

_require_fuse
_require_root
_require_cmd xfs_io sha256sum fsck.pmemfs

_scratch_setup
_mkfs -s 64m
CTL=$MNT/.pmemfs/ctl
# put FILE PATTERN LEN [fsync]: FILE holds LEN bytes of PATTERN (fsync'd if asked).
put() { xfs_io -f -c "pwrite -S $2 0 $3" ${4:+-c fsync} "$1" >/dev/null; }

# powerfail CMD: write CMD to the ctl file; the daemon must exit 0 within
# 5 s and the mount go away (it unmounts itself lazily; if it did not, we do).
powerfail() {
  local cmd=$1 pid=${_MOUNT_PID[$MNT]} i rc=0 t0
  t0=$(_now_ms)
  _run bash -c "echo '$cmd' > '$CTL'"
  (( LAST_RC == 0 )) || _fail "echo '$cmd' > ctl failed (exit $LAST_RC): $LAST_ERR"
  for ((i = 0; i < 100; i++)); do _pid_alive "$pid" || break; sleep 0.05; done
  _pid_alive "$pid" && _fail "pmemfs (pid $pid) still running 5 s after '$cmd'"
  _reap "$pid" || rc=$?
  (( rc == 0 )) || _fail "pmemfs (pid $pid) exited with status $rc after '$cmd', expected 0"
  _log "'$cmd': daemon exited 0 after $(( $(_now_ms) - t0 )) ms"
  for ((i = 0; i < 40; i++)); do mountpoint -q "$MNT" || break; sleep 0.05; done
  if mountpoint -q "$MNT"; then
    _log "NOTE: $MNT still mounted 2 s after the daemon exited; unmounting it lazily"
    _fusermount_u "$MNT" -z
  fi
  _MOUNT_PID[$MNT]=''   # no daemon of ours any more; cleanup still unmounts MNT if need be
  ! mountpoint -q "$MNT" || _fail "$MNT is still mounted after '$cmd'"
  grep -q '"msg":"power failure emulated' <<<"$(_log_since "$mark")" || _fail "no 'power failure emulated' line in the daemon log"
}

# fsck -n right after the failure: not clean, and it says why.
fsck_unclean() {
  _run "$FSCK_PMEMFS" -n "$REGION"
  (( LAST_RC != 0 )) || _fail "fsck.pmemfs -n exited 0 right after a power failure, expected 'not unmounted cleanly'"
  grep -q 'not unmounted cleanly' <<<"$LAST_OUT$LAST_ERR" \
    || _fail "fsck.pmemfs -n after a power failure (exit $LAST_RC) does not say 'not unmounted cleanly': $LAST_OUT $LAST_ERR"
  _log "ok: fsck.pmemfs -n before replay → exit $LAST_RC: $(grep -m1 'not unmounted cleanly' <<<"$LAST_OUT$LAST_ERR")"
}

# remount_recovered [OPTS]: mount; the 'mounted' line must say recovered.
# (The log is written asynchronously: wait for the line.)
remount_recovered() {
  local mounted
  mark=$(_log_mark)
  _mount "${1:-}"
  mounted=$(_mounted_line "$mark" "${_MOUNT_PID[$MNT]}")
  [[ -n $mounted ]] || _fail "no 'mounted' line in the daemon log"
  grep -q '"recovered":true' <<<"$mounted" || _fail "the mount after the power failure does not say recovered: $mounted"
  _log "recovered; $(_log_since "$mark" | grep -o '"msg":"journal: [^"]*"' || echo 'no journal replay logged')"
}

_log "-o nopowerfail: EOPNOTSUPP, and the mount keeps working"
_mount nopowerfail
put "$MNT/keep" 0x5a 64k
keep_sha=$(_sha "$MNT/keep")
_assert_errno "Operation not supported" bash -c "echo powerfail > '$CTL'"
_assert_errno "Operation not supported" bash -c "echo 'powerfail 7' > '$CTL'"
sleep 0.5
_pid_alive "${_MOUNT_PID[$MNT]}" || _fail "the daemon is gone after a refused powerfail"
mountpoint -q "$MNT" || _fail "$MNT is no longer mounted after a refused powerfail"
_assert_eq "$keep_sha" "$(_sha "$MNT/keep")" "keep after the refused powerfail"
echo after >"$MNT/after"
_assert_eq after "$(cat "$MNT/after")" "a file written after the refused powerfail"
_unmount
_assert_exit 0 "$FSCK_PMEMFS" -n "$REGION"

_log "a malformed command is EINVAL and stops nothing; powerfail_at with nopowerfail is refused"
_run "$PMEMFS" "$REGION" "$MNT" -f -o nopowerfail,powerfail_at=3
(( LAST_RC != 0 )) && grep -q "powerfail_at needs the recording" <<<"$LAST_ERR" || _fail "nopowerfail,powerfail_at=3 was not refused with a message (exit $LAST_RC): $LAST_ERR"
_mount "commit=3600"
_assert_errno "Invalid argument" bash -c "echo 'powerfail 1 2' > '$CTL'"
_assert_errno "Invalid argument" bash -c "echo 'powerfail x' > '$CTL'"
_pid_alive "${_MOUNT_PID[$MNT]}" || _fail "the daemon is gone after a malformed powerfail"

_log "fsync'd A and A2; then, not fsync'd: B, A2 → A3, link, mkdir, overwrite of A"
put "$MNT/A" 0xa1 300k fsync
put "$MNT/A2" 0xa2 40000 fsync
a_sha=$(_sha "$MNT/A"); a2_sha=$(_sha "$MNT/A2")
head -c 200000 /dev/urandom >"$MNT/B"
mv "$MNT/A2" "$MNT/A3"
ln "$MNT/A" "$MNT/L"
mkdir "$MNT/D"
xfs_io -c "pwrite -S 0xee 4096 8192" "$MNT/A" >/dev/null
[[ $(_sha "$MNT/A") != "$a_sha" ]] || _fail "the overwrite of A changed nothing"
mark=$(_log_mark)
powerfail powerfail
fsck_unclean
remount_recovered
_assert_eq "$a_sha" "$(_sha "$MNT/A")" "sha of fsync'd A (the unflushed overwrite must be lost)"
[[ -e $MNT/A2 ]] || _fail "A2 (fsync'd, renamed after) is gone: $(ls -la "$MNT")"
_assert_eq "$a2_sha" "$(_sha "$MNT/A2")" "sha of fsync'd A2"
for gone in B A3 L D; do
  [[ -e $MNT/$gone ]] && _fail "$gone exists after the power failure, but was never committed"
done
_assert_eq 1 "$(stat -c %h "$MNT/A")" "link count of A (the link was never committed)"
_assert_eq "$keep_sha" "$(_sha "$MNT/keep")" "keep (from the first mount)"
_assert_exit 0 ls -lR "$MNT"
_unmount
_assert_exit 0 "$FSCK_PMEMFS" -n "$REGION"

_log "powerfail 7: a seeded half of the unflushed pages reaches the media"
_mount "commit=3600"
put "$MNT/C" 0xc1 200k fsync
c_sha=$(_sha "$MNT/C")
mkdir "$MNT/E"
for i in 1 2 3 4 5 6; do head -c $(( i * 37000 )) /dev/urandom >"$MNT/E/f$i"; done
mv "$MNT/E/f1" "$MNT/E/g1"
mv "$MNT/C" "$MNT/C2"
ln "$MNT/A" "$MNT/E/A"
rm "$MNT/A2"
xfs_io -c "pwrite -S 0xee 0 64k" "$MNT/keep" >/dev/null
mark=$(_log_mark)
powerfail "powerfail 7"
grep -q '"seed":7' <<<"$(_log_since "$mark")" || _fail "the daemon log does not show seed 7"
fsck_unclean
remount_recovered
_assert_eq "$c_sha" "$(_sha "$MNT/C")" "sha of fsync'd C (renamed after, never committed)"
[[ -e $MNT/C2 ]] && _fail "C2 exists: the rename was never committed"
_assert_eq "$a_sha" "$(_sha "$MNT/A")" "sha of A"
_assert_eq "$a2_sha" "$(_sha "$MNT/A2")" "sha of A2 (its unlink was never committed)"
[[ -e $MNT/E ]] && _fail "E exists: the mkdir was never committed"
_run ls -lR "$MNT"
(( LAST_RC == 0 )) || _fail "ls -lR after the seeded power failure: $LAST_ERR"
_run find "$MNT" -type f -exec cat {} +
(( LAST_RC == 0 )) || _fail "reading every file after the seeded power failure: $LAST_ERR"
_unmount
_assert_exit 0 "$FSCK_PMEMFS" -n "$REGION"

_log "O_SYNC writes are durable on return, on create and on open (dax=always: no FSYNC from the kernel)"
_mount "commit=3600"
xfs_io -f -s -c "pwrite -S 0x5a 0 12k" "$MNT/S" >/dev/null       # created with O_SYNC
put "$MNT/T" 0x11 8k fsync
xfs_io -s -c "pwrite -S 0x22 4k 4k" "$MNT/T" >/dev/null            # opened with O_SYNC
s_sha=$(_sha "$MNT/S"); t_sha=$(_sha "$MNT/T")
put "$MNT/U" 0x33 4k                                               # neither: lost
powerfail "powerfail"
remount_recovered
_assert_eq "$s_sha" "$(_sha "$MNT/S")" "sha of S, written with O_SYNC at create"
_assert_eq "$t_sha" "$(_sha "$MNT/T")" "sha of T, overwritten through an O_SYNC open"
[[ -e $MNT/U ]] && _fail "U exists: it was neither fsync'd nor written with O_SYNC"
_unmount
_assert_exit 0 "$FSCK_PMEMFS" -n "$REGION"
