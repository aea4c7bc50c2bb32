#!/usr/bin/env bash
# Refusals: what must not be overwritten or mounted is refused with a
# non-zero exit and a clear stderr line, and nothing changes.
#
#   mkfs.pmemfs: a foreign non-empty file, or a pmemfs region, without -f
#   pmemfs:      a foreign file, a truncated region, a corrupted superblock,
#                a missing mount point, a busy mount point, a second mount
#                of a mounted (locked) region, a missing /dev/fuse
#   fsck.pmemfs: repairing (no -n) a mounted region: exit 8
#
# Exact wording is the CLIs' business; these patterns (case-insensitive
# extended regexes) hold keywords any sane message has.
. "$(dirname "$0")/lib.sh"

RE_MKFS_FORCE='(^|[^[:alnum:]-])-f([^[:alnum:]]|$)|--force'
RE_NOT_REGION='pmemfs region|fsck\.pmemfs'
RE_TRUNCATED='truncat|too short|too small|fsck\.pmemfs'
RE_CORRUPT='corrupt|checksum|fsck\.pmemfs'
RE_NO_MNTPOINT='mount ?point.*(does not exist|no such|missing)'
RE_BUSY_MNTPOINT='busy|already mounted|in use'
RE_LOCKED='locked|in use|already mounted'
RE_FSCK_MOUNTED='locked|in use|mounted'
RE_NO_DEV_FUSE='/dev/fuse'
FSCK_OPERATIONAL=8
# A refusal is one line, perhaps with a hint; more means noise or a trace.
MAX_STDERR_LINES=3
# A daemon that wrongly mounts in -f stays up: stop it after this long.
REFUSE_TIMEOUT=20

_require_fuse
_require_cmd sha256sum dd od truncate
_scratch_setup

# _assert_clear_refusal REGEX CMD...: _assert_refused plus the line count.
_assert_clear_refusal() {
  _assert_refused "$@"
  local n
  n=$(grep -c . <<<"$LAST_ERR")
  (( n <= MAX_STDERR_LINES )) || _fail "$2 printed $n stderr lines, expected one clear line: $LAST_ERR"
}

# _assert_mount_refused REGEX REGION MNT: `pmemfs REGION MNT -f` refuses.
_assert_mount_refused() {
  local re=$1 region=$2 mnt=$3
  _register_mount "$mnt"
  TIMEOUT_HINT="it mounted instead of refusing" CMD_TIMEOUT=$REFUSE_TIMEOUT \
    _assert_clear_refusal "$re" "$PMEMFS" "$region" "$mnt" -f
}

# _flip_bytes FILE OFFSET COUNT: invert COUNT bytes in place.
_flip_bytes() {
  local file=$1 off=$2 count=$3 b out=''
  for b in $(dd if="$file" bs=1 skip="$off" count="$count" status=none | od -An -tu1); do
    out+=$(printf '\\%03o' $((b ^ 0xff)))
  done
  # shellcheck disable=SC2059  # out is a string of octal escapes
  printf "$out" | dd of="$file" bs=1 seek="$off" count="$count" conv=notrunc status=none
}

sum() { sha256sum "$1" | cut -d' ' -f1; }

_log "mkfs.pmemfs: a foreign non-empty file without -f"
FOREIGN=$SCRATCH/foreign.img
{ echo "precious data, not a pmemfs region"; head -c 1048576 /dev/urandom; } >"$FOREIGN"
before=$(sum "$FOREIGN")
_assert_clear_refusal "$RE_MKFS_FORCE" "$MKFS_PMEMFS" -s 64m "$FOREIGN"
_assert_eq "$before" "$(sum "$FOREIGN")" "checksum of the refused foreign file"

_log "mkfs.pmemfs: a pmemfs region without -f"
_mkfs -s 64m
before=$(sum "$REGION")
_assert_clear_refusal "$RE_MKFS_FORCE" "$MKFS_PMEMFS" -s 64m "$REGION"
_assert_eq "$before" "$(sum "$REGION")" "checksum of the refused region"
_log "mkfs.pmemfs -f does overwrite it"
_assert_exit 0 "$MKFS_PMEMFS" -f -s 64m "$REGION"

_log "pmemfs: a foreign file"
_assert_mount_refused "$RE_NOT_REGION" "$FOREIGN" "$MNT"

_log "pmemfs: a truncated region"
TRUNC=$SCRATCH/truncated.img
_assert_exit 0 "$MKFS_PMEMFS" -s 64m "$TRUNC"
truncate -s 100k "$TRUNC"
_assert_mount_refused "$RE_TRUNCATED" "$TRUNC" "$MNT"

