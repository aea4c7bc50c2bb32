#!/usr/bin/env bash
# MAP_DIRECT emulation end to end: the shipped example maps a file's blocks
# straight from the region, keeps "DMA" writing through the mapping while
# truncate(1) runs in another process (refused: Text file busy), sees its
# writes through the mount, and after release the truncate succeeds.
# Also pmemfs-io's `map` command (lease + mapping) on the same mount.
. "$(dirname "$0")/lib.sh"

_require_fuse
_require_root
_require_cmd node pmemfs-io truncate

EXAMPLE=$(cd "$(dirname "$0")/../.." && pwd)/dist/examples/dma-vs-truncate.js
[[ -f $EXAMPLE ]] || _fail "$EXAMPLE is missing: run npm run build"

_scratch_setup
_mkfs -s 256m
_mount "dax=always"

_assert_exit 0 node "$EXAMPLE" "$MNT/buf" 1
_log "$(tr '\n' ';' <<<"$LAST_OUT")"
grep -q 'truncate while mapped: exit 1 .*Text file busy' <<<"$LAST_OUT" || _fail "truncate was not refused while mapped: $LAST_OUT"
grep -q '^OK:' <<<"$LAST_OUT" || _fail "example did not report OK: $LAST_OUT"
_assert_eq 0 "$(stat -c %s "$MNT/buf")" "size after the truncate that followed release"

_log "pmemfs-io map: lease held while mapped, gone when the process ends"
xfs_io -f -c "pwrite 0 1m" "$MNT/m" >/dev/null
_assert_exit 0 pmemfs-io -c "map 0 1m" -c "sleep 0.3" "$MNT/m"
grep -qi 'phys\|region' <<<"$LAST_OUT" || _fail "map printed no extents: $LAST_OUT"
sleep 0.6
_assert_eq "" "$(cat "$MNT/.pmemfs/leases")" "leases after the mapping process exited"
_assert_exit 0 truncate -s 0 "$MNT/m"
_unmount
_assert_exit 0 fsck.pmemfs -n "$REGION"
