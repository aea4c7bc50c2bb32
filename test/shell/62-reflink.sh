#!/usr/bin/env bash
# Reflink and copy-on-write with real tools: `pmemfs-io reflink` shares
# every block (bmap -v: shared, same region offsets), a write to the clone
# copies just the block it touches (the source unchanged, bmap -v shows the
# split); cp (copy_file_range) makes an instant copy; dedupe shares equal
# ranges only; funshare; the VFS range rules' errnos; sealing a reflinked
# file unshares it; a read pin on a shared block blocks the COW of either
# owner; the counts survive remount and fsck finds nothing to repair.
. "$(dirname "$0")/lib.sh"

_require_fuse
_require_root
_require_cmd xfs_io pmemfs-io md5sum cp fsck.pmemfs

_scratch_setup
_mkfs -s 256m
_mount "dax=never"
IO=pmemfs-io
A=$MNT/a
bmapv() { $IO -r -c "bmap -v" "$1" | tail -n +3; }
# Region offsets of the data records of bmap -v (column 3), one per line.
phys() { bmapv "$1" | awk '$3 != "hole" { print $3 }'; }
free_blocks() { stat -f -c %f "$MNT"; }

xfs_io -f -c "pwrite -S 0x61 0 1m" "$A" >/dev/null
sum_a=$(md5sum <"$A")

_log "reflink shares every block"
free0=$(free_blocks)
touch "$MNT/b"
out=$($IO -c "reflink $A" "$MNT/b")
grep -q '^linked 1048576/1048576 bytes at offset 0' <<<"$out" || _fail "reflink output: $out"
_assert_eq "$sum_a" "$(md5sum <"$MNT/b")" "clone contents"
_assert_eq "$(phys "$A")" "$(phys "$MNT/b")" "region offsets of the clone"
bmapv "$MNT/b" | grep -qv shared && _fail "a clone record is not shared: $(bmapv "$MNT/b")"
used=$(( free0 - $(free_blocks) ))
(( used <= 4 )) || _fail "a 1 MiB clone took $used blocks (the refcount index needs 2; data none)"

_log "a write to the clone copies one block; the source is unchanged; bmap -v shows the split"
xfs_io -c "pwrite -S 0x62 64k 4k" "$MNT/b" >/dev/null
_assert_eq "$sum_a" "$(md5sum <"$A")" "source after a write to the clone"
cmp -s -i 0:0 -n 65536 "$A" "$MNT/b" || _fail "clone's first 64 KiB changed"
_assert_eq 0 "$(dd if="$MNT/b" bs=4k skip=16 count=1 status=none | tr -d b | wc -c)" "bytes other than 'b' in the written block"
rows=$(bmapv "$MNT/b")
grep -qE '^ *[0-9]+: \[65536\.\.69631\]: +[0-9]+\.\.[0-9]+ .* -$' <<<"$rows" || _fail "bmap -v of the clone has no unshared record for the written block:
$rows"
(( $(grep -c shared <<<"$rows") == 2 )) || _fail "bmap -v of the clone should show two shared records around the copy:
$rows"
(( $(bmapv "$A" | grep -c shared) == 2 )) || _fail "the source's block at 64k is no longer shared, around it two shared records:
$(bmapv "$A")"

_log "cp shares block-aligned ranges through copy_file_range"
free0=$(free_blocks)
cp "$A" "$MNT/c"
_assert_eq "$sum_a" "$(md5sum <"$MNT/c")" "cp contents"
_assert_eq "$(phys "$A" | head -1)" "$(phys "$MNT/c" | head -1)" "cp's first record is the source's blocks"
(( free0 - $(free_blocks) <= 4 )) || _fail "cp of 1 MiB took $(( free0 - $(free_blocks) )) blocks: not shared"
# An unaligned tail that ends at the source's EOF is shared too.
head -c 10000 "$A" >"$MNT/odd"
cp "$MNT/odd" "$MNT/odd2"
_assert_eq "$(md5sum <"$MNT/odd")" "$(md5sum <"$MNT/odd2")" "cp of an unaligned file"
_assert_eq 10000 "$(stat -c %s "$MNT/odd2")" "size of the copy"

_log "the range rules: EINVAL for unaligned offsets, overlap in one file, a range past the source's EOF"
_assert_errno "reflink: Invalid argument" $IO -c "reflink $A 100 0 4096" "$MNT/c"
_assert_errno "reflink: Invalid argument" $IO -c "reflink $A 0 4096 8192" "$A"
_assert_errno "reflink: Invalid argument" $IO -c "reflink $A 0 0 2m" "$MNT/c"
_assert_errno "reflink: Is a directory" $IO -c "reflink $MNT" "$MNT/c"

