#!/usr/bin/env bash
# libpmemfs (C) and libpmemfs-preload.so, built here from native/libpmemfs
# into the scratch directory (so the sources of this checkout are tested,
# installed or not; `pkg-config pmemfs`, installed by npm run setup, is
# checked to build the example too).
#  - examples/map-direct.c on dax=always: truncate refused (Text file busy)
#    while its "device" stores through the direct mapping, the stores read
#    back through the mount, the truncate allowed after pmemfs_unmap_direct.
#  - the preload, with mmap-probe.c (plain mmap(2) with 0x80000): EACCES
#    without PROT_WRITE or through an O_RDONLY fd, EINVAL with MAP_PRIVATE;
#    a mapping holds a lease (sealed=lease, .pmemfs/leases, truncate
#    refused) until its last page is unmapped (partial munmap, a second
#    mapping of the file); a lease taken on a thread that exits stays; the
#    stores read back through the mount; process exit ends the lease; a
#    plain MAP_SHARED mapping takes none; a power cut right after mapping
#    (nothing fsync'd before) keeps files, sizes and stores; dax=never
#    answers EOPNOTSUPP.
#  - PMDK under the preload: pmempool create (check: read-only MAP_SYNC is
#    refused EACCES, unless PMEMFS_PRELOAD_RDONLY=passthrough); libpmem's pmem_map_file
#    reports is_pmem=1 (0 without the preload); a libpmemobj program
#    (pmdk-counter.c) holds a lease while it runs (truncate refused,
#    allowed after it exits), makes no msync (it flushes as on pmem; with
#    strace), and survives power cuts of the control file with every
#    acknowledged transaction.
. "$(dirname "$0")/lib.sh"

_require_fuse
_require_root
_require_cmd cc make pkg-config getfattr truncate xfs_io pmempool cmp
pkg-config --exists libpmemobj libpmem || _skip "libpmemobj-dev is not installed (npm run setup installs it)"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
_scratch_setup
_mkfs -s 256m

# --- build: the library and preload, the example, the test programs --------
LIB=$SCRATCH/libpmemfs
_assert_exit 0 make -s -C "$ROOT/native/libpmemfs" BUILD="$LIB" all
PRELOAD=$LIB/libpmemfs-preload.so
EXAMPLE=$SCRATCH/map-direct
PROBE=$SCRATCH/mmap-probe
COUNTER=$SCRATCH/pmdk-counter
ISPMEM=$SCRATCH/is-pmem
CFLAGS=(-O2 -Wall -Wextra -pthread)
_assert_exit 0 cc "${CFLAGS[@]}" -o "$EXAMPLE" "$ROOT/examples/map-direct.c" \
  -I"$ROOT/native/libpmemfs" -I"$ROOT/native/include" -L"$LIB" -lpmemfs -Wl,-rpath,"$LIB"
[[ -z $LAST_ERR ]] || _fail "examples/map-direct.c built with warnings: $LAST_ERR"
if pkg-config --exists pmemfs; then
  read -ra PC <<<"$(pkg-config --cflags --libs pmemfs)"
  _assert_exit 0 cc "${CFLAGS[@]}" -o "$SCRATCH/map-direct-installed" "$ROOT/examples/map-direct.c" "${PC[@]}"
else
  _log "pkg-config finds no pmemfs (npm run setup installs it): the installed build is not checked"
fi
_assert_exit 0 cc "${CFLAGS[@]}" -I "$ROOT/native/include" -o "$PROBE" "$(dirname "$0")/mmap-probe.c"
read -ra PMEMOBJ <<<"$(pkg-config --cflags --libs libpmemobj libpmem)"
_assert_exit 0 cc -O2 -o "$COUNTER" "$(dirname "$0")/pmdk-counter.c" "${PMEMOBJ[@]}"
cat >"$SCRATCH/is-pmem.c" <<'EOF'
#include <libpmem.h>
#include <stdio.h>
int main(int argc, char **argv)
{
	size_t len;
	int is_pmem;
	void *p = argc == 2 ? pmem_map_file(argv[1], 0, 0, 0, &len, &is_pmem) : NULL;
	if (!p) { fprintf(stderr, "is-pmem: %s\n", pmem_errormsg()); return 1; }
	printf("is_pmem=%d\n", is_pmem);
	return pmem_unmap(p, len) != 0;
}
EOF
_assert_exit 0 cc -O2 -o "$ISPMEM" "$SCRATCH/is-pmem.c" "${PMEMOBJ[@]}"

