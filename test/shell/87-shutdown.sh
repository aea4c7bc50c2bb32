#!/usr/bin/env bash
# Shutdown on a failed flush (xfs_force_shutdown), through the mount:
# flush_fail_at=N makes the flush of persistence point N fail as a medium
# error would. The fsync that reaches it gets EIO; from then on every change
# and every fsync gets EIO while clean data still reads; .pmemfs/stats says
# shutdown=1 and which point failed; the log says why; unmount writes
# nothing; the next mount recovers the last durable commit: what an fsync
# that returned 0 covered is there, what the failed one covered is not.
. "$(dirname "$0")/lib.sh"

_require_root
_require_fuse
_require_cmd xfs_io cmp

_scratch_setup
_mkfs -s 128m
seq_now() { sed -n 's/.*subsystem=persist .* seq=\([0-9]*\) .*/\1/p' "$MNT/.pmemfs/stats"; }

_log "how many persistence points a mount of this region makes"
_mount
first=$(seq_now)
_unmount

# The first fsync of the next mount exposes 1 MiB of new blocks, more than a commit logs: data is
# flushed first (point first+1), then the log and commit block (first+2). The second exposes one
# small block, logged with its commit: one flush, point first+3, the one made to fail.
fail_at=$((first + 3))
_mount "flush_fail_at=$fail_at"
_assert_eq "$first" "$(seq_now)" "persistence points made by the mount (the test counts on it)"
head -c 1048576 /dev/urandom >"$SCRATCH/b"
cp "$SCRATCH/b" "$MNT/b"
_assert_exit 0 xfs_io -c fsync "$MNT/b"
_assert_eq $((first + 2)) "$(seq_now)" "persistence points of one fsync of 1 MiB of new blocks (ordered data, then log + commit)"
echo doomed >"$MNT/c"
_assert_errno "Input/output error" xfs_io -c fsync "$MNT/c"

_log "shut down: changes and fsync get EIO, clean data reads"
_assert_errno "Input/output error" mkdir "$MNT/d"
_assert_errno "Input/output error" xfs_io -c "pwrite 0 4096" "$MNT/b"
_assert_errno "Input/output error" xfs_io -c fsync "$MNT/b"
_assert_errno "Input/output error" truncate -s 0 "$MNT/b"
cmp -s "$SCRATCH/b" "$MNT/b" || _fail "clean data no longer reads back after the shutdown"
grep -q ' shutdown=1' "$MNT/.pmemfs/stats" || _fail "stats do not say shutdown=1: $(grep subsystem=region "$MNT/.pmemfs/stats")"
grep -q "^subsystem=shutdown failed_point=commit failed_seq=$fail_at\$" "$MNT/.pmemfs/stats" \
  || _fail "stats do not name the failed point: $(grep subsystem=shutdown "$MNT/.pmemfs/stats" || echo none)"
grep -q 'filesystem shut down' "$DAEMON_LOG" || _fail "the daemon log does not say why it shut down"
_unmount
grep -q 'not unmounted cleanly' "$DAEMON_LOG" || _fail "the daemon did not say it left the region for recovery"

_log "the next mount recovers the last durable commit"
_mount
grep -q ' recovered=1' "$MNT/.pmemfs/stats" || _fail "the mount after a shutdown did not recover"
cmp -s "$SCRATCH/b" "$MNT/b" || _fail "data an fsync returned 0 for is not in the recovered region"
[[ -e $MNT/c ]] && _fail "the file whose fsync failed is in the recovered region (its commit block never reached the media)"
_assert_exit 0 mkdir "$MNT/d"
_unmount
_run "$FSCK_PMEMFS" -n "$REGION"
(( LAST_RC == 0 )) || _fail "fsck.pmemfs -n after recovery: $LAST_OUT $LAST_ERR"
_log "done"
