#!/usr/bin/env bash
# A real tree survives copy, unmount and remount: /usr/share/doc (thousands
# of files, directories and symlinks), plus hard links and user.* xattrs
# added to a local copy first, is copied with cp -a into a fresh mount.
# Compared: contents (diff -r), every entry's stat fields (mtimes to the
# nanosecond, a few set with nanoseconds and before 1970), symlink targets,
# hard-link groups and xattrs, both right after the copy and after a
# remount; fsck.pmemfs -n is clean at the end.
#
# Directory size and link count are compared only between the two views
# of the mount: they are the filesystem's own business (ext4 says 4096
# bytes, others differ).
. "$(dirname "$0")/lib.sh"

DOC=/usr/share/doc
MIN_ENTRIES=1000

_require_fuse
_require_cmd cp diff find stat sort getfattr setfattr xargs
entries=$(find "$DOC" 2>/dev/null | wc -l)
(( entries >= MIN_ENTRIES )) || _skip "$DOC has $entries entries, fewer than $MIN_ENTRIES (a slim image?)"

_scratch_setup
SRC=$SCRATCH/src
_log "copying $DOC ($entries entries) to $SRC"
cp -a "$DOC" "$SRC"

# Hard links: a few files get a second name in the same directory, one a
# name in another directory, one a third name.
mapfile -t regular < <(cd "$SRC" && find . -type f -links 1 -size +0 | sort | sed -n 1,6p)
(( ${#regular[@]} == 6 )) || _fail "found only ${#regular[@]} regular files in $SRC"
for f in "${regular[@]:0:4}"; do ln "$SRC/$f" "$SRC/$f.hardlink"; done
mkdir "$SRC/pmemfs-links"
ln "$SRC/${regular[4]}" "$SRC/pmemfs-links/across-dirs"
ln "$SRC/${regular[4]}" "$SRC/pmemfs-links/third-name"

# Nanosecond times (package files carry whole seconds): a file, a hard
# link group, a symlink itself and a directory, one of them before 1970.
NS_TIME='2021-03-04 05:06:07.123456789 UTC'
touch -d "$NS_TIME" "$SRC/${regular[0]}"
touch -d '1969-07-20 20:17:40.000000001 UTC' "$SRC/${regular[4]}"
symlink=$(cd "$SRC" && find . -type l | sort | sed -n 1p)
[[ -n $symlink ]] || _fail "$SRC has no symlink: the test set-up is wrong"
touch -h -d "$NS_TIME" "$SRC/$symlink"

# xattrs: on the local copy when its filesystem takes user.* (then cp -a
# carries them over), else set on the mount right after the copy.
XATTR_FILES=("${regular[@]:0:3}" "${regular[5]}" pmemfs-links)
set_xattrs() {
  local root=$1 f
  for f in "${XATTR_FILES[@]}"; do setfattr -n user.test -v hello "$root/$f"; done
  setfattr -n user.with.space -v "two words" "$root/${XATTR_FILES[0]}"
  setfattr -n user.empty "$root/${XATTR_FILES[1]}"
  setfattr -n user.binary -v 0x00ff10ef7f80 "$root/${XATTR_FILES[1]}"
  setfattr -n user.big -v "$(head -c 4000 /dev/zero | tr '\0' 'a')" "$root/${XATTR_FILES[2]}"
}
xattrs_in_src=1
if setfattr -n user.pmemfs-probe -v 1 "$SRC/${regular[0]}" 2>/dev/null; then
  setfattr -x user.pmemfs-probe "$SRC/${regular[0]}"
  set_xattrs "$SRC"
else
  xattrs_in_src=0
  _log "$(findmnt -no FSTYPE -T "$SRC" 2>/dev/null || echo '?') under $SCRATCH has no user xattrs: setting them on the mount instead"
fi

# Views of a tree, each sorted so directory order does not matter.
stat_list() {  # every entry: type|mode|links|uid|gid|size|mtime (ns)|name
  (cd "$1" && find . -print0 | sort -z | xargs -0 stat -c '%F|%a|%h|%u|%g|%s|%.9Y|%n')
}
stat_list_nodirs() {  # the same, directory link count and size masked
  stat_list "$1" | awk -F'|' -v OFS='|' '$1 == "directory" { $3 = "-"; $6 = "-" } { print }'
}
symlinks() { (cd "$1" && find . -type l -printf '%p %l\n' | sort); }
hardlink_groups() {  # one line per inode with several names: its names
  (cd "$1" && find . -type f -links +1 -printf '%i %p\n') \
    | sort -k1,1n -k2 | awk '$1 != i { if (l) print l; i = $1; l = $2; next } { l = l " " $2 } END { if (l) print l }' | sort
}
xattr_dump() {  # getfattr blocks, one line each, sorted
  (cd "$1" && getfattr -R -h -d -m - .) | awk 'BEGIN { RS = "" } { gsub(/\n/, " | "); print }' | sort
}
snapshot() {  # snapshot DIR PREFIX
  stat_list "$1" >"$2.stat"
  stat_list_nodirs "$1" >"$2.stat-nodirs"
  symlinks "$1" >"$2.symlinks"
  hardlink_groups "$1" >"$2.hardlinks"
  xattr_dump "$1" >"$2.xattrs"
}
same() {  # same FILE_A FILE_B WHAT
  cmp -s "$1" "$2" && return 0
  { diff -u "$1" "$2" || true; } | sed -n 1,40p >&2
  _fail "$3 differ ($(basename "$1") vs $(basename "$2"), diff above)"
}
tree_diff() {
  local out
  out=$(diff -r --no-dereference "$1" "$2" 2>&1) || { head -n 40 <<<"$out" >&2; _fail "diff -r $1 $2 is not clean (above)"; }
}

_mkfs -s 1g
_mount dax=always
_log "cp -a into the mount"
cp -a "$SRC" "$MNT/doc"
(( xattrs_in_src )) || set_xattrs "$MNT/doc"

SNAP=$SCRATCH/snap
mkdir "$SNAP"
snapshot "$SRC" "$SNAP/src"
snapshot "$MNT/doc" "$SNAP/copy"
[[ -s $SNAP/src.hardlinks && -s $SNAP/src.symlinks ]] || _fail "the source has no hard links or no symlinks: the test set-up is wrong"

_log "comparing the copy with the source"
tree_diff "$SRC" "$MNT/doc"
same "$SNAP/src.stat-nodirs" "$SNAP/copy.stat-nodirs" "stat listings (source vs copy)"
same "$SNAP/src.symlinks" "$SNAP/copy.symlinks" "symlink targets (source vs copy)"
same "$SNAP/src.hardlinks" "$SNAP/copy.hardlinks" "hard-link groups (source vs copy)"
if (( xattrs_in_src )); then
  same "$SNAP/src.xattrs" "$SNAP/copy.xattrs" "xattrs (source vs copy)"
fi
grep -q 'user.test="hello"' "$SNAP/copy.xattrs" || _fail "the copy shows no user.test xattr"
# (stat prints 1 ns after -14182940 s as -14182939.999999999)
for want in "${regular[0]}=1614834367.123456789" "pmemfs-links/third-name=-14182939.999999999" "$symlink=1614834367.123456789"; do
  got=$(stat -c %.9Y "$MNT/doc/${want%=*}")
  [[ $got == "${want##*=}" ]] || _fail "mtime of ${want%=*} is $got on the mount, ${want##*=} was set"
done

_remount dax=always
_log "comparing after the remount"
snapshot "$MNT/doc" "$SNAP/remount"
same "$SNAP/copy.stat" "$SNAP/remount.stat" "stat listings (before vs after remount)"
same "$SNAP/copy.symlinks" "$SNAP/remount.symlinks" "symlink targets (before vs after remount)"
same "$SNAP/copy.hardlinks" "$SNAP/remount.hardlinks" "hard-link groups (before vs after remount)"
same "$SNAP/copy.xattrs" "$SNAP/remount.xattrs" "xattrs (before vs after remount)"
tree_diff "$SRC" "$MNT/doc"

_unmount
_assert_exit 0 "$FSCK_PMEMFS" -n "$REGION"