state() { getfattr --absolute-names --only-values -n user.pmemfs.state "$1"; }
sealed() { state "$1" | sed -n 's/.*sealed=\([a-z]*\).*/\1/p'; }
leases_of() { grep -c " path=$1 " "$MNT/.pmemfs/leases" || true; }
# wait_unleased PATH: its lease goes within 3 s (a holder's exit is noticed within 1 s).
wait_unleased() {
  local t0
  t0=$(_now_ms)
  while [[ $(leases_of "$1") != 0 ]]; do
    (( $(_now_ms) - t0 < 3000 )) || _fail "$1 is still leased 3 s later: $(cat "$MNT/.pmemfs/leases")"
    sleep 0.05
  done
  _log "ok: $1 unleased after $(( $(_now_ms) - t0 )) ms"
}
# cut SEED PID: a power cut while process PID maps the mount directly: PID stops at once
# (stores through its mappings would otherwise go on reaching the region file), then
# `powerfail [SEED]` (SEED '-': every unflushed page lost); PID is killed, the mount remade.
cut() {
  local pid=${_MOUNT_PID[$MNT]} i
  kill -STOP "$2"
  if [[ $1 == - ]]; then echo powerfail >"$MNT/.pmemfs/ctl"; else echo "powerfail $1" >"$MNT/.pmemfs/ctl"; fi
  for ((i = 0; i < 100; i++)); do _pid_alive "$pid" || break; sleep 0.05; done
  _reap "$pid" || _fail "pmemfs exited non-zero after powerfail"
  for ((i = 0; i < 40; i++)); do mountpoint -q "$MNT" || break; sleep 0.05; done
  mountpoint -q "$MNT" && _fusermount_u "$MNT" -z
  _MOUNT_PID[$MNT]=''
  kill -KILL "$2"
  _reap "$2" || true
  _mount "dax=always"
}
# same_bytes FILE BYTE LEN: the first LEN bytes of FILE (read through the mount) are all BYTE.
same_bytes() {
  cmp -s <(head -c "$3" "$1") <(head -c "$3" /dev/zero | tr '\0' "\\$(printf %03o "$2")") \
    || _fail "$1: the first $3 bytes are not all $2: $(od -An -tx1 -N16 "$1")"
}

_mount "dax=always"
grep -q ' direct_io_allow_mmap=1' "$MNT/.pmemfs/stats" || _skip "this kernel cannot map dax=always files shared (no FUSE_DIRECT_IO_ALLOW_MMAP)"

# --- the C example -----------------------------------------------------------
_assert_exit 0 "$EXAMPLE" "$MNT/buf" 1
_log "$(tr '\n' ';' <<<"$LAST_OUT")"
grep -q '^state while mapped: sealed=lease ' <<<"$LAST_OUT" || _fail "no lease while mapped: $LAST_OUT"
grep -q '^truncate while mapped: Text file busy$' <<<"$LAST_OUT" || _fail "truncate was not refused while mapped: $LAST_OUT"
grep -q '^truncate after unmap: succeeded$' <<<"$LAST_OUT" || _fail "truncate after unmap: $LAST_OUT"
grep -q '^OK:' <<<"$LAST_OUT" || _fail "example did not report OK: $LAST_OUT"
_assert_eq 0 "$(stat -c %s "$MNT/buf")" "size after the truncate that followed unmap"
_assert_eq "" "$(cat "$MNT/.pmemfs/leases")" "leases after the example"

