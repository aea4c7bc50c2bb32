#!/usr/bin/env bash
# A 64 GiB sparse region formats, mounts and serves data mapped past the
# first 4 GiB window of the region; the region file stays sparse.
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
