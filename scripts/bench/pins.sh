#!/usr/bin/env bash
# Cost of the busy-page check: per-operation latency of layout changes
# (fpunch of one block, truncate by one block) elsewhere in a file, without
# pins and with NPINS pins spread over the same file (every other block of
# its first part). `bash scripts/bench/pins.sh` as root; not part of npm test.
#
# The file (FILE_MB, fully written, so pins change no block map) lives on a
# pmemfs mount whose region sits on a private tmpfs. Each measurement is one
# xfs_io process running OPS commands, so process start-up is amortised and
# what remains is the FUSE round trip plus the daemon's work.
#
# Environment: NPINS (100000), OPS (2000), FILE_MB (1024).
set -euo pipefail

NPINS=${NPINS:-100000}
OPS=${OPS:-2000}
FILE_MB=${FILE_MB:-1024}
BS=4096

die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'bench: %s\n' "$*" >&2; }
[[ $EUID -eq 0 ]] || die "run as root"
for c in pmemfs mkfs.pmemfs pmemfs-io xfs_io mountpoint fusermount; do command -v "$c" >/dev/null || die "'$c' not found: run npm run setup"; done

blocks=$(( FILE_MB * 1024 * 1024 / BS ))
(( 2 * NPINS + 2 * OPS + 16 < blocks )) || die "FILE_MB=$FILE_MB is too small for NPINS=$NPINS and OPS=$OPS"

DIR=$(mktemp -d "${TMPDIR:-/tmp}/pmemfs-bench.XXXXXX")
DAEMON=''; HOLDER=''
cleanup() {
  set +e
  [[ -n $HOLDER ]] && kill "$HOLDER" 2>/dev/null && wait "$HOLDER" 2>/dev/null
  mountpoint -q "$DIR/mnt" && fusermount -u "$DIR/mnt"
  [[ -n $DAEMON ]] && wait "$DAEMON" 2>/dev/null
  mountpoint -q "$DIR/mem" && umount "$DIR/mem"
  rm -rf --one-file-system "$DIR"
}
trap cleanup EXIT

mkdir -p "$DIR/mem" "$DIR/mnt"
mount -t tmpfs -o size=$(( FILE_MB * 2 + 512 ))m tmpfs "$DIR/mem"
mkfs.pmemfs -s $(( FILE_MB * 2 + 256 ))m "$DIR/mem/region.img" >/dev/null
pmemfs "$DIR/mem/region.img" "$DIR/mnt" -f -o dax=always,log=warn 2>"$DIR/daemon.log" &
DAEMON=$!
for _ in $(seq 100); do mountpoint -q "$DIR/mnt" && break; sleep 0.1; done
mountpoint -q "$DIR/mnt" || die "mount failed: $(tail -3 "$DIR/daemon.log")"
F=$DIR/mnt/f
log "writing a ${FILE_MB} MiB file"
xfs_io -f -c "pwrite -b 1m 0 ${FILE_MB}m" "$F" >/dev/null

# time_ops LABEL FIRST_BLOCK KIND: OPS layout changes, one block each, from FIRST_BLOCK on.
time_ops() {
  local label=$1 first=$2 kind=$3 i args=() t0 t1
  for (( i = 0; i < OPS; i++ )); do
    if [[ $kind == punch ]]; then args+=(-c "fpunch $(( (first + i) * BS )) $BS")
    else args+=(-c "truncate $(( (first - i) * BS ))"); fi
  done
  t0=$(date +%s%N)
  xfs_io "${args[@]}" "$F" >/dev/null
  t1=$(date +%s%N)
  printf '%s %.1f\n' "$label" "$(echo "($t1 - $t0) / 1000 / $OPS" | bc -l)"
}

pinned_end=$(( 2 * NPINS ))
res=()
res+=("$(time_ops punch-nopins $(( pinned_end + 8 )) punch)")
res+=("$(time_ops truncate-nopins $(( blocks - 1 )) truncate)")

log "taking $NPINS pins (every other block of the first $(( pinned_end * BS / 1048576 )) MiB)"
{ for (( i = 0; i < NPINS; i++ )); do echo "pin $(( 2 * i * BS )) $BS"; done; echo "sleep 3600"; } >"$DIR/pins.cmd"
t0=$(date +%s%N)
pmemfs-io "$F" <"$DIR/pins.cmd" >"$DIR/pins.out" 2>&1 &
HOLDER=$!
until grep -q "subsystem=pin active=$NPINS " "$DIR/mnt/.pmemfs/stats"; do
  kill -0 "$HOLDER" 2>/dev/null || die "pin holder exited: $(tail -3 "$DIR/pins.out")"
  sleep 0.5
done
pin_s=$(echo "($(date +%s%N) - $t0) / 1000000000" | bc -l)

res+=("$(time_ops punch-pins $(( pinned_end + 8 + OPS )) punch)")
res+=("$(time_ops truncate-pins $(( blocks - 1 - OPS )) truncate)")
grep -q "subsystem=pin active=$NPINS " "$DIR/mnt/.pmemfs/stats" || die "pins went away during the measurement"

printf '\npmemfs busy-page check: %d pins, %d ops each, file %d MiB\n' "$NPINS" "$OPS" "$FILE_MB"
printf 'taking the pins: %.1f s (%.0f µs per pin ioctl)\n' "$pin_s" "$(echo "$pin_s * 1000000 / $NPINS" | bc -l)"
printf '%-10s %14s %14s %8s\n' op 'µs/op no pins' "µs/op ${NPINS} pins" ratio
declare -A v
for r in "${res[@]}"; do v[${r% *}]=${r#* }; done
for op in punch truncate; do
  a=${v[$op-nopins]} b=${v[$op-pins]}
  printf '%-10s %14.1f %14.1f %8.2f\n' "$op" "$a" "$b" "$(echo "$b / $a" | bc -l)"
done
