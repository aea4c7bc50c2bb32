#!/usr/bin/env bash
# The FUSE transport (libfuse3 low-level, inode-based) as real tools see it:
#   - the kernel caches entries and attributes (stat of a cached file sends
#     no request), yet hard links show the right link count and ctime
#     through every name right after a change: all names are one node id;
#   - an unlinked open file is an orphan (no .fuse_hidden name), readable
#     until its last close, and its blocks come back then;
#   - lseek SEEK_DATA / SEEK_HOLE on a sparse file (xfs_io seek);
#   - copy_file_range (xfs_io copy_range, and cp) copies in the daemon;
#   - flock and POSIX record locks between processes;
#   - 1 MiB requests reach the daemon (O_DIRECT dd bs=1M);
#   - mount -t fuse.pmemfs through fuse3's mount.fuse3;
#   - dax=never: what a device stores under a pin reaches an open
#     descriptor's page cache when the pin goes (notify_inval_inode);
#   - idle_poll: a busy mount keeps a helper thread spinning on another CPU
#     and one on its own CPU through flushes, an idle one lets both sleep,
#     and noidle_poll starts neither.
. "$(dirname "$0")/lib.sh"

_require_fuse
_require_cmd xfs_io stat cmp dd cp flock python3 mount setfattr chrt

KiB=1024
MiB=$((1024 * KiB))

# stat_line FILE: "nlink ctime(ns) mode size ino"
stat_line() { stat -c '%h %.9Z %a %s %i' "$1"; }
stat_field() { stat -c "$2" "$1"; }
# fuse_stat KEY: a number from the subsystem=fuse line of .pmemfs/stats.
fuse_stat() { sed -n "s/^subsystem=fuse .*\\b$1=\\([0-9]*\\).*/\\1/p" "$MNT/.pmemfs/stats"; }

_scratch_setup
_mkfs -s 256m
_mount dax=always

_log "attributes are cached: 200 stats of one file send (almost) no requests"
echo data >"$MNT/cached"
stat "$MNT/cached" >/dev/null
before=$(fuse_stat requests)
for _ in $(seq 200); do stat "$MNT/cached" >/dev/null; done
after=$(fuse_stat requests)
# Reading the stats file itself costs a handful (lookup, open, read, release).
(( after - before < 40 )) || _fail "200 stats of a cached file made $((after - before)) requests: attribute caching is off"
_assert_eq 1 "$(fuse_stat attr_timeout_s)" "attr_timeout_s in .pmemfs/stats"

_log "daemon time per operation: every operation counted in fuse_ops has its microseconds in fuse_time"
xfs_io -f -c 'pwrite -q 0 64k' -c fsync "$MNT/timed"
cat "$MNT/.pmemfs/stats" >/dev/null   # the read that reports is counted before it is timed: let it have happened once
stats=$(cat "$MNT/.pmemfs/stats")
ops=$(sed -n 's/^subsystem=fuse_ops //p' <<<"$stats" | tr ' ' '\n' | sed 's/=.*//' | sort | tr '\n' ' ')
timed=$(sed -n 's/^subsystem=fuse_time //p' <<<"$stats" | tr ' ' '\n' | sed 's/_us=.*//' | sort | tr '\n' ' ')
_assert_eq "$ops" "$timed" "operations with a daemon time (fuse_time) against those counted (fuse_ops)"
for op in write fsync; do
  us=$(sed -n "s/^subsystem=fuse_time .*\\b${op}_us=\\([0-9]*\\).*/\\1/p" <<<"$stats")
  [[ $us =~ ^[0-9]+$ ]] && ((us > 0)) || _fail "fuse_time has no time for $op ('$us'): $(grep fuse_time <<<"$stats")"
done

