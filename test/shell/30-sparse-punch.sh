#!/usr/bin/env bash
# Sparse files and the fallocate modes FUSE forwards: a punched hole reads
# as zeros and gives its blocks back; a 10 GiB truncate allocates nothing;
# fallocate default / --keep-size / --zero-range set size and blocks like a
# Linux filesystem. All of it again after a remount.
#
# Block counts are read as `stat -c '%s %b'`: asking for the size too makes
# the kernel refetch attributes the FUSE module invalidated after a write or
# fallocate, instead of serving st_blocks from its attribute cache.
. "$(dirname "$0")/lib.sh"

_require_fuse
_require_cmd xfs_io fallocate truncate du stat cmp md5sum

KiB=1024
MiB=$((1024 * KiB))

# blocks FILE: st_blocks (512-byte units).
blocks() { stat -c '%s %b' "$1" | cut -d' ' -f2; }
size() { stat -c %s "$1"; }

# expect_bytes FILE OFF LEN HEX: every byte of the range is 0xHEX.
expect_bytes() {
  local file=$1 off=$2 len=$3 hex=$4
  cmp -s -n "$len" -i "$off:0" "$file" <(head -c "$len" /dev/zero | tr '\0' "\\$(printf '%03o' "0x$hex")") \
    || _fail "bytes in [$off, +$len) of $(basename "$file") are not all 0x$hex"
}

# expect_zero_dump FILE OFF LEN: `xfs_io pread -v` of the range shows only 00.
expect_zero_dump() {
  local file=$1 off=$2 len=$3 out hist
  out=$(xfs_io -r -c "pread -v $off $len" "$file" 2>&1) || _fail "xfs_io pread -v $off $len $file failed: $out"
  grep -q "^read $len/$len bytes" <<<"$out" || _fail "pread $off $len of $file was short: $(grep '^read' <<<"$out")"
  hist=$(awk '/^[0-9a-f]+:  / { for (i = 2; i <= 17 && i <= NF; i++) if ($i ~ /^[0-9a-f][0-9a-f]$/) n[$i]++ }
              END { for (k in n) print k, n[k] }' <<<"$out" | sort)
  _assert_eq "00 $len" "$hist" "byte histogram of pread -v $off $len"
}

# xio FILE CMD...: xfs_io with the commands, failing on any error line.
xio() {
  local file=$1 out a; shift
  local args=()
  for a in "$@"; do args+=(-c "$a"); done
  out=$(xfs_io -f "${args[@]}" "$file" 2>&1) || _fail "xfs_io $* $file failed: $out"
  # xfs_io reports a failed command as "CMD: strerror" and may carry on.
  if grep -qE '^[a-z_]+: ' <<<"$out"; then _fail "xfs_io $* $file reported: $out"; fi
}

_scratch_setup
_mkfs -s 1g
_mount dax=always

PUNCH=$MNT/punch
BIG=$MNT/big-sparse
FALLOC=$MNT/falloc

check_punch() {
  _assert_eq $MiB "$(size "$PUNCH")" "size of the punched file"
  expect_zero_dump "$PUNCH" $((4 * KiB)) $((8 * KiB))
  expect_bytes "$PUNCH" 0 $((4 * KiB)) cd
  expect_bytes "$PUNCH" $((12 * KiB)) $((MiB - 12 * KiB)) cd
}

check_big() {
  _assert_eq $((10 * 1024 * MiB)) "$(size "$BIG")" "size after truncate -s 10g"
  local b du_k
  b=$(blocks "$BIG")
  (( b <= 8 )) || _fail "truncate -s 10g allocated $b blocks of 512 bytes (expected <= 8)"
  du_k=$(du -k "$BIG" | cut -f1)
  (( du_k <= 4 )) || _fail "du reports ${du_k} KiB for the 10 GiB sparse file (expected ~0)"
}

check_falloc() {
  _assert_eq $MiB "$(size "$FALLOC")" "size after fallocate/--keep-size/--zero-range"
  local b
  b=$(blocks "$FALLOC")
  (( b >= 2 * MiB / 512 )) || _fail "$FALLOC has $b blocks after 1 MiB + 1 MiB --keep-size (expected >= $((2 * MiB / 512)))"
  expect_bytes "$FALLOC" 0 $((256 * KiB)) ab
  expect_bytes "$FALLOC" $((256 * KiB)) $((64 * KiB)) 00
  expect_bytes "$FALLOC" $((320 * KiB)) $((MiB - 320 * KiB)) ab
}

_log "punch a hole: zeros read back, blocks drop"
xio "$PUNCH" "pwrite -S 0xcd 0 1m" fsync
before=$(blocks "$PUNCH")
(( before >= MiB / 512 )) || _fail "1 MiB written but only $before blocks of 512 bytes"
xio "$PUNCH" "fpunch 4k 8k"
after=$(blocks "$PUNCH")
(( after <= before - 8 * KiB / 512 )) || _fail "blocks went from $before to $after after punching 8 KiB (expected a drop of >= 16)"
check_punch

_log "truncate -s 10g: a hole, no blocks"
truncate -s 10g "$BIG"
check_big

_log "fallocate: default, --keep-size, --zero-range"
fallocate -l 1m "$FALLOC"
_assert_eq $MiB "$(size "$FALLOC")" "size after fallocate -l 1m"
b=$(blocks "$FALLOC")
(( b >= MiB / 512 )) || _fail "fallocate -l 1m gave $b blocks (expected >= $((MiB / 512)))"
cmp -s -n $MiB "$FALLOC" /dev/zero || _fail "fallocated range does not read as zeros"
fallocate --keep-size -o 1m -l 1m "$FALLOC"
_assert_eq $MiB "$(size "$FALLOC")" "size after fallocate --keep-size beyond EOF"
b_keep=$(blocks "$FALLOC")
(( b_keep >= 2 * MiB / 512 )) || _fail "fallocate --keep-size -o 1m -l 1m: $b_keep blocks (expected >= $((2 * MiB / 512)))"
xio "$FALLOC" "pwrite -S 0xab 0 1m"
fallocate --zero-range -o 256k -l 64k "$FALLOC"
b_zero=$(blocks "$FALLOC")
(( b_zero >= b_keep )) || _fail "fallocate --zero-range freed blocks ($b_keep -> $b_zero): the range must stay allocated"
check_falloc

manifest() {  # name size blocks [md5] of every file (not reading 10 GiB of hole)
  local f
  for f in "$PUNCH" "$FALLOC"; do
    printf '%s %s %s %s\n' "$(basename "$f")" "$(size "$f")" "$(blocks "$f")" "$(md5sum <"$f" | cut -d' ' -f1)"
  done
  printf '%s %s %s\n' "$(basename "$BIG")" "$(size "$BIG")" "$(blocks "$BIG")"
}
manifest >"$SCRATCH/manifest.before"

_remount dax=always
_log "after the remount"
manifest >"$SCRATCH/manifest.after"
cmp -s "$SCRATCH/manifest.before" "$SCRATCH/manifest.after" \
  || _fail "files changed across the remount: $(diff "$SCRATCH/manifest.before" "$SCRATCH/manifest.after" | tr '\n' ' ')"
check_punch
check_big
check_falloc

_unmount
_assert_exit 0 "$FSCK_PMEMFS" -n "$REGION"
