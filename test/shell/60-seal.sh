#!/usr/bin/env bash
# Block-map seals with real tools: the contract's refusal matrix for both
# kinds (persistent seal, lease), as root and as an unprivileged user;
# in-place writes leave `bmap -v` byte-identical; sealing fills holes and
# converts unwritten extents; a persistent seal survives remount and a
# kill -9 of the daemon; a kill -9'd lease holder is noticed within a second.
. "$(dirname "$0")/lib.sh"

_require_fuse
_require_root
_require_cmd xfs_io setfattr getfattr setpriv pmemfs-io truncate fallocate md5sum

_scratch_setup
_mkfs -s 256m
_mount "dax=always,lease_break=1,allow_other"

F=$MNT/f
IO=pmemfs-io
state() { getfattr --only-values -n user.pmemfs.state "$1"; }
bmapv() { $IO -r -c "bmap -v" "$1"; }

# --- the matrix, for one kind of seal already in place on $F ---------------
matrix() {
  local kind=$1 before after
  _assert_eq "$kind" "$(state "$F" | sed -n 's/.*sealed=\([a-z]*\).*/\1/p')" "sealed= in user.pmemfs.state"
  before=$(bmapv "$F")
  _assert_exit 0 xfs_io -c "pwrite -S 0x77 4096 8192" "$F"
  after=$(bmapv "$F")
  _assert_eq "$before" "$after" "bmap -v after an in-place write"
  _assert_errno "pwrite: Text file busy" xfs_io -c "pwrite 1m 4096" "$F"
  _assert_eq 1048576 "$(stat -c %s "$F")" "size after the refused extending write"
  _assert_errno "Text file busy" truncate -s 4096 "$F"
  _assert_errno "Text file busy" truncate -s 2m "$F"
  _assert_exit 0 truncate -s 1m "$F"
  _assert_errno "Text file busy" bash -c ": > '$F'"
  _assert_errno "Text file busy" fallocate -l 2m "$F"
  _assert_errno "Text file busy" fallocate -p -o 0 -l 4096 "$F"
  _assert_errno "Text file busy" fallocate -z -o 0 -l 4096 "$F"
  _assert_errno "Text file busy" xfs_io -c "fpunch 0 4k" "$F"
  _assert_errno "Text file busy" $IO -c "fcollapse 0 4096" "$F"
  _assert_errno "Text file busy" $IO -c "finsert 0 4096" "$F"
  echo other > "$MNT/other"
  _assert_errno "Text file busy" $IO -c "reflink $MNT/other" "$F"
  # Unaffected: read, rename, link, chmod, chown, utimens, xattrs.
  _assert_exit 0 cat "$F"
  _assert_exit 0 mv "$F" "$MNT/g"; _assert_exit 0 mv "$MNT/g" "$F"
  _assert_exit 0 ln "$F" "$MNT/hard"; _assert_exit 0 rm "$MNT/hard"
  _assert_exit 0 chmod 0640 "$F"; _assert_exit 0 chown 1:1 "$F"; _assert_exit 0 touch -d @1234567890 "$F"
  _assert_exit 0 setfattr -n user.note -v x "$F"
  _assert_eq "$after" "$(bmapv "$F")" "bmap -v after the refused operations"
  _assert_exit 0 xfs_io -c lsattr "$F"
  # Kernel 6.x drops the sealed xflag (0x20000) on its fileattr path: pmemfs-io shows the seal beside the xflags.
  grep -qE '^fsxattr.xflags = 0x[0-9a-f]+ \[.*\] sealed=(persistent|lease)$' <<<"$($IO -r -c stat "$F")" \
    || _fail "pmemfs-io stat does not show the seal beside the xflags: $($IO -r -c stat "$F" | grep xflags)"
  grep -qE ' sealed=(persistent|lease) ' <<<"$($IO -r -c lsattr "$F")" || _fail "pmemfs-io lsattr does not show the seal: $($IO -r -c lsattr "$F")"
}

# A sparse file with an unwritten extent: sealing must fill and convert.
xfs_io -f -c "pwrite -S 0x11 0 64k" -c "pwrite -S 0x22 512k 64k" -c "truncate 1m" "$F" >/dev/null
fallocate -n -o 128k -l 64k "$F"
sum=$(md5sum <"$F")
grep -q -E 'hole|unwritten' <<<"$(bmapv "$F")" || _fail "the test file should start sparse"

_log "persistent seal (setfattr)"
_assert_exit 0 setfattr -n trusted.pmemfs.sealed -v 1 "$F"
_assert_exit 0 setfattr -n trusted.pmemfs.sealed -v 1 "$F"   # idempotent
bmapv "$F" | grep -q -E 'hole|unwritten' && _fail "sealed file still has holes/unwritten extents: $(bmapv "$F")"
_assert_eq "$sum" "$(md5sum <"$F")" "data after sealing"
_assert_eq "$(( 1048576 / 512 ))" "$(stat -c '%s %b' "$F" | cut -d' ' -f2)" "st_blocks of the fully mapped 1 MiB file"
matrix persistent

