#!/usr/bin/env bash
# Inodes read on demand, through the mount: after a clean remount nothing
# but the root is in core (`.pmemfs/stats`, subsystem=inodes in_core=); a
# listing of a parent reads a child directory's slot but not its entries
# (dirs_unread=, dir_entries_in_core=): its lookups read its hash index and
# one leaf each and leave its entries on media, however many they are, as
# do a create and a rename in it, and `ls -f` and `find` list them leaf by leaf from
# the blocks, in hash order, without reading them into core; a
# listing with attributes reads the files; when the kernel forgets them
# (`echo 2 > /proc/sys/vm/drop_caches`) they leave core down to
# `-o inode_cache=N`, and every file still reads back as written; `ls -f`
# and `find` learn the types from the slots without loading the inodes; `df -i`
# counts every inode, in core or not; `-o check` mounts the same region
# with every inode loaded and cross-checked; fsck.pmemfs -n is clean.
. "$(dirname "$0")/lib.sh"

_require_root
_require_fuse
_require_cmd xargs cmp df
[[ -w /proc/sys/vm/drop_caches ]] || _skip "/proc/sys/vm/drop_caches is not writable (the kernel's forget cannot be asked for)"

FILES=600
LIMIT=64
_scratch_setup
_mkfs -s 256m
inodes() { sed -n "s/.*subsystem=inodes .* $1=\([0-9]*\).*/\1/p" "$MNT/.pmemfs/stats"; }

_log "$FILES files in 3 directories, each holding its own name"
_mount
for d in a b c; do mkdir "$MNT/$d"; done
for ((i = 0; i < FILES; i++)); do d=$(( i % 3 )); d=${d/0/a}; d=${d/1/b}; d=${d/2/c}; echo "file $i" >"$MNT/$d/f$i"; done
used=$(df --output=iused "$MNT" | tail -n 1 | tr -d ' ')
_unmount

_log "a remount reads the root and nothing else"
_mount "inode_cache=$LIMIT"
_assert_eq "1" "$(inodes in_core)" "inodes in core right after mount"
_assert_eq "1" "$(inodes on_demand)" "on_demand"
_assert_eq "$used" "$(df --output=iused "$MNT" | tail -n 1 | tr -d ' ')" "df -i inodes in use after the remount"
BIG=3000
mkdir "$MNT/big" "$MNT/big/sub"; ln -s f0 "$MNT/big/link"
(cd "$MNT/big" && seq -f 'f%g' 1 "$BIG" | xargs touch)
_unmount

_log "a listing of the parent reads the directory's slot, not its $BIG entries"
_mount "inode_cache=$LIMIT"
ls -l "$MNT" >/dev/null
stat "$MNT/big" >/dev/null
(( $(inodes dirs_unread) >= 1 )) || _fail "big's entries were read by ls -l of its parent: $(grep subsystem=inodes "$MNT/.pmemfs/stats")"
(( $(inodes dir_entries_in_core) < BIG )) || _fail "$(inodes dir_entries_in_core) entries in core after ls -l of the parent"
echo file-in-big >"$MNT/big/f$BIG.new"
_unmount
_mount "inode_cache=$LIMIT"
_assert_eq "file-in-big" "$(cat "$MNT/big/f$BIG.new")" "a lookup in big after a remount (a probe of its blocks)"
(( $(inodes dirs_unread) >= 1 && $(inodes dir_entries_in_core) < BIG )) || _fail "one lookup in big read its entries: $(grep subsystem=inodes "$MNT/.pmemfs/stats")"
[[ ! -e $MNT/big/absent ]] || _fail "a name that is not in big was found"
for i in $(seq 1 7 300); do stat "$MNT/big/f$i" >/dev/null || _fail "f$i not found in big"; done
(( $(inodes dir_entries_in_core) < BIG )) || _fail "45 lookups in big read its entries (a hash index answers each from one leaf): $(grep subsystem=inodes "$MNT/.pmemfs/stats")"
echo one-more >"$MNT/big/f$BIG.more"
mv "$MNT/big/f1" "$MNT/big/f1.renamed"
(( $(inodes dir_entries_in_core) < BIG )) || _fail "a create and a rename in big read its entries (each changes one leaf): $(grep subsystem=inodes "$MNT/.pmemfs/stats")"
_assert_eq "one-more" "$(cat "$MNT/big/f$BIG.more")" "the file created in big with its entries on media"
mv "$MNT/big/f1.renamed" "$MNT/big/f1"
rm "$MNT/big/f$BIG.new" "$MNT/big/f$BIG.more"

