#!/usr/bin/env bash
# FUSE_INTERRUPT: under busy=wait a truncate of a file whose pages are
# pinned waits; a signal the caller handles (so it interrupts rather than
# kills) makes the truncate fail with EINTR at once, not at busy_timeout,
# and the truncate never happens later, when the pins go. Interrupts that
# reach requests already answered (a storm of SIGALRMs over quick
# requests) change nothing: every call succeeds, the daemon keeps serving.
. "$(dirname "$0")/lib.sh"

_require_fuse
_require_root
_require_cmd perl xfs_io pmemfs-io

_scratch_setup
_mkfs -s 256m
_mount "dax=always,busy=wait,busy_timeout=30000"
F=$MNT/f
BUSY=$MNT/.pmemfs/busy
# stat_of SUBSYSTEM KEY: a number from .pmemfs/stats.
stat_of() { sed -n "s/^subsystem=$1 .*\\b$2=\\([0-9]*\\).*/\\1/p" "$MNT/.pmemfs/stats"; }

xfs_io -f -c "pwrite -S 0x5a 0 256k" "$F" >/dev/null
sum0=$(_sha "$F")

_log "a pinned file: a truncate waits; SIGALRM after 1 s interrupts it with EINTR"
pmemfs-io -c "pin 0 64k" -c "sleep 60" "$F" >"$SCRATCH/pin.out" 2>&1 &
holder=$!; _PIDS+=("$holder")
for _ in $(seq 50); do _nonempty "$BUSY" && break; sleep 0.1; done
_nonempty "$BUSY" || _fail "the pin did not show in $BUSY: $(cat "$SCRATCH/pin.out")"
t0=$(_now_ms)
_run perl -e '$SIG{ALRM} = sub {}; alarm 1;
  if (truncate($ARGV[0], 0)) { print "truncated\n" } else { print "$!\n" }' "$F"
waited=$(( $(_now_ms) - t0 ))
_assert_eq "Interrupted system call" "$LAST_OUT" "truncate interrupted by SIGALRM"
_log "EINTR after ${waited} ms (busy_timeout is 30000)"
(( waited >= 900 && waited < 5000 )) || _fail "the interrupted truncate returned after ${waited} ms"
_assert_eq 1 "$(stat_of guard waitsInterrupted)" "waitsInterrupted in .pmemfs/stats"
(( $(stat_of fuse interrupts) >= 1 )) || _fail "no interrupt counted in .pmemfs/stats"
_assert_eq 262144 "$(stat -c %s "$F")" "size while still pinned"

_log "the pins go: the truncate does not happen after all"
kill -TERM "$holder"; _reap "$holder" || true
t0=$(_now_ms)
while _nonempty "$BUSY"; do (( $(_now_ms) - t0 < 3000 )) || _fail "pins of the stopped holder still busy after 3 s"; sleep 0.05; done
sleep 0.5
_assert_eq 262144 "$(stat -c %s "$F")" "size after the pins went"
_assert_eq "$sum0" "$(_sha "$F")" "content after the pins went"

_log "interrupts after the reply: 2000 quick requests under a 1 ms SIGALRM storm"
xfs_io -f -c "pwrite 0 4k" "$MNT/storm" >/dev/null
# Odd calls truncate (SETATTR), even ones stat (GETATTR, mostly cached): none waits.
_run perl -MTime::HiRes=ualarm -e '
  my ($f, $n) = @ARGV; my ($hits, $bad) = (0, 0);
  $SIG{ALRM} = sub { $hits++ };
  ualarm(1000, 1000);
  for my $i (1 .. $n) {
    my $ok = ($i % 2) ? truncate($f, 4096 * ($i % 7 + 1)) : defined((stat $f)[7]);
    unless ($ok) { $bad++; print STDERR "call $i: $!\n" }
  }
  ualarm(0);
  print "signals=$hits failed=$bad\n";' "$MNT/storm" 2000
_log "storm: $LAST_OUT"
[[ $LAST_OUT =~ ^signals=([0-9]+)\ failed=0$ ]] || _fail "calls failed under the signal storm: $LAST_OUT; ${LAST_ERR:-}"
(( BASH_REMATCH[1] > 0 )) || _fail "no SIGALRM reached the storm process"
_assert_eq $(( 4096 * (1999 % 7 + 1) )) "$(stat -c %s "$MNT/storm")" "size after the storm"
grep -q 'ERR_FUSE_SLOT\|request failed unexpectedly' "$DAEMON_LOG" && _fail "the daemon logged a reply fault: $(grep -m1 'ERR_FUSE_SLOT\|request failed unexpectedly' "$DAEMON_LOG")"
# The stats file is rendered at its open: that open is the one request pending.
_assert_eq 1 "$(stat_of fuse pending)" "requests pending after the storm (the stats file's open)"
_assert_eq "$sum0" "$(_sha "$F")" "content of the first file at the end"

_unmount
_assert_exit 0 fsck.pmemfs -n "$REGION"
