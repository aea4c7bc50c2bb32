#!/usr/bin/env bash
# A 64 GiB sparse region formats, mounts and serves data mapped past the
# first 4 GiB window of the region; the region file stays sparse. A region
# made with mkfs.pmemfs -P has every block allocated and works the same.
. "$(dirname "$0")/lib.sh"

_require_fuse
_require_cmd xfs_io cmp du

_scratch_setup
_mkfs -s 64g
_mount "dax=always"
_assert_exit 0 xfs_io -f -c "pwrite -S 0x5c 60g 1m" "$MNT/far"
_assert_eq "$(( 60 * 2**30 + 2**20 )) 2048" "$(stat -c '%s %b' "$MNT/far")" "size and blocks of the far file"
_remount "dax=always"
cmp -s -n 1048576 -i $(( 60 * 2**30 )):0 "$MNT/far" <(head -c 1048576 /dev/zero | tr '\0' '\134') \
  || _fail "data at 60 GiB did not survive the remount"
_unmount
_assert_exit 0 fsck.pmemfs -n "$REGION"
used_kb=$(du -k "$REGION" | cut -f1)
(( used_kb < 64 * 1024 )) || _fail "the 64 GiB region uses ${used_kb} KiB on disk: not sparse"
_log "64 GiB region: ${used_kb} KiB on disk"

# mkfs.pmemfs -P: the whole region file written now (no hole left for the
# host to allocate on a later flush), then used like any region.
rm -f "$REGION"
_mkfs -P -s 96m
_assert_eq "$(( 96 * 2**20 ))" "$(stat -c '%s' "$REGION")" "size of the preallocated region"
alloc=$(( $(stat -c '%b * %B' "$REGION") ))
(( alloc >= 96 * 2**20 )) || _fail "mkfs.pmemfs -P left holes: $alloc bytes allocated of $(( 96 * 2**20 ))"
_mount "dax=never"
_assert_exit 0 xfs_io -f -c "pwrite -S 0x3d 0 4m" -c fsync "$MNT/pre"
_remount "dax=never"
cmp -s -n 4194304 "$MNT/pre" <(head -c 4194304 /dev/zero | tr '\0' '\075') || _fail "data written to a preallocated region did not survive the remount"
_unmount
_assert_exit 0 fsck.pmemfs -n "$REGION"
_log "preallocated 96 MiB region: $alloc bytes allocated, data kept, fsck clean"
