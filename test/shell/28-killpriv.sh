#!/usr/bin/env bash
# Privileges killed by the daemon (FUSE_HANDLE_KILLPRIV_V2, negotiated at
# INIT by native/src/init.c): on both dax modes, a write or truncate by a
# user without CAP_FSETID clears set-user-ID (and set-group-ID on a
# group-executable file), root's does not, a chown clears them whoever
# does it; and on a page-cache mount (dax=never) the kernel stops asking for
# security.capability before every write (SB_NOSEC): a stream of writes
# makes only a few GETXATTR requests.
. "$(dirname "$0")/lib.sh"

_require_root
_require_fuse
_require_cmd setpriv stat

as() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --clear-groups -- "$@"; }
# mode FILE [WANT]: its mode; with WANT, polled for up to 0.2 s (the daemon's attribute
# invalidation after a killing write is sent by a helper thread), well inside the 1 s
# attribute timeout the kernel would otherwise serve a stale mode for.
mode() {
  local m i
  for ((i = 0; i < 20; i++)); do m=$(stat -c %a "$1"); [[ -z ${2:-} || $m == "$2" ]] && break; sleep 0.01; done
  echo "$m"
}
getxattrs() { sed -n 's/.*subsystem=fuse_ops.* getxattr=\([0-9]*\).*/\1/p' "$MNT/.pmemfs/stats"; }

_scratch_setup
_mkfs -s 64m
chmod 0755 "$SCRATCH"      # the users below reach the mount through it
for dax in always never; do
  _log "dax=$dax"
  _mount "dax=$dax,allow_other,default_permissions"
  grep -q ' killpriv_v2=1' "$MNT/.pmemfs/stats" || _skip "the kernel did not accept FUSE_HANDLE_KILLPRIV_V2"
  f=$MNT/f-$dax
  echo x >"$f"
  chown 1000:1000 "$f"
  chmod 6755 "$f"
  _assert_eq 6755 "$(mode "$f")" "mode after chmod 6755"
  as 1000 bash -c "echo y >>'$f'"
  _assert_eq 755 "$(mode "$f" 755)" "mode after a write by the owner (uid 1000, no CAP_FSETID)"
  chmod 6755 "$f"
  as 1000 truncate -s 1 "$f"
  _assert_eq 755 "$(mode "$f")" "mode after a truncate by the owner"
  chmod 6755 "$f"
  echo z >>"$f"
  truncate -s 2 "$f"
  _assert_eq 6755 "$(mode "$f")" "mode after a write and a truncate by root (CAP_FSETID)"
  chown 1001 "$f"
  _assert_eq 755 "$(mode "$f")" "mode after chown by root"
  chmod 2745 "$f"
  as 1001 bash -c "echo w >>'$f'"
  _assert_eq 2745 "$(mode "$f")" "set-group-ID on a file that is not group-executable survives a write"
  if [[ $dax == never ]]; then
    g=$MNT/stream
    : >"$g"
    before=$(getxattrs)
    for ((i = 0; i < 200; i++)); do echo "$i" >>"$g"; done
    after=$(getxattrs)
    (( after - before < 20 )) || _fail "200 writes made $((after - before)) GETXATTR requests: the kernel still checks security.capability before every write"
    _log "ok: 200 page-cache writes made $((after - before)) GETXATTR requests"
  fi
  _unmount
done
_run "$FSCK_PMEMFS" -n "$REGION"
(( LAST_RC == 0 )) || _fail "fsck.pmemfs -n: $LAST_OUT $LAST_ERR"
_log "done"