_log "unprivileged: EPERM for seal/unseal, EACCES for a lease on a read-only open"
chmod 0666 "$F"; chmod 0755 "$SCRATCH"
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
_assert_errno "Operation not permitted" "${NOBODY[@]}" $IO -c unseal "$F"
_assert_errno "Operation not permitted" "${NOBODY[@]}" setfattr -x trusted.pmemfs.sealed "$F"
_assert_errno "Text file busy" "${NOBODY[@]}" truncate -s 0 "$F"
_assert_exit 0 "${NOBODY[@]}" xfs_io -c "pwrite 0 4096" "$F"

_log "persistent seal survives a remount and a kill -9 of the daemon"
_remount "dax=always,lease_break=1,allow_other"
_assert_eq persistent "$(state "$F" | sed -n 's/.*sealed=\([a-z]*\).*/\1/p')" "seal after remount"
pid=${_MOUNT_PID[$MNT]}
kill -KILL "$pid"; _reap "$pid" || true
_fusermount_u "$MNT" -z
unset '_MOUNT_PID[$MNT]'
_mount "dax=always,lease_break=1,allow_other"
_assert_eq persistent "$(state "$F" | sed -n 's/.*sealed=\([a-z]*\).*/\1/p')" "seal after kill -9"
grep -q '"recovered":true' "$DAEMON_LOG" || _fail "the mount after kill -9 did not run recovery"

_log "unseal (ioctl), then the lease kind"
_assert_exit 0 $IO -c unseal "$F"
_assert_exit 0 $IO -c unseal "$F"   # idempotent
_assert_eq none "$(state "$F" | sed -n 's/.*sealed=\([a-z]*\).*/\1/p')" "after unseal"
_assert_errno "Permission denied" "${NOBODY[@]}" $IO -r -c lease "$F"

$IO -c lease -c "sleep 30" "$F" 2>"$SCRATCH/holder.err" &
holder=$!; _PIDS+=("$holder")
for _ in $(seq 50); do grep -q 'sealed=lease' <<<"$(state "$F")" && break; sleep 0.1; done
matrix lease
_assert_exit 0 $IO -c seal "$F"
_assert_errno "Text file busy" $IO -c unseal "$F"
grep -q "pid:$holder" "$MNT/.pmemfs/leases" || _fail ".pmemfs/leases does not list holder $holder"

_log "kill -9 of the lease holder: lease gone within one second"
kill -KILL "$holder"; t0=$(date +%s%N); _reap "$holder" || true
while grep -q "pid:$holder" "$MNT/.pmemfs/leases"; do
  (( ($(date +%s%N) - t0) / 1000000 < 3000 )) || _fail "lease of killed holder still listed after 3 s"
  sleep 0.02
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
_log "lease released ${ms} ms after kill -9"
(( ms <= 1000 )) || _fail "lease released after ${ms} ms (> 1000 ms)"
_assert_exit 0 $IO -c unseal "$F"

_log "break: SIGIO to the holder, revoked after lease_break=1 s"
$IO -c lease -c "sleep 30" "$F" 2>"$SCRATCH/holder2.err" &
holder=$!; _PIDS+=("$holder")
for _ in $(seq 50); do grep -q "pid:$holder" "$MNT/.pmemfs/leases" && break; sleep 0.1; done
_assert_exit 0 $IO -c break "$F"
sleep 1.6
grep -q "pid:$holder" "$MNT/.pmemfs/leases" && _fail "lease not revoked after lease_break"
_assert_exit 0 truncate -s 0 "$F"
kill "$holder" 2>/dev/null; _reap "$holder" || true

_log "unlink of a sealed file: the name goes, the blocks stay while open"
xfs_io -f -c "pwrite 0 1m" "$MNT/s" >/dev/null
setfattr -n trusted.pmemfs.sealed -v 1 "$MNT/s"
exec 7<"$MNT/s"
free_before=$(stat -f -c %f "$MNT")
rm "$MNT/s"
[[ -e $MNT/s ]] && _fail "the name of the unlinked sealed file is still there"
_assert_eq 1048576 "$(wc -c <&7)" "bytes readable through the open handle"
exec 7<&-
sleep 0.3
(( $(stat -f -c %f "$MNT") >= free_before + 256 )) || _fail "blocks of the unlinked sealed file were not freed after the last close"

_log "dax=never: leases are EOPNOTSUPP"
_remount "dax=never"
echo x > "$MNT/n"
_assert_errno "Operation not supported" $IO -c lease "$MNT/n"
_unmount
_assert_exit 0 fsck.pmemfs -n "$REGION"