_log "pmemfs: a corrupted superblock (bytes 16..19 inverted)"
CORRUPT=$SCRATCH/corrupt.img
_assert_exit 0 "$MKFS_PMEMFS" -s 64m "$CORRUPT"
before=$(sum "$CORRUPT")
_flip_bytes "$CORRUPT" 16 4
[[ $(sum "$CORRUPT") != "$before" ]] || _fail "flipping superblock bytes did not change $CORRUPT"
_assert_mount_refused "$RE_CORRUPT" "$CORRUPT" "$MNT"

_log "pmemfs: a missing mount point"
_assert_mount_refused "$RE_NO_MNTPOINT" "$REGION" "$SCRATCH/no-such-dir"

_log "pmemfs: no /dev/fuse (private mount namespace with a tmpfs /dev)"
# unshare -m gives this one command its own mount namespace (private
# propagation), so the tmpfs over /dev is invisible to everything else.
# The tmpfs keeps null/zero/random/urandom so only /dev/fuse is missing.
NODEV_SH='mount -t tmpfs -o mode=0755,size=64k pmemfs-test-nodev /dev || exit 99
mknod -m 666 /dev/null c 1 3 && mknod -m 666 /dev/zero c 1 5 &&
  mknod -m 666 /dev/random c 1 8 && mknod -m 666 /dev/urandom c 1 9 || exit 99
[ ! -e /dev/fuse ] || exit 99
[ "$#" -gt 0 ] || exit 0
exec "$@"'
if command -v unshare >/dev/null && unshare -m --propagation private sh -c "$NODEV_SH" sh >/dev/null 2>&1; then
  CMD_TIMEOUT=$REFUSE_TIMEOUT _assert_clear_refusal "$RE_NO_DEV_FUSE" \
    unshare -m --propagation private sh -c "$NODEV_SH" sh "$PMEMFS" "$REGION" "$MNT" -f
  (( LAST_RC != 99 )) || _fail "the private /dev could not be set up for the daemon"
else
  _log "skipped this case: cannot make a private tmpfs /dev here (unshare -m or mknod not permitted)"
fi

_log "pmemfs: no libfuse (an empty file bound over libfuse3.so.3 in a private mount namespace)"
LIBFUSE=$(readlink -f "$(ldconfig -p | sed -n 's/.*libfuse3\.so\.3 (libc6,x86-64) => //p' | head -n1)" 2>/dev/null || true)
NOLIB_SH='mount --bind /dev/null "$0" || exit 99
exec "$@"'
if [[ -f $LIBFUSE ]] && unshare -m --propagation private sh -c "$NOLIB_SH" "$LIBFUSE" true >/dev/null 2>&1; then
  CMD_TIMEOUT=$REFUSE_TIMEOUT _assert_clear_refusal 'libfuse' \
    unshare -m --propagation private sh -c "$NOLIB_SH" "$LIBFUSE" "$PMEMFS" "$REGION" "$MNT" -f
  (( LAST_RC != 99 )) || _fail "libfuse could not be hidden from the daemon"
else
  _log "skipped this case: cannot hide libfuse3.so.3 here (not found, or no private mount namespace)"
fi

_log "pmemfs: a busy mount point"
_mount dax=always
OTHER=$SCRATCH/other.img
_assert_exit 0 "$MKFS_PMEMFS" -s 64m "$OTHER"
_assert_mount_refused "$RE_BUSY_MNTPOINT" "$OTHER" "$MNT"

_log "pmemfs: a second mount of the mounted region"
MNT2=$SCRATCH/mnt2
mkdir "$MNT2"
_assert_mount_refused "$RE_LOCKED" "$REGION" "$MNT2"
! mountpoint -q "$MNT2" || _fail "$MNT2 got mounted by the refused second daemon"

_log "fsck.pmemfs: repair (no -n) of the mounted region"
_assert_clear_refusal "$RE_FSCK_MOUNTED" "$FSCK_PMEMFS" "$REGION"
_assert_eq "$FSCK_OPERATIONAL" "$LAST_RC" "fsck.pmemfs exit status on a mounted region"

_log "the first mount still works and the region is clean"
echo hello >"$MNT/still-here"
_assert_eq hello "$(cat "$MNT/still-here")" "content written after the refusals"
_unmount
_assert_exit 0 "$FSCK_PMEMFS" -n "$REGION"
