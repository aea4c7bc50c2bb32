#!/usr/bin/env bash
# Allocator benches (in-process, no mount): `alloc.sh alloc` runs
# scripts/bench/alloc.mjs, `alloc.sh frag` runs scripts/bench/frag.mjs,
# `alloc.sh` both. Builds the TypeScript first unless DIST names a compiled
# tree already; type errors elsewhere in the tree do not stop tsc emitting.
# Env as the scripts: SEED, OPS, GIB, SIZE_MIB, WRITERS, BENCH_DIR, DIST.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -z "${DIST:-}" ]]; then npx tsc -p tsconfig.json >/dev/null || echo "alloc.sh: tsc reported errors; running what it emitted" >&2; fi
case "${1:-all}" in
  alloc) node scripts/bench/alloc.mjs ;;
  frag) node scripts/bench/frag.mjs ;;
  all) node scripts/bench/alloc.mjs; node scripts/bench/frag.mjs ;;
  *) echo "usage: $0 [alloc|frag|all]" >&2; exit 2 ;;
esac
