#!/usr/bin/env bash
# Who may do what, on a shared mount (allow_other,default_permissions), as
# two unprivileged users (setpriv): every pmemfs ioctl and control command
# x {owner with a read-write handle, owner with a read-only handle, another
# user with a read-only handle, another user without search permission on
# the directory} gets the errno of the permission table (docs/DESIGN.md,
# "Who may do what"), and after each refusal the file's bytes and block map
# are what they were. Also: the clone source goes by descriptor (a file on
# another filesystem is EXDEV, one the user cannot open never gets that
# far), a read-only pin of a fully mapped range works without allocating,
# and the control files show another user's private paths as (hidden).
. "$(dirname "$0")/lib.sh"

_require_root
_require_fuse
_require_cmd setpriv sha256sum

OWNER=1000 OTHER=2000
as() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --clear-groups -- "$@"; }
IO=$(command -v "$PMEMFS_IO")
as "$OTHER" test -x "$IO" || _fail "uid $OTHER cannot run $IO: every directory above the checkout must be searchable"

_scratch_setup
chmod 0755 "$SCRATCH"
_mkfs -s 256m
_mount "dax=always,allow_other,default_permissions"
HOME_D=$MNT/home PRIV=$MNT/priv
mkdir "$HOME_D" "$PRIV" "$MNT/pub"
chown "$OWNER:$OWNER" "$HOME_D" "$PRIV"
chmod 0755 "$HOME_D"; chmod 0700 "$PRIV"; chmod 1777 "$MNT/pub"
F=$HOME_D/f G=$PRIV/g SRC=$HOME_D/src

# The file every case starts from: 64 KiB of data, then a 32 KiB hole; owned by OWNER, 0644.
reset_files() {
  rm -f "$F" "$G" "$SRC"
  as "$OWNER" sh -c "head -c 65536 /dev/zero | tr '\\0' 'a' >'$F' && truncate -s 96k '$F' && cp '$F' '$G' && head -c 65536 /dev/zero | tr '\\0' 'a' >'$SRC'"
}
fingerprint() { echo "$(_sha "$1") $("$IO" -r -c "bmap -v" "$1")"; }

# case CMD EXPECTED WHO: EXPECTED is "ok" or the strerror text.
check() {
  local cmd=$1 want=$2 who=$3 uid flag=() target=$F before after
  reset_files
  case $who in
    owner-rw) uid=$OWNER ;;
    owner-ro) uid=$OWNER; flag=(-r) ;;
    other-ro) uid=$OTHER; flag=(-r) ;;
    other-nosearch) uid=$OTHER; flag=(-r); target=$G ;;
  esac
  before=$(fingerprint "$target")
  _run as "$uid" "$IO" "${flag[@]}" -c "$cmd" "$target"
  if [[ $want == ok ]]; then
    (( LAST_RC == 0 )) || _fail "'$cmd' by $who: expected success, got exit $LAST_RC: $LAST_ERR"
  else
    (( LAST_RC != 0 )) || _fail "'$cmd' by $who: succeeded, expected '$want'"
    grep -qF -- "$want" <<<"$LAST_ERR" || _fail "'$cmd' by $who: expected '$want', got: $LAST_ERR"
    after=$(fingerprint "$target")
    [[ $before == "$after" ]] || _fail "'$cmd' by $who was refused ($want) but the file changed: before '$before' after '$after'"
  fi
  cases=$((cases + 1))
}

