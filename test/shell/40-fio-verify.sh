#!/usr/bin/env bash
# Data integrity under sustained I/O: fio writes 512 MiB sequentially
# (128 KiB blocks, psync, buffered) into a 1 GiB region's mount with a
# crc32c checksum in every block, then reads it all back and verifies;
# after a remount the same job verifies again (--verify_only), so what was
# acknowledged is what persisted. fsck.pmemfs -n is clean at the end.
# Twice: with the region in the scratch directory on a disk filesystem
# (the daemon stores by pwrite) and in /dev/shm (a tmpfs: it stores into
# its mapping), each mode checked on the stats line.
. "$(dirname "$0")/lib.sh"

_require_fuse
_require_cmd fio

SIZE=512m
FIO_JOB=(
  --name=pmemfs-verify --rw=write --bs=128k --size="$SIZE"
  --ioengine=psync --direct=0 --end_fsync=1
  --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0
  --randrepeat=1 --output-format=normal
)

_scratch_setup
SHM_REGION=$(mktemp /dev/shm/pmemfs-test-region.XXXXXX)
_OUTSIDE_FILES+=("$SHM_REGION")
cd "$SCRATCH"

# verify_on REGION STORES: the write+verify, a remount, the verify again, fsck.
verify_on() {
  REGION=$1
  _mkfs -s 1g
  _mount dax=always
  grep -q "^subsystem=persist .* stores=$2\b" "$MNT/.pmemfs/stats" \
    || _fail "region $REGION: expected stores=$2 on the persist line, got: $(grep '^subsystem=persist' "$MNT/.pmemfs/stats")"
  _log "fio ($2 stores): write $SIZE with crc32c, then verify"
  fio "${FIO_JOB[@]}" --filename="$MNT/fio.dat" >"$SCRATCH/fio-write.out" 2>&1 \
    || { tail -n 30 "$SCRATCH/fio-write.out" >&2; _fail "fio write+verify failed (output above)"; }
  grep -qE 'err= *0' "$SCRATCH/fio-write.out" || { cat "$SCRATCH/fio-write.out" >&2; _fail "fio reported an error"; }

  _remount dax=always
  _log "fio ($2 stores): verify only, after the remount"
  fio "${FIO_JOB[@]}" --verify_only --filename="$MNT/fio.dat" >"$SCRATCH/fio-verify.out" 2>&1 \
    || { tail -n 30 "$SCRATCH/fio-verify.out" >&2; _fail "fio verify after remount failed (output above)"; }

  _unmount
  _assert_exit 0 "$FSCK_PMEMFS" -n "$REGION"
}

verify_on "$SCRATCH/region.img" pwrite
rm -f "$SCRATCH/region.img"
verify_on "$SHM_REGION" mapping