_log "hard links: one inode, the same nlink and ctime through every name, right after each change"
mkdir "$MNT/d1" "$MNT/d2"
A=$MNT/d1/a B=$MNT/d2/b C=$MNT/c
echo hello >"$A"
stat "$A" >/dev/null                      # cached now, with nlink 1
ln "$A" "$B"
_assert_eq "$(stat_line "$A")" "$(stat_line "$B")" "stat of both names after ln"
_assert_eq 2 "$(stat_field "$A" %h)" "nlink of $A after ln"
ln "$B" "$C"
for n in "$A" "$B"; do _assert_eq 3 "$(stat_field "$n" %h)" "nlink of $n after the second ln"; done
_assert_eq "$(stat_line "$A")" "$(stat_line "$C")" "stat of the first and third name"
c0=$(stat_field "$A" %.9Z)
sleep 0.05
rm "$C"
for n in "$A" "$B"; do _assert_eq 2 "$(stat_field "$n" %h)" "nlink of $n after rm of a third name"; done
c1=$(stat_field "$A" %.9Z)
[[ $c1 > $c0 ]] || _fail "ctime of $A did not move on after unlinking another name ($c0 then $c1)"
_assert_eq "$c1" "$(stat_field "$B" %.9Z)" "ctime through the other name after rm"
sleep 0.05
chmod 600 "$B"
_assert_eq 600 "$(stat_field "$A" %a)" "mode through $A after chmod of $B"
_assert_eq "$(stat_line "$A")" "$(stat_line "$B")" "stat of both names after chmod"
printf 'more data\n' >>"$B"
_assert_eq 16 "$(stat_field "$A" %s)" "size through $A after appending through $B"
_assert_eq "$(stat_line "$A")" "$(stat_line "$B")" "stat of both names after a write"
mv "$B" "$MNT/d1/renamed"
_assert_eq "$(stat_line "$A")" "$(stat_line "$MNT/d1/renamed")" "stat after renaming one name"
[[ ! -e $B ]] || _fail "$B still exists after mv (stale entry)"
rm "$A"
_assert_eq 1 "$(stat_field "$MNT/d1/renamed" %h)" "nlink of the last name"
cmp -s "$MNT/d1/renamed" <(printf 'hello\nmore data\n') || _fail "content of the last name changed"

_log "a seal fills holes behind the kernel: st_blocks is right at once, by ioctl and by xattr"
for how in ioctl xattr; do
  F=$MNT/sealfill-$how
  truncate -s 1M "$F"
  _assert_eq 0 "$(stat -c %b "$F")" "blocks of the sparse $how file (now cached)"
  if [[ $how == ioctl ]]; then "$PMEMFS_IO" -c seal "$F" >/dev/null || _fail "pmemfs-io seal failed"
  else setfattr -n trusted.pmemfs.sealed -v 1 "$F" || _fail "setfattr trusted.pmemfs.sealed failed"; fi
  _assert_eq 2048 "$(stat -c %b "$F")" "blocks right after sealing by $how"
done

_log "an absent attribute is ENODATA, on files and on the control directory; a present one is read"
F=$MNT/xattrs
echo data >"$F"
_assert_errno "No such attribute" getfattr -n user.absent "$F"
_assert_errno "No such attribute" getfattr -n security.capability "$F"
_assert_errno "No such attribute" getfattr -n user.absent "$MNT/.pmemfs/stats"
setfattr -n user.present -v kept "$F"
_assert_eq kept "$(getfattr --only-values -n user.present "$F")" "a present attribute"
_assert_errno "No such attribute" getfattr -n user.absent "$F"

_log "an access ACL equal to the mode bits is a chmod: stat sees the new mode at once (cp -a sets modes so)"
F=$MNT/aclmode
touch "$F"; chmod 600 "$F"
_assert_eq 600 "$(stat -c %a "$F")" "mode before the ACL (now cached)"
# user::rw- group::r-- other::r-- (xattr form: version 2, then tag, perm, id per entry)
setfattr -n system.posix_acl_access -v 0x02000000010006000000000004000400000000002000040000000000 "$F" ||
  _fail "setfattr system.posix_acl_access (a minimal ACL) failed"
