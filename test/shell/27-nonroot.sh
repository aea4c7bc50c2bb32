#!/usr/bin/env bash
# A non-root user mounts a region they own and uses it: libfuse mounts
# through the setuid fusermount3 (which opens /dev/fuse as the user, so the
# node must be 0666, as npm run setup and Debian's udev make it), the user
# writes, reads, seals nothing (CAP_LINUX_IMMUTABLE is root's), unmounts
# with fusermount3 -u, and the region is clean after.
#
# The user is `nobody`; the test runs as root only to become it (setpriv).
. "$(dirname "$0")/lib.sh"

_require_root
_require_fuse
_require_cmd setpriv fusermount3 cmp stat

USER_UID=$(id -u nobody 2>/dev/null) || _fail "there is no user 'nobody' to mount as"
USER_GID=$(id -g nobody)
as_user() { setpriv --reuid="$USER_UID" --regid="$USER_GID" --clear-groups --reset-env -- "$@"; }

# Absolute paths: the user's environment is reset (setpriv --reset-env).
PMEMFS_ABS=$(command -v "$PMEMFS") MKFS_ABS=$(command -v "$MKFS_PMEMFS") FSCK_ABS=$(command -v "$FSCK_PMEMFS")
# fusermount3 opens /dev/fuse with the user's filesystem uid (a 0600 node fails with EACCES).
[[ $(stat -c %a /dev/fuse) == 666 ]] || _fail "/dev/fuse is mode $(stat -c %a /dev/fuse): non-root mounts need 0666 (npm run setup sets it, as Debian's udev rule does)"
_scratch_setup
# The user must reach the project (node and bin/) and own the region and the mount point.
as_user test -x "$PMEMFS_ABS" || _fail "user nobody cannot run $PMEMFS_ABS: every directory above the checkout must be searchable (chmod o+x)"
chmod 0755 "$SCRATCH"
HOME_DIR=$SCRATCH/user
mkdir "$HOME_DIR"
chown "$USER_UID:$USER_GID" "$HOME_DIR" "$MNT"
REGION=$HOME_DIR/region.img
_run as_user "$MKFS_ABS" -s 128m "$REGION"
(( LAST_RC == 0 )) || _fail "mkfs.pmemfs as nobody failed: $LAST_ERR"
_assert_eq "$USER_UID" "$(stat -c %u "$REGION")" "owner of the region made by the user"

_log "mount as nobody (through fusermount3)"
LOG=$HOME_DIR/daemon.log
as_user "$PMEMFS_ABS" "$REGION" "$MNT" -f -o log_file="$LOG" >>"$DAEMON_LOG" 2>&1 </dev/null &
pid=$!
_PIDS+=("$pid")
_MOUNT_PID[$MNT]=$pid
for _ in $(seq $((MOUNT_TIMEOUT * 10))); do _is_mounted "$MNT" && break; _pid_alive "$pid" || break; sleep 0.1; done
_is_mounted "$MNT" || { cat "$LOG" >>"$DAEMON_LOG" 2>/dev/null; _fail "nobody could not mount $REGION (daemon output in the log)"; }
line=$(grep " $MNT fuse.pmemfs " /proc/mounts)
grep -q "user_id=$USER_UID" <<<"$line" || _fail "the mount is not the user's: $line"
_log "mounted by uid $USER_UID: $line"

_log "the user writes and reads; root is kept out (no allow_other)"
head -c 300000 /dev/urandom >"$HOME_DIR/data"
chown "$USER_UID" "$HOME_DIR/data"
as_user cp "$HOME_DIR/data" "$MNT/file" || _fail "cp into the user's mount failed"
as_user mkdir "$MNT/dir" || _fail "mkdir in the user's mount failed"
as_user cmp -s "$HOME_DIR/data" "$MNT/file" || _fail "the file reads back differently"
_assert_eq "$USER_UID" "$(as_user stat -c %u "$MNT/file")" "owner of a file the user created"
if ls "$MNT" >/dev/null 2>&1; then _fail "root could read a non-root mount made without allow_other"; fi
out=$(as_user sh -c "echo powerfail > '$MNT/.pmemfs/ctl'" 2>&1) && _fail "nobody could write the root-only ctl file"
grep -qiE 'permission|not permitted' <<<"$out" || _fail "ctl refusal for nobody is not EACCES/EPERM: $out"

_log "fusermount3 -u by the user"
as_user fusermount3 -u "$MNT" || _fail "fusermount3 -u by nobody failed"
for _ in $(seq $((EXIT_TIMEOUT * 10))); do _pid_alive "$pid" || break; sleep 0.1; done
_pid_alive "$pid" && _fail "the daemon did not exit after fusermount3 -u"
rc=0; _reap "$pid" || rc=$?
_assert_eq 0 "$rc" "daemon exit status after the user's unmount"
unset '_MOUNT_PID[$MNT]'
_run as_user "$FSCK_ABS" -n "$REGION"
(( LAST_RC == 0 )) || _fail "fsck.pmemfs -n after the user's session: exit $LAST_RC: $LAST_OUT $LAST_ERR"
_log "done"
