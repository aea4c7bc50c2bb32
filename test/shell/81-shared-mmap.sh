#!/usr/bin/env bash
# MAP_SHARED mappings of regular files, on dax=always (the default: files
# opened FOPEN_DIRECT_IO, mappable shared only because native/src/init.c
# negotiates FUSE_DIRECT_IO_ALLOW_MMAP) and on dax=never (page cache).
# On each: mmap(MAP_SHARED) works; a store through the mapping plus
# msync(MS_SYNC) is what read(2) in another process sees; a pwrite(2) by
# another process is seen through the existing mapping. On the default
# mount: pmempool creates an obj pool and SQLite keeps a WAL database.
# A kernel without FUSE_DIRECT_IO_ALLOW_MMAP (before 6.6) must refuse the
# dax=always mapping with ENODEV and the daemon must say so once at mount.
. "$(dirname "$0")/lib.sh"

_require_fuse
_require_root
_require_cmd python3 cmp xfs_io pmempool sqlite3

_scratch_setup
_mkfs -s 256m

# mmap-check.py FILE EXPECT: FILE (14 KiB, 4 pages) is filled through write(2)
# and mapped MAP_SHARED; every page is faulted in, then the two directions are
# checked, each at a range that crosses a page boundary. EXPECT (outside the
# mount) is kept equal to what FILE should hold, for cmp(1).
CHECK=$SCRATCH/mmap-check.py
cat >"$CHECK" <<'EOF'
import mmap, os, subprocess, sys

path, expect_path = sys.argv[1], sys.argv[2]
size = 14336
data = bytearray((i * 7 + 3) % 251 for i in range(size))

def expect_file():
    with open(expect_path, 'wb') as f:
        f.write(data)

fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, data)
try:
    m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
except OSError as e:
    print(f'mmap MAP_SHARED: {e.strerror}', file=sys.stderr)
    sys.exit(2)
print('ok: mmap MAP_SHARED')
if m[:] != data:
    sys.exit('the new mapping does not show what write(2) wrote')
for off in range(0, size, 4096):
    m[off] = m[off]            # every page faulted in (and dirtied)
m.flush()

# (1) store through the mapping, msync(MS_SYNC), read(2) by another process
store = bytes(b'S' * 300)
m[4000:4300] = store
data[4000:4300] = store
m.flush()
expect_file()
r = subprocess.run(['cmp', path, expect_path], capture_output=True, text=True)
if r.returncode != 0:
    sys.exit(f'read(2) by another process after a store and msync: {r.stdout.strip() or r.stderr.strip()}')
print('ok: store + msync(MS_SYNC) seen by read(2) in another process')

# (2) pwrite(2) by another process, seen through the existing mapping
subprocess.run(['xfs_io', '-c', 'pwrite -q -S 0x5a 8000 400', path], check=True)
data[8000:8400] = b'\x5a' * 400
got = m[8000:8400]
if got != b'\x5a' * 400:
    bad = sum(1 for b in got if b != 0x5a)
    sys.exit(f'pwrite(2) by another process not seen through the mapping: {bad} of 400 bytes stale')
if m[:] != data:
    sys.exit('the mapping differs from the expected contents outside the pwrite range')
print('ok: pwrite(2) by another process seen through the mapping')

m.close()
os.close(fd)
expect_file()
r = subprocess.run(['cmp', path, expect_path], capture_output=True, text=True)
if r.returncode != 0:
    sys.exit(f'final contents: {r.stdout.strip() or r.stderr.strip()}')
print('ok: final contents')
EOF

# _stat_field NAME: NAME=value from the subsystem=fuse line of .pmemfs/stats.
_stat_field() {
  grep '^subsystem=fuse ' "$MNT/.pmemfs/stats" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

MARK=$(_log_mark)
_mount "dax=always"
ALLOW=$(_stat_field direct_io_allow_mmap)
PROTO=$(_stat_field kernel_proto_minor)
[[ -n $ALLOW && -n $PROTO ]] || _fail "no direct_io_allow_mmap/kernel_proto_minor in .pmemfs/stats"
_log "dax=always: kernel FUSE protocol 7.$PROTO, direct_io_allow_mmap=$ALLOW"
if (( PROTO < 39 )); then
  # The kernel does not know the capability: mapping shared stays refused, and said so.
  _assert_eq 0 "$ALLOW" "direct_io_allow_mmap on protocol 7.$PROTO"
  _log_since "$MARK" | grep -q 'cannot be mapped MAP_SHARED on this kernel' \
    || _fail "no warning at mount that dax=always files cannot be mapped shared on this kernel"
  _assert_errno "No such device" python3 "$CHECK" "$MNT/f" "$SCRATCH/expect"
  _unmount
  _skip "kernel FUSE protocol 7.$PROTO has no FUSE_DIRECT_IO_ALLOW_MMAP (Linux 6.6+): dax=always refuses MAP_SHARED, as reported at mount"
fi
_assert_eq 1 "$ALLOW" "direct_io_allow_mmap negotiated on protocol 7.$PROTO"
if _log_since "$MARK" | grep -q 'cannot be mapped MAP_SHARED'; then
  _fail "the daemon warned about MAP_SHARED although the capability was negotiated"
fi

_assert_exit 0 python3 "$CHECK" "$MNT/f" "$SCRATCH/expect"
_log "dax=always: $(tr '\n' ';' <<<"$LAST_OUT")"

_log "pmempool: an obj pool on the default mount"
_assert_exit 0 pmempool create obj --size 32M "$MNT/pool"
_assert_exit 0 pmempool check "$MNT/pool"

_log "sqlite3: a WAL database on the default mount"
DB=$MNT/wal.db
_assert_exit 0 sqlite3 "$DB" 'PRAGMA journal_mode=WAL;' 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);'
_assert_eq wal "$LAST_OUT" "journal_mode"
SQL=$SCRATCH/inserts.sql      # 10 transactions of 10 rows
for ((t = 0; t < 10; t++)); do
  echo 'BEGIN;'
  for ((i = 0; i < 10; i++)); do echo "INSERT INTO t(v) VALUES ('row $t.$i');"; done
  echo 'COMMIT;'
done >"$SQL"
_assert_exit 0 sqlite3 "$DB" ".read $SQL"
_assert_exit 0 sqlite3 "$DB" 'PRAGMA journal_mode;' 'PRAGMA integrity_check;' 'SELECT count(*) FROM t;'
_assert_eq $'wal\nok\n100' "$LAST_OUT" "journal_mode, integrity_check and row count after reopening"
_unmount

_mount "dax=never"
_assert_exit 0 python3 "$CHECK" "$MNT/f" "$SCRATCH/expect"
_log "dax=never: $(tr '\n' ';' <<<"$LAST_OUT")"
_unmount
_assert_exit 0 fsck.pmemfs -n "$REGION"