_log "ls -f and find take each type from its slot: no inode is loaded for them"
_assert_eq "$((BIG + 4))" "$(ls -f "$MNT/big" | wc -l)" "names listed by ls -f (the files, sub, link, . and ..)"
_assert_eq "$BIG" "$(find "$MNT/big" -type f | wc -l)" "files found by find -type f"
_assert_eq "$MNT/big/sub" "$(find "$MNT/big" -mindepth 1 -type d)" "directory found by find -type d"
_assert_eq "$MNT/big/link" "$(find "$MNT/big" -type l)" "symlink found by find -type l"
in_core=$(inodes in_core)
# The kernel asks for attributes with a directory's first reply (READDIRPLUS_AUTO): those children only.
(( in_core < BIG / 3 )) || _fail "after ls -f and find of $BIG files $in_core inodes in core: the listing loaded them (stats: $(grep subsystem=fuse_ops "$MNT/.pmemfs/stats"))"
_log "ok: $in_core inodes in core after ls -f and find of $BIG files"
_unmount
_mount "inode_cache=$LIMIT"
_log "after a remount, ls -f and find list big from its blocks: its entries stay on media"
_assert_eq "$((BIG + 4))" "$(ls -f "$MNT/big" | wc -l)" "names listed by ls -f after the remount"
_assert_eq "$BIG" "$(find "$MNT/big" -type f | wc -l)" "files found by find -type f after the remount"
(( $(inodes dirs_unread) >= 1 && $(inodes dir_entries_in_core) < BIG )) || _fail "listing big read its entries into core: $(grep subsystem=inodes "$MNT/.pmemfs/stats")"
rm -r "$MNT/big"
used=$(df --output=iused "$MNT" | tail -n 1 | tr -d ' ')
ls -l "$MNT/a" "$MNT/b" "$MNT/c" >/dev/null
in_core=$(inodes in_core)
(( in_core > FILES )) || _fail "after ls -l only $in_core inodes in core, expected more than $FILES"

_log "the kernel forgets them: they leave core down to inode_cache=$LIMIT"
sync
echo 2 >/proc/sys/vm/drop_caches
for ((i = 0; i < 50; i++)); do (( $(inodes in_core) <= LIMIT )) && break; sleep 0.1; done
in_core=$(inodes in_core)
(( in_core <= LIMIT )) || _fail "$in_core inodes in core after the kernel forgot them (limit $LIMIT); stats: $(grep subsystem=inodes "$MNT/.pmemfs/stats")"
(( $(inodes evicted) >= FILES - LIMIT )) || _fail "only $(inodes evicted) evictions: $(grep subsystem=inodes "$MNT/.pmemfs/stats")"
_log "ok: $in_core in core, $(inodes evicted) evicted"

_log "every file reads back as written, read again from its slot"
for ((i = 0; i < FILES; i++)); do
  d=$(( i % 3 )); d=${d/0/a}; d=${d/1/b}; d=${d/2/c}
  [[ $(cat "$MNT/$d/f$i") == "file $i" ]] || _fail "$d/f$i reads '$(cat "$MNT/$d/f$i")'"
done
_unmount

_log "-o check loads and cross-checks every inode"
_mount check
_assert_eq "$used" "$(inodes in_core)" "inodes in core with -o check"
_assert_eq "0" "$(inodes on_demand)" "on_demand with -o check"
_unmount
_run "$FSCK_PMEMFS" -n "$REGION"
(( LAST_RC == 0 )) || _fail "fsck.pmemfs -n: exit $LAST_RC: $LAST_ERR"
_log "done"
