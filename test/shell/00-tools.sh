#!/usr/bin/env bash
# Every command answers --help and --version with exit 0: help on stdout
# naming the command, the version as a dotted number.
. "$(dirname "$0")/lib.sh"

for c in pmemfs mkfs.pmemfs fsck.pmemfs pmemfs-io; do
  cmd=$(_cmd_path "$c")
  command -v "$cmd" >/dev/null || _fail "$c not found as '$cmd': run npm run setup (or set PMEMFS_BIN)"

  _assert_exit 0 "$cmd" --help
  grep -qi 'usage' <<<"$LAST_OUT" || _fail "$c --help: no usage text on stdout: ${LAST_OUT:0:200}"
  grep -qF -- "$c" <<<"$LAST_OUT" || _fail "$c --help does not name the command: ${LAST_OUT:0:200}"

  _assert_exit 0 "$cmd" --version
  grep -qE '[0-9]+\.[0-9]+\.[0-9]+' <<<"$LAST_OUT" || _fail "$c --version prints no version number: '$LAST_OUT'"
done