_assert_eq 644 "$(stat -c %a "$F")" "mode right after the ACL (stat asks for the mode only: no ctime to refresh)"

_log "an unlinked open file is an orphan until its last close"
free0=$(stat -f -c %f "$MNT")
head -c $((8 * MiB)) /dev/urandom >"$SCRATCH/orphan.src"
cp "$SCRATCH/orphan.src" "$MNT/orphan"
exec 7<"$MNT/orphan"
rm "$MNT/orphan"
hidden=$(find "$MNT" -name '.fuse_hidden*' | wc -l)
_assert_eq 0 "$hidden" ".fuse_hidden files after unlinking an open file"
cmp -s /dev/fd/7 "$SCRATCH/orphan.src" || _fail "the open, unlinked file does not read back its data"
grep -q . <(stat -L -c %h /dev/fd/7) || _fail "fstat of the unlinked open file failed"
_assert_eq 0 "$(stat -L -c %h /dev/fd/7)" "nlink of the unlinked open file"
exec 7<&-
for _ in $(seq 50); do (( $(stat -f -c %f "$MNT") >= free0 )) && break; sleep 0.1; done
(( $(stat -f -c %f "$MNT") >= free0 )) || _fail "the orphan's blocks did not come back after its last close"

_log "lseek SEEK_DATA / SEEK_HOLE on a sparse file"
S=$MNT/sparse
xfs_io -f -c "pwrite -q 0 4k" -c "pwrite -q 1m 8k" -c "truncate 4m" "$S"
seek() { xfs_io -r -c "seek $1 $2" "$S" 2>&1 | awk '$1 == "DATA" || $1 == "HOLE" { print $1, $2 } /EOF/ { print "EOF" }'; }
_assert_eq "DATA 0" "$(seek -d 0)" "seek -d 0"
_assert_eq "HOLE 4096" "$(seek -h 0)" "seek -h 0"
_assert_eq "DATA 1048576" "$(seek -d 4096)" "seek -d 4096"
_assert_eq "HOLE 1056768" "$(seek -h 1048576)" "seek -h 1m"
_assert_eq "HOLE 4194303" "$(seek -h 4194303)" "seek -h at the last byte (a hole runs to EOF)"
out=$(xfs_io -r -c "seek -d 1056768" "$S" 2>&1)
grep -qE 'EOF|ENXIO|No such device' <<<"$out" || _fail "seek -d past the last data should find nothing: $out"
python3 - "$S" <<'EOF' || _fail "SEEK_DATA/SEEK_HOLE through lseek(2) disagree with the file's layout"
import os, sys, errno
fd = os.open(sys.argv[1], os.O_RDONLY)
assert os.lseek(fd, 0, os.SEEK_HOLE) == 4096
assert os.lseek(fd, 5000, os.SEEK_DATA) == 1 << 20
assert os.lseek(fd, (1 << 20) + 100, os.SEEK_DATA) == (1 << 20) + 100
try:
    os.lseek(fd, 4 << 20, os.SEEK_DATA); sys.exit(1)
except OSError as e:
    assert e.errno == errno.ENXIO
EOF

_log "copy_file_range: xfs_io copy_range and cp"
SRC=$MNT/copy-src DST=$MNT/copy-dst
head -c $((3 * MiB + 123)) /dev/urandom >"$SCRATCH/copy.src"
cp "$SCRATCH/copy.src" "$SRC"
out=$(xfs_io -f -c "copy_range -s 4096 -d 8192 -l 1048576 $SRC" "$DST" 2>&1)
[[ -z $out ]] || _fail "xfs_io copy_range reported: $out"
_assert_eq $((8192 + MiB)) "$(stat -c %s "$DST")" "size after copy_range to offset 8192"
cmp -s -n $MiB -i 4096:8192 "$SRC" "$DST" || _fail "copy_range data differs from the source range"
cmp -s -n 8192 "$DST" /dev/zero || _fail "the bytes before the copied range are not zero"
out=$(xfs_io -f -c "copy_range $SRC" "$MNT/copy-whole" 2>&1)
[[ -z $out ]] || _fail "xfs_io copy_range (whole file) reported: $out"
cmp -s "$SRC" "$MNT/copy-whole" || _fail "whole-file copy_range differs from the source"
cp "$SRC" "$MNT/copy-cp"
cmp -s "$SCRATCH/copy.src" "$MNT/copy-cp" || _fail "cp within the mount differs from the source"

