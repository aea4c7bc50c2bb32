#!/usr/bin/env bash
# A full region: writing until ENOSPC fails cleanly ("No space left on
# device"), statfs then reports (almost) nothing available, deleting the
# file gives the space back, a new write succeeds and survives a remount,
# and the region checks clean.
. "$(dirname "$0")/lib.sh"

_require_fuse
_require_cmd dd df md5sum

MiB=$((1024 * 1024))
# What may stay available once a write has failed with ENOSPC: less than
# one dd block plus some slack for metadata reservations.
FULL_SLACK=$MiB
# What deleting the file may fail to give back (directory and inode growth).
RETURN_SLACK=$((256 * 1024))

avail() { df -B1 --output=avail "$MNT" | tail -n 1 | tr -d ' '; }

_scratch_setup
_mkfs -s 64m
_mount dax=always

avail0=$(avail)
_log "available when empty: $avail0 bytes"
(( avail0 > 32 * MiB )) || _fail "a fresh 64 MiB region offers only $avail0 bytes"

_log "fill with dd until ENOSPC"
_assert_errno "No space left on device" dd if=/dev/zero of="$MNT/fill" bs=64k
fill_size=$(stat -c %s "$MNT/fill")
avail_full=$(avail)
_log "file reached $fill_size bytes; available now: $avail_full bytes"
(( avail_full <= FULL_SLACK )) || _fail "df reports $avail_full bytes available on a full region (expected ~0, <= $FULL_SLACK)"
(( fill_size >= avail0 - FULL_SLACK )) || _fail "dd stopped at $fill_size bytes but $avail0 were available"

rm "$MNT/fill"
avail_back=$(avail)
_log "after rm: $avail_back bytes available"
(( avail_back + RETURN_SLACK >= avail0 )) || _fail "rm gave back only $((avail_back - avail_full)) bytes: $avail_back available vs $avail0 at the start"

_log "write again"
_assert_exit 0 dd if=/dev/urandom of="$MNT/again" bs=1M count=32 conv=fsync
sum=$(md5sum <"$MNT/again")

_remount dax=always
_assert_eq "$sum" "$(md5sum <"$MNT/again")" "checksum of the rewritten file after remount"
_unmount
_assert_exit 0 "$FSCK_PMEMFS" -n "$REGION"