EPERM="Operation not permitted" EACCES="Permission denied" EBADF="Bad file descriptor" EINVAL="Invalid argument"
cases=0
#                                   owner-rw  owner-ro  other-ro  other-nosearch
matrix() {
  local cmd=$1; shift
  local who
  for who in owner-rw owner-ro other-ro other-nosearch; do check "$cmd" "$1" "$who"; shift; done
}
_log "the ioctl matrix"
matrix "seal"                        "$EPERM"  "$EPERM"  "$EPERM"  "$EACCES"
matrix "unseal"                      "$EPERM"  "$EPERM"  "$EPERM"  "$EACCES"
matrix "lease"                       ok        "$EACCES" "$EACCES" "$EACCES"
matrix "unlease"                     "$EINVAL" "$EINVAL" "$EINVAL" "$EACCES"
matrix "break"                       "$EPERM"  "$EPERM"  "$EPERM"  "$EACCES"
matrix "pin 0 96k"                   ok        "$EBADF"  "$EBADF"  "$EACCES"
matrix "unpin 999"                   "$EINVAL" "$EINVAL" "$EINVAL" "$EACCES"
matrix "bmap -v"                     ok        ok        ok        "$EACCES"
matrix "lsattr"                      ok        ok        ok        "$EACCES"
matrix "fcollapse 0 4096"            ok        "$EBADF"  "$EBADF"  "$EACCES"
matrix "finsert 0 4096"              ok        "$EBADF"  "$EBADF"  "$EACCES"
matrix "funshare 0 4096"             ok        "$EBADF"  "$EBADF"  "$EACCES"
matrix "reflink $SRC"                ok        "$EBADF"  "$EBADF"  "$EACCES"
matrix "dedupe $SRC 0 0 4096"        ok        ok        "$EPERM"  "$EACCES"

_log "a read-only pin of a fully mapped range pins without allocating"
reset_files
before=$(fingerprint "$F")
_run as "$OTHER" "$IO" -r -c "pin 0 64k" "$F"
(( LAST_RC == 0 )) || _fail "read-only pin of mapped blocks by another user: $LAST_ERR"
_assert_eq "$before" "$(fingerprint "$F")" "file after a read-only pin"

_log "the clone source goes by descriptor: another filesystem is EXDEV, an unreadable file never opens"
echo outside >"$SCRATCH/outside"; chmod 0644 "$SCRATCH/outside"
reset_files
_run as "$OWNER" "$IO" -c "reflink $SCRATCH/outside" "$F"
grep -qF "Invalid cross-device link" <<<"$LAST_ERR" || _fail "reflink from another filesystem: $LAST_ERR"
_run as "$OTHER" sh -c "touch '$MNT/pub/o' && '$IO' -c 'reflink $G' '$MNT/pub/o'"
grep -qF "$EACCES" <<<"$LAST_ERR" || _fail "reflink of a file in a 0700 directory by another user: $LAST_ERR"
_assert_eq 0 "$(stat -c %s "$MNT/pub/o")" "size of the would-be clone"

_log "ctl commands are root's"
for c in "pin /home/f 0 4096" "unpin 1" "break /home/f" "powerfail"; do
  for u in "$OWNER" "$OTHER"; do
    _run as "$u" sh -c "echo '$c' > '$MNT/.pmemfs/ctl'"
    (( LAST_RC != 0 )) || _fail "uid $u ran ctl '$c'"
    grep -qF "$EACCES" <<<"$LAST_ERR" || _fail "ctl '$c' by uid $u: $LAST_ERR"
    cases=$((cases + 1))
  done
done

_log "control files: another user's private path is (hidden), the owner and root see it"
reset_files
echo "pin /priv/g 0 4096" >"$MNT/.pmemfs/ctl"
ino=$(stat -c %i "$G")
as "$OTHER" cat "$MNT/.pmemfs/busy" | grep -q "ino=$ino path=(hidden) " || _fail "busy as uid $OTHER: $(as "$OTHER" cat "$MNT/.pmemfs/busy")"
as "$OTHER" cat "$MNT/.pmemfs/busy" | grep -q "priv" && _fail "uid $OTHER saw a name inside a 0700 directory"
as "$OWNER" cat "$MNT/.pmemfs/busy" | grep -q "path=/priv/g " || _fail "busy as the owner: $(as "$OWNER" cat "$MNT/.pmemfs/busy")"
grep -q "path=/priv/g " "$MNT/.pmemfs/busy" || _fail "busy as root"
_assert_eq 0 "$(stat -c %s "$MNT/.pmemfs/busy")" "st_size of a control file (O(1) getattr)"

_log "$cases cases as unprivileged users"
_unmount
_run "$FSCK_PMEMFS" -n "$REGION"
(( LAST_RC == 0 )) || _fail "fsck.pmemfs -n after the matrix: $LAST_OUT $LAST_ERR"
_log "done"