_log "flock and POSIX record locks between processes"
L=$MNT/lockfile
: >"$L"
exec 8<"$L"
flock -x 8
if flock -n -x "$L" -c true 2>/dev/null; then _fail "a second flock -x succeeded while the first is held"; fi
flock -u 8
flock -n -x "$L" -c true || _fail "flock -x failed after the holder unlocked"
exec 8<&-
python3 - "$L" <<'EOF' || _fail "POSIX record locks (fcntl F_SETLK) do not exclude another process"
import fcntl, os, sys
path = sys.argv[1]
fd = os.open(path, os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 100, 0)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    fd2 = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 50)
        os.write(w, b"got")
    except OSError:
        os.write(w, b"refused")
    try:
        fcntl.lockf(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 200)   # outside the held range
        os.write(w, b" free")
    except OSError:
        os.write(w, b" busy")
    os._exit(0)
os.waitpid(pid, 0)
got = os.read(r, 100).decode()
assert got == "refused free", got
EOF

_log "1 MiB requests reach the daemon"
dd if=/dev/zero of="$MNT/big" bs=1M count=8 oflag=direct status=none
dd if="$MNT/big" of=/dev/null bs=1M iflag=direct status=none
_assert_eq $MiB "$(fuse_stat max_write_bytes)" "largest write request"
_assert_eq $MiB "$(fuse_stat max_read_bytes)" "largest read request"

_unmount

_log "mount -t fuse.pmemfs (mount.fuse3) and umount"
_run mount -t fuse.pmemfs "$REGION" "$MNT" -o dax=always
_register_mount "$MNT"
(( LAST_RC == 0 )) || _fail "mount -t fuse.pmemfs failed (exit $LAST_RC): $LAST_ERR"
mountpoint -q "$MNT" || _fail "mount -t fuse.pmemfs returned 0 but $MNT is not a mount point"
grep -q "^$REGION $MNT fuse.pmemfs " /proc/mounts || _fail "/proc/mounts does not show $REGION on $MNT as fuse.pmemfs: $(grep " $MNT " /proc/mounts)"
cmp -s "$SCRATCH/copy.src" "$MNT/copy-cp" || _fail "data written before the remount differs"
umount "$MNT" || _fail "umount $MNT failed"
for _ in $(seq 100); do mountpoint -q "$MNT" || break; sleep 0.1; done
mountpoint -q "$MNT" && _fail "$MNT still mounted after umount"
# The detached daemon marks the region clean on its way out.
for _ in $(seq 100); do "$FSCK_PMEMFS" -n "$REGION" >/dev/null 2>&1 && break; sleep 0.1; done
_assert_exit 0 "$FSCK_PMEMFS" -n "$REGION"

