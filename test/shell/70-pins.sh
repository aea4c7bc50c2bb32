#!/usr/bin/env bash
# Pins and busy pages ("dax: fix dma vs truncate"): busy=refuse gives
# ETXTBSY and changes nothing; busy=wait waits (other requests keep being
# served) and resumes when the pin drops, or times out with ETXTBSY; holder
# death releases pins; admin pins through .pmemfs/ctl; the busy file's
# fields; unlink of a pinned file; DMA emulation visible through the mount.
. "$(dirname "$0")/lib.sh"

_require_fuse
_require_root
_require_cmd xfs_io pmemfs-io truncate fallocate

_scratch_setup
_mkfs -s 256m
_mount "dax=always"
IO=pmemfs-io
F=$MNT/f
BUSY=$MNT/.pmemfs/busy
CTL=$MNT/.pmemfs/ctl
ctl() { _run bash -c "echo '$1' > '$CTL'"; }

xfs_io -f -c "pwrite -S 0x11 0 256k" "$F" >/dev/null
xfs_io -f -c "truncate 256k" "$MNT/sparse" >/dev/null

_log "busy file is empty when idle; ls of the root hides .pmemfs"
_assert_eq "" "$(cat "$BUSY")" "busy file when idle"
ls -a "$MNT" | grep -q '^\.pmemfs$' && _fail ".pmemfs is listed by readdir of the root"

_log "pin by a process; refuse policy"
$IO -c "pin 0 64k" -c "sleep 30" "$F" >"$SCRATCH/pin.out" 2>&1 &
holder=$!; _PIDS+=("$holder")
for _ in $(seq 50); do _nonempty "$BUSY" && break; sleep 0.1; done
line=$(head -n1 "$BUSY")
[[ $line =~ ^id=[0-9]+\ ino=[0-9]+\ path=/f\ off=0\ len=65536\ phys=0x[0-9a-f]+\ pins=1\ holder=pid:$holder\ age_ms=[0-9]+$ ]] \
  || _fail "busy line has the wrong shape: '$line'"
grep -q '^pin [0-9]* phys=0x[0-9a-f]* len=65536$' "$SCRATCH/pin.out" || _fail "pmemfs-io pin output: $(cat "$SCRATCH/pin.out")"
grep -q 'pins=1 busy_pages=16' <<<"$(getfattr --only-values -n user.pmemfs.state "$F")" || _fail "state xattr: $(getfattr --only-values -n user.pmemfs.state "$F")"
_assert_errno "Text file busy" truncate -s 4096 "$F"
_assert_errno "Text file busy" fallocate -p -o 8192 -l 4096 "$F"
_assert_errno "Text file busy" fallocate -z -o 0 -l 64k "$F"
_assert_errno "Text file busy" $IO -c "fcollapse 0 4096" "$F"
_assert_eq 262144 "$(stat -c %s "$F")" "size after refused truncate"
# Not layout changes of busy pages: reads, in-place writes, extending writes and truncates, changes elsewhere.
_assert_exit 0 xfs_io -c "pwrite -S 0x33 0 4096" -c "pwrite 300k 4k" "$F"
_assert_exit 0 truncate -s 1m "$F"
_assert_exit 0 fallocate -p -o 128k -l 64k "$F"
_assert_exit 0 truncate -s 128k "$F"

_log "holder death releases its pins within a second"
kill -KILL "$holder"; t0=$(_now_ms); _reap "$holder" || true
while _nonempty "$BUSY"; do (( $(_now_ms) - t0 < 3000 )) || _fail "pins of a killed holder still busy after 3 s"; sleep 0.02; done
_log "pins released $(( $(_now_ms) - t0 )) ms after kill -9"
_assert_exit 0 truncate -s 64k "$F"

_log "admin pins through .pmemfs/ctl; malformed commands are EINVAL and change nothing"
ctl "pin /sparse 0 8192"; (( LAST_RC == 0 )) || _fail "ctl pin failed: $LAST_ERR"
line=$(cat "$BUSY")
[[ $line =~ holder=admin ]] || _fail "admin pin line: '$line'"
grep -q 'hole' <<<"$($IO -r -c 'bmap -v' "$MNT/sparse" | head -3 | tail -1)" && _fail "pinning did not fill the hole at offset 0"
for bad in "pin" "pin /sparse x 1" "frob" "unpin nope" "pin /sparse 0 1048576"; do
  before=$(sed 's/ age_ms=.*//' "$BUSY")
  ctl "$bad"
  (( LAST_RC != 0 )) || _fail "ctl '$bad' was accepted"
  case $bad in "pin /sparse 0 1048576") want="No such device or address" ;; *) want="Invalid argument" ;; esac
  grep -q "$want" <<<"$LAST_ERR" || _fail "ctl '$bad': expected '$want', got: $LAST_ERR"
  _assert_eq "$before" "$(sed 's/ age_ms=.*//' "$BUSY")" "busy file after bad ctl '$bad'"