_log "dedupe shares equal ranges, refuses different ones"
xfs_io -f -c "pwrite -S 0x61 0 64k" -c "pwrite -S 0x7a 64k 64k" "$MNT/d" >/dev/null
out=$($IO -c "dedupe $A 0 0 64k" "$MNT/d")
grep -q '^deduped 65536/65536 bytes at offset 0' <<<"$out" || _fail "dedupe output: $out"
_assert_eq "$(phys "$A" | head -1 | cut -d. -f1)" "$(phys "$MNT/d" | head -1 | cut -d. -f1)" "deduped range shares the source's blocks"
_assert_errno "XFS_IOC_FILE_EXTENT_SAME: Extents did not match." $IO -c "dedupe $A 64k 64k 64k" "$MNT/d"

_log "funshare gives the clone blocks of its own"
$IO -c "funshare 0 1m" "$MNT/b"
bmapv "$MNT/b" | grep -q shared && _fail "shared records after funshare: $(bmapv "$MNT/b")"
cmp -s "$A" "$MNT/b" && _fail "funshare changed the data"   # it differs at 64k only
cmp -s -n 65536 "$A" "$MNT/b" || _fail "funshare changed the data"

_log "sealing a reflinked file unshares it, data unchanged"
touch "$MNT/e"
$IO -c "reflink $A" "$MNT/e" >/dev/null
$IO -c seal "$MNT/e"
bmapv "$MNT/e" | grep -q shared && _fail "a sealed file still shares blocks: $(bmapv "$MNT/e")"
_assert_eq "$sum_a" "$(md5sum <"$MNT/e")" "sealed clone's contents"
grep -q 'sealed=persistent' <<<"$($IO -r -c stat "$MNT/e")" || _fail "pmemfs-io stat does not show the seal"
_assert_errno "reflink: Text file busy" $IO -c "reflink $A" "$MNT/e"

_log "a read pin on a shared block blocks the copy-on-write of either owner"
touch "$MNT/f"
$IO -c "reflink $A" "$MNT/f" >/dev/null
$IO -r -c "pin 0 64k" -c "sleep 30" "$A" >"$SCRATCH/pin.out" 2>&1 &
holder=$!; _PIDS+=("$holder")
for _ in $(seq 50); do _nonempty "$MNT/.pmemfs/busy" && break; sleep 0.1; done
_nonempty "$MNT/.pmemfs/busy" || _fail "the pin did not appear: $(cat "$SCRATCH/pin.out")"
bmapv "$MNT/f" | head -1 | grep -q shared || _fail "a read pin unshared the block"
_assert_errno "pwrite: Text file busy" xfs_io -c "pwrite -S 0x63 0 4k" "$MNT/f"
_assert_errno "pwrite: Text file busy" xfs_io -c "pwrite -S 0x63 4k 4k" "$A"
_assert_exit 0 xfs_io -c "pwrite -S 0x63 128k 4k" "$MNT/f"
_assert_eq "$sum_a" "$(md5sum <"$A")" "source after refused writes"
kill -KILL "$holder"; _reap "$holder" || true
for _ in $(seq 50); do _nonempty "$MNT/.pmemfs/busy" || break; sleep 0.1; done
_assert_exit 0 xfs_io -c "pwrite -S 0x63 0 4k" "$MNT/f"
_assert_eq "$sum_a" "$(md5sum <"$A")" "source after the clone's COW"

_log "the counts survive remount; fsck finds nothing"
sums=$(cd "$MNT" && md5sum a b c d e f odd odd2)
_unmount
_assert_exit 0 "$FSCK_PMEMFS" -n "$REGION"
grep -q 'reference count' <<<"$LAST_OUT$LAST_ERR" && _fail "fsck reports reference counts: $LAST_OUT$LAST_ERR"
_mount "dax=never"
_assert_eq "$sums" "$(cd "$MNT" && md5sum a b c d e f odd odd2)" "contents after remount"
bmapv "$MNT/c" | grep -q shared || _fail "cp's copy no longer shares after remount"
rm -f "$MNT"/{a,b,c,d,f,odd,odd2}
$IO -c unseal "$MNT/e"; rm -f "$MNT/e"
_unmount
_assert_exit 0 "$FSCK_PMEMFS" -n "$REGION"