_log "dax=never: a device write under a pin reaches an open descriptor's page cache at unpin (notify_inval_inode)"
_mount dax=never
xfs_io -f -c "pwrite -q -S 0x11 0 64k" "$MNT/dma" >/dev/null
# The descriptor stays open throughout, so no open can drop the cache: only the invalidation can.
python3 - "$MNT/dma" "$REGION" "$MNT" <<'EOF' || _fail "the page cache kept the pre-DMA data after unpin"
import os, re, sys, time
path, region, mnt = sys.argv[1:4]
fd = os.open(path, os.O_RDONLY)
assert os.pread(fd, 4096, 4096) == b'\x11' * 4096          # cached now
with open(os.path.join(mnt, '.pmemfs/ctl'), 'w') as c: c.write('pin /dma 4096 4096\n')
m = re.search(r'id=(\d+) .* phys=0x([0-9a-f]+)', open(os.path.join(mnt, '.pmemfs/busy')).read())
pin, phys = int(m.group(1)), int(m.group(2), 16)
rfd = os.open(region, os.O_WRONLY)                            # the device writes the pinned page
os.pwrite(rfd, b'\x5a' * 4096, phys); os.close(rfd)
with open(os.path.join(mnt, '.pmemfs/ctl'), 'w') as c: c.write(f'unpin {pin}\n')
for _ in range(40):                                           # the notification is asynchronous
    if os.pread(fd, 4096, 4096) == b'\x5a' * 4096: sys.exit(0)
    time.sleep(0.05)
print('still the old page 2 s after unpin', file=sys.stderr); sys.exit(1)
EOF
_unmount

_log "idle_poll: a helper thread spins while the mount is busy and sleeps when it is idle"
# helper_tid PID NAME: the thread id of daemon PID's thread NAME; empty if it has none.
helper_tid() {
  local t
  for t in /proc/"$1"/task/*; do
    [[ $(cat "$t/comm" 2>/dev/null) == "$2" ]] && { basename "$t"; return 0; }
  done
  return 0
}
# helper_state PID NAME: that thread's state letter (R running, S asleep); empty if it has none.
helper_state() {
  local tid
  tid=$(helper_tid "$1" "$2")
  [[ -z $tid ]] || sed 's/^.*) //' "/proc/$1/task/$tid/stat" | cut -c1
}
if (( $(nproc) >= 2 )); then
  _mount dax=never
  pid=${_MOUNT_PID[$MNT]}
  dd if=/dev/zero of="$MNT/poll" bs=4k count=200 oflag=dsync status=none
  _assert_eq 1 "$(fuse_stat idle_poll)" "idle_poll on a default mount"
  (( $(fuse_stat idle_poll_spells) > 0 )) || _fail "200 synchronous writes gave the helper no busy spell"
  (( $(fuse_stat idle_poll_flushes) > 0 )) || _fail "200 synchronous writes gave the flush helper no flush"
  for name in pmemfs-idlepoll pmemfs-flush; do
    tid=$(helper_tid "$pid" $name)
    [[ -n $tid ]] || _fail "the daemon has no $name thread"
    # Idle priority: any other task on its CPU, the woken client first, preempts it at once.
    [[ $(chrt -p "$tid") == *SCHED_IDLE* ]] || _fail "$name does not run at SCHED_IDLE: $(chrt -p "$tid" | head -1)"
  done
  sleep 0.2          # idle: past the daemon's poll window (50 µs) and the helper's bound (5 ms)
  for name in pmemfs-idlepoll pmemfs-flush; do
    st=$(helper_state "$pid" $name)
    [[ $st == S ]] || _fail "$name of an idle mount is in state '${st:-none}', not asleep"
  done
  _unmount
  _mount dax=never,noidle_poll
  pid=${_MOUNT_PID[$MNT]}
  dd if=/dev/zero of="$MNT/poll" bs=4k count=200 oflag=dsync status=none
  _assert_eq 0 "$(fuse_stat idle_poll)" "idle_poll with noidle_poll"
  _assert_eq 0 "$(fuse_stat idle_poll_spells)" "busy spells with noidle_poll"
  _assert_eq 0 "$(fuse_stat idle_poll_flushes)" "flushes spun through with noidle_poll"
  for name in pmemfs-idlepoll pmemfs-flush; do
    [[ -z $(helper_state "$pid" $name) ]] || _fail "noidle_poll: the daemon started $name anyway"
  done
  _unmount
else
  _log "one CPU: idle_poll has no other CPU to keep awake (not checked)"
fi

_log "done"