done
id=$(sed -n 's/^id=\([0-9]*\) .*/\1/p' "$BUSY")
_assert_errno "Text file busy" truncate -s 0 "$MNT/sparse"
ctl "unpin $id"; (( LAST_RC == 0 )) || _fail "ctl unpin failed: $LAST_ERR"
_assert_eq "" "$(cat "$BUSY")" "busy file after unpin"

_log "unlink of a pinned file: path=(deleted), space back at the last unpin"
xfs_io -f -c "pwrite 0 8m" "$MNT/del" >/dev/null
ctl "pin /del 0 8388608"; (( LAST_RC == 0 )) || _fail "ctl pin /del: $LAST_ERR"
# One pin record per physical extent: the file may span more than one.
ids=$(sed -n 's/^id=\([0-9]*\) .*path=\/del .*/\1/p' "$BUSY")
[[ -n $ids ]] || _fail "no pin of /del in the busy file: $(cat "$BUSY")"
free0=$(stat -f -c %f "$MNT")
rm "$MNT/del"
grep -q 'path=(deleted)' "$BUSY" || _fail "busy file after unlink: $(cat "$BUSY")"
_assert_eq "$free0" "$(stat -f -c %f "$MNT")" "free blocks while the unlinked file is pinned"
for id in $ids; do ctl "unpin $id"; (( LAST_RC == 0 )) || _fail "ctl unpin $id: $LAST_ERR"; done
(( $(stat -f -c %f "$MNT") >= free0 + 2048 )) || _fail "space of the unlinked file not freed at unpin"

_log "dma: written straight into the region, visible through the mount"
xfs_io -f -c "truncate 1m" "$MNT/dma" >/dev/null
_assert_exit 0 $IO -c "dma 4096 64k -p 0x5a" "$MNT/dma"
od -An -tx1 -j 4096 -N 65536 -v "$MNT/dma" | tr -s ' \n' '\n' | grep -v '^$' | sort -u | tr '\n' ' ' | grep -qx '5a ' \
  || _fail "dma range does not read back as 0x5a"
_assert_eq "" "$(cat "$BUSY")" "busy file after dma (it unpins)"

_log "busy=wait: the truncate waits, other requests are served, it resumes at unpin"
_remount "dax=always,busy=wait,busy_timeout=20000"
ctl "pin /f 0 4096"; id=$(sed -n 's/^id=\([0-9]*\) .*/\1/p' "$BUSY")
t0=$(_now_ms)
truncate -s 0 "$F" 2>"$SCRATCH/trunc.err" &
waiter=$!; _PIDS+=("$waiter")
sleep 0.5
_pid_alive "$waiter" || _fail "truncate did not wait for the pin"
t1=$(_now_ms)
ls -la "$MNT" >/dev/null; cat "$MNT/sparse" >/dev/null
xfs_io -f -c "pwrite 0 64k" "$MNT/other" >/dev/null
(( $(_now_ms) - t1 < 2000 )) || _fail "ls/read/write took $(( $(_now_ms) - t1 )) ms while a truncate waited"
_pid_alive "$waiter" || _fail "truncate finished while still pinned"
t2=$(_now_ms); ctl "unpin $id"
_reap "$waiter" || _fail "truncate failed after unpin: $(cat "$SCRATCH/trunc.err")"
_log "truncate waited $(( $(_now_ms) - t0 )) ms; the pin was dropped at $(( t2 - t0 )) ms; ls/read/write meanwhile took $(( t2 - t1 )) ms"
_assert_eq 0 "$(stat -c %s "$F")" "size after the waited truncate"

_log "busy=wait with busy_timeout=1000: ETXTBSY after the timeout"
_remount "dax=always,busy=wait,busy_timeout=1000"
xfs_io -f -c "pwrite 0 64k" "$F" >/dev/null
ctl "pin /f 0 4096"
t0=$(_now_ms)
_assert_errno "Text file busy" truncate -s 0 "$F"
waited=$(( $(_now_ms) - t0 ))
_log "busy_timeout=1000: refused after ${waited} ms"
(( waited >= 900 && waited < 5000 )) || _fail "timed-out truncate returned after ${waited} ms"
_unmount
_assert_eq "" "$(ls "$MNT")" "mount point after unmount"
_assert_exit 0 fsck.pmemfs -n "$REGION"