# --- the preload, driven by mmap-probe ---------------------------------------
coproc PROBE_IO { LD_PRELOAD=$PRELOAD exec "$PROBE" 2>"$SCRATCH/probe.err"; }
_PIDS+=("$PROBE_IO_PID")
probe_pid=$PROBE_IO_PID
# probe CMD: send CMD, REPLY is its answer.
probe() {
  printf '%s\n' "$1" >&"${PROBE_IO[1]}"
  IFS= read -r -t 20 REPLY <&"${PROBE_IO[0]}" || _fail "mmap-probe gave no answer to '$1': $(cat "$SCRATCH/probe.err")"
}
# want CMD WANT: the answer to CMD is WANT (a prefix match with a trailing *).
want() {
  probe "$1"
  # shellcheck disable=SC2053  # WANT may be a glob
  [[ $REPLY == $2 ]] || _fail "mmap-probe '$1': expected '$2', got '$REPLY'"
  _log "ok: $1 → $REPLY"
}

A=$MNT/a
xfs_io -f -c "pwrite -q -S 0x11 0 16k" "$A"
probe "open $A rw"; fd=${REPLY#fd }
probe "open $A ro"; rofd=${REPLY#fd }
want "map $fd 0 16384 r sv" "err EACCES"
want "map $fd 0 16384 rw private" "err EINVAL"
want "map $rofd 0 16384 rw sv" "err EACCES"
_assert_eq "0 none" "$(leases_of /a) $(sealed "$A")" "leases and seal after the refused mappings"
want "plain $fd 16384" "ok 0"
_assert_eq "0 none" "$(leases_of /a) $(sealed "$A")" "leases and seal under a plain MAP_SHARED mapping"

want "map $fd 0 16384 rw sv" "ok 1"
_assert_eq "1 lease" "$(leases_of /a) $(sealed "$A")" "leases and seal under the direct mapping"
want "fill 1 0x5a" "ok"
same_bytes "$A" 0x5a 16384
_assert_errno "Text file busy" truncate -s 0 "$A"
_log "a second direct mapping of the file, then a partial munmap: the lease stays until the last page goes"
want "map $fd 8192 4096 rw sv" "ok 2"
want "unmap 1 1 1" "ok"
_assert_errno "Text file busy" truncate -s 0 "$A"
want "unmap 1 0 4" "ok"
_assert_eq 1 "$(leases_of /a)" "leases with the second mapping left"
_assert_errno "Text file busy" truncate -s 0 "$A"
want "unmap 2 0 1" "ok"
_assert_eq "0 none" "$(leases_of /a) $(sealed "$A")" "leases and seal after the last munmap"
same_bytes "$A" 0x5a 16384
_assert_exit 0 truncate -s 0 "$A"

_log "a mapping made on a thread that exits keeps its lease; process exit ends it"
B=$MNT/b
xfs_io -f -c "truncate 10000" "$B"       # sparse, not a page multiple
probe "open $B rw"; fd=${REPLY#fd }
want "tmap $fd 0 16384" "ok 3"          # past EOF: the last page is inaccessible
sleep 1.5                                 # > the daemon's holder probe (250 ms)
_assert_eq "1 lease" "$(leases_of /b) $(sealed "$B")" "leases and seal 1.5 s after the mapping thread exited"
want "fill 3 0xa5 10000" "ok"
_assert_errno "Text file busy" truncate -s 0 "$B"
_log "a plain lease (the ioctl) taken on a thread that exits belongs to the process"
T=$MNT/t
xfs_io -f -c "pwrite 0 8192" "$T" >/dev/null
probe "open $T rw"; tfd=${REPLY#fd }
want "tlease $tfd" "ok"
sleep 1.5                                 # > the daemon's holder probe (250 ms)
_assert_eq "1 lease" "$(leases_of /t) $(sealed "$T")" "a lease 1.5 s after the thread that took it exited"
_assert_errno "Text file busy" truncate -s 0 "$T"
printf 'exit\n' >&"${PROBE_IO[1]}"
_reap "$probe_pid" || _fail "mmap-probe exited non-zero: $(cat "$SCRATCH/probe.err")"
wait_unleased /b
wait_unleased /t
_assert_exit 0 truncate -s 0 "$T"
same_bytes "$B" 0xa5 10000
_assert_eq 10000 "$(stat -c %s "$B")" "size of b"
_assert_exit 0 truncate -s 0 "$B"
[[ -s $SCRATCH/probe.err ]] && _fail "mmap-probe wrote to stderr: $(cat "$SCRATCH/probe.err")"

_log "a power cut right after mapping: blocks and size were made durable before mmap returned, the stores are kept"
for seed in - 7; do
  xfs_io -f -c "pwrite -q -S 0x11 0 64k" "$MNT/c"     # neither is fsync'd
  xfs_io -f -c "truncate 64k" "$MNT/d"                # sparse: the lease fills it
  coproc PROBE_IO { LD_PRELOAD=$PRELOAD exec "$PROBE" 2>"$SCRATCH/probe.err"; }
  _PIDS+=("$PROBE_IO_PID")
  probe_pid=$PROBE_IO_PID
  probe "open $MNT/c rw"; fc=${REPLY#fd }
  probe "open $MNT/d rw"; fd=${REPLY#fd }
  want "map $fc 0 65536 rw sv" "ok 0"
  want "map $fd 0 65536 rw sv" "ok 1"
  want "fill 0 0x5a" "ok"
  want "fill 1 0x6b" "ok"
  cut "$seed" "$probe_pid"
  _assert_eq "65536 65536" "$(stat -c %s "$MNT/c" "$MNT/d" | tr '\n' ' ' | sed 's/ $//')" "sizes after the cut (seed $seed)"
  same_bytes "$MNT/c" 0x5a 65536
  same_bytes "$MNT/d" 0x6b 65536
  _log "ok: seed $seed: both files hold what was stored through the mappings"
  rm -f "$MNT/c" "$MNT/d"
done

# --- PMDK under the preload --------------------------------------------------
_log "pmempool create obj under the preload"
POOL=$MNT/pool
_assert_exit 0 env LD_PRELOAD="$PRELOAD" PMEMFS_PRELOAD_DEBUG=1 pmempool create obj --size 32M "$POOL"
grep -q 'mapped direct at' <<<"$LAST_ERR" || _fail "pmempool did not map the pool direct: $LAST_ERR"
_log "$(grep -c 'mapped direct at' <<<"$LAST_ERR") direct mappings by pmempool"
wait_unleased /pool
_assert_exit 0 pmempool check "$POOL"
# pmempool check maps the pool read-only with MAP_SYNC: MAP_DIRECT's EACCES is fatal to PMDK,
# so the opt-in PMEMFS_PRELOAD_RDONLY=passthrough leaves read-only requests to the kernel.
_assert_errno "Permission denied" env LD_PRELOAD="$PRELOAD" pmempool check "$POOL"
_assert_exit 0 env LD_PRELOAD="$PRELOAD" PMEMFS_PRELOAD_RDONLY=passthrough pmempool check "$POOL"

_log "libpmem: pmem_map_file's is_pmem"
_assert_exit 0 "$ISPMEM" "$POOL"
_assert_eq "is_pmem=0" "$LAST_OUT" "is_pmem without the preload"
_assert_exit 0 env LD_PRELOAD="$PRELOAD" "$ISPMEM" "$POOL"
_assert_eq "is_pmem=1" "$LAST_OUT" "is_pmem under the preload"
wait_unleased /pool

_log "libpmemobj: pmdk-counter under the preload"
CPOOL=$MNT/counter
_assert_exit 0 env LD_PRELOAD="$PRELOAD" "$COUNTER" create "$CPOOL"
wait_unleased /counter
# start_counter OUT: pmdk-counter run in the background under the preload, once it acknowledged something.
start_counter() {
  LD_PRELOAD=$PRELOAD "$COUNTER" run "$CPOOL" >"$1" 2>"$1.err" &
  COUNTER_PID=$!
  _PIDS+=("$COUNTER_PID")
  local i
  for ((i = 0; i < 200; i++)); do grep -qE '^[0-9]+$' "$1" && return 0; _pid_alive "$COUNTER_PID" || break; sleep 0.05; done
  _fail "pmdk-counter run acknowledged nothing: $(cat "$1.err")"
}
start_counter "$SCRATCH/run.out"
_assert_eq "1 lease" "$(leases_of /counter) $(sealed "$CPOOL")" "leases and seal while pmdk-counter runs"
_assert_errno "Text file busy" truncate -s 0 "$CPOOL"
_assert_errno "Text file busy" truncate -s 64M "$CPOOL"
kill -TERM "$COUNTER_PID"
_reap "$COUNTER_PID" || true
acked=$(grep -E '^[0-9]+$' "$SCRATCH/run.out" | tail -n 1)
wait_unleased /counter
now=$(LD_PRELOAD=$PRELOAD "$COUNTER" check "$CPOOL") || _fail "pmdk-counter check: the ring disagrees with the counter"
(( now >= acked )) || _fail "the counter is $now, but $acked had been acknowledged"
_log "ok: $acked transactions acknowledged, counter $now"

if command -v strace >/dev/null; then
  # msync_run ENV...: pmdk-counter run for 1 s (env ENV...) under strace; MSYNCS and TXS: its msync(2) calls and transactions.
  msync_run() {
    timeout -s INT 1 strace -f -qq -e trace=msync -o "$SCRATCH/strace.out" env "$@" "$COUNTER" run "$CPOOL" >"$SCRATCH/strace.run" || true
    MSYNCS=$(grep -c 'msync(' "$SCRATCH/strace.out" || true)
    TXS=$(grep -cE '^[0-9]+$' "$SCRATCH/strace.run" || true)
  }
  # Under the preload PMDK flushes with CPU instructions (pmem_persist): the only msync calls
  # are the pool header's at open (made before PMDK learns the pool is pmem); without, every
  # transaction makes some.
  msync_run LD_PRELOAD="$PRELOAD"
  _log "under the preload: $MSYNCS msync calls in 1 s, $TXS transactions"
  (( TXS > 100 && MSYNCS <= 4 )) || _fail "pmdk-counter under the preload made $MSYNCS msync calls for $TXS transactions: not on its pmem path"
  msync_run
  _log "without the preload: $MSYNCS msync calls in 1 s, $TXS transactions"
  (( MSYNCS >= TXS )) || _fail "pmdk-counter without the preload made $MSYNCS msync calls for $TXS transactions: expected at least one each"
  wait_unleased /counter
else
  _log "strace is not installed: the msync count is not checked"
fi

_log "power cuts of the control file while pmdk-counter stores through direct mappings"
for seed in 11 -; do
  start_counter "$SCRATCH/cut.out"
  sleep 0.5
  cut "$seed" "$COUNTER_PID"
  acked=$(grep -E '^[0-9]+$' "$SCRATCH/cut.out" | tail -n 1)
  _check_pmdk_counter "$COUNTER" "$CPOOL" "$acked" "seed $seed"
  _log "ok: seed $seed: last acknowledged $acked, counter $NOW after the cut"
done
_assert_exit 0 truncate -s 0 "$CPOOL"
_unmount

_log "dax=never: no leases, so the preload answers EOPNOTSUPP (where PMDK falls back to a plain mapping)"
_mount "dax=never"
coproc PROBE_IO { LD_PRELOAD=$PRELOAD exec "$PROBE" 2>"$SCRATCH/probe.err"; }
_PIDS+=("$PROBE_IO_PID")
probe_pid=$PROBE_IO_PID
xfs_io -f -c "pwrite -q 0 8k" "$A"
probe "open $A rw"; fd=${REPLY#fd }
want "map $fd 0 8192 rw sv" "err EOPNOTSUPP"
printf 'exit\n' >&"${PROBE_IO[1]}"
_reap "$probe_pid" || true
_assert_exit 0 env LD_PRELOAD="$PRELOAD" "$ISPMEM" "$POOL"
_assert_eq "is_pmem=0" "$LAST_OUT" "is_pmem under the preload on dax=never"
_unmount
_assert_exit 0 "$FSCK_PMEMFS" -n "$REGION"
