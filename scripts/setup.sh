#!/usr/bin/env bash
# Set up pmemfs on a Debian 12 machine, as root: `npm run setup`.
#
# Idempotent: every step checks before it acts, so a second run changes
# nothing and is quick (apt-get update only when a package is missing; npm ci
# only when package-lock.json, Node's ABI or the compiler flags changed).
# Works without a terminal (CI=true, no stdin). One line per step; a failure
# names the fix.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# Runtime tools: fuse3 (libfuse3 and the FUSE 3 helpers: the setuid
# fusermount3 for non-root mounts, mount.fuse3 for mount -t and fstab),
# xfs_io, getfattr/setfattr, fio, and bindfs for the benchmark (bindfs keeps
# working with fuse3 installed: fuse3 provides the fuse package it needs),
# sqlite3 and pmdk-tools (pmempool) for the durable benchmark and the mmap
# clients, libpmemobj-dev for the benchmark's PMDK program (and libpmemfs's
# test programs).
# Build tools: node-gyp needs python3, make and a C compiler; the addon
# (native/) includes libfuse3-dev's headers and links libfuse3.so.3.
RUNTIME_PKGS=(fuse3 xfsprogs attr fio bindfs sqlite3 pmdk-tools)
BUILD_PKGS=(python3 make g++ pkg-config libfuse3-dev libpmemobj-dev)
COMMANDS=(pmemfs mkfs.pmemfs fsck.pmemfs pmemfs-io)
LINK_DIR=/usr/local/bin
# Any C++ addon built from source must use C++17 with Node 20's headers (mmap-io
# 1.1.7 pinned c++11 and failed; the project no longer uses it: it truncates
# map offsets to a C int, so the shim maps the region itself). gyp's Makefile
# puts $CXXFLAGS after the target's flags, so this one wins.
NPM_CXXFLAGS=-std=gnu++17
STAMP=node_modules/.pmemfs-setup.stamp

step() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

check_host() {
  step "checking the host (root, Debian, Node >= 20)"
  [[ $EUID -eq 0 ]] || die "run as root: sudo npm run setup (packages, /usr/local/bin links and /etc/fuse.conf need it)"
  if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    die "apt-get/dpkg-query not found: this script targets Debian 12; install by hand: ${RUNTIME_PKGS[*]} ${BUILD_PKGS[*]}"
  fi
  local major
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null) || die "node not found: install Node.js 20 (e.g. from NodeSource) and re-run"
  (( major >= 20 )) || die "Node $(node --version) is too old: pmemfs needs Node 20 or newer"
  local os
  os=$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release 2>/dev/null || true)
  note "node $(node --version), npm $(npm --version 2>/dev/null), ${os:-unknown OS}"
}

pkg_installed() {
  [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) == ii* ]]
}

install_packages() {
  step "checking Debian packages: ${RUNTIME_PKGS[*]} ${BUILD_PKGS[*]}"
  local missing=() p
  for p in "${RUNTIME_PKGS[@]}" "${BUILD_PKGS[@]}"; do
    pkg_installed "$p" || missing+=("$p")
  done
  if (( ${#missing[@]} == 0 )); then
    note "all installed"
    return
  fi
  step "installing missing packages: ${missing[*]}"
  if [[ " ${missing[*]} " == *" fuse3 "* ]] && pkg_installed fuse; then
    note "fuse3 replaces Debian's fuse (FUSE 2 tools); fusermount becomes a link to fusermount3 and libfuse2 programs (bindfs) keep working"
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed: check network access and /etc/apt/sources.list, then re-run"
  # force-confold: keep an /etc/fuse.conf edited before (else dpkg stops at a conffile prompt and leaves fuse3 unconfigured).
  apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold "${missing[@]}" </dev/null \
    || die "apt-get install ${missing[*]} failed (see above): fix the apt error and re-run"
  for p in "${missing[@]}"; do
    pkg_installed "$p" || die "package $p is still not installed after apt-get install"
  done
}

check_dev_fuse() {
  step "checking /dev/fuse"
  if [[ ! -c /dev/fuse ]]; then
    if command -v modprobe >/dev/null; then modprobe fuse 2>/dev/null || true; fi
    # Kernel has FUSE but no device node (minimal containers): make the node.
    if [[ ! -e /dev/fuse ]] && grep -qw fuse /proc/filesystems 2>/dev/null; then
      if mknod -m 0666 /dev/fuse c 10 229 2>/dev/null; then note "created /dev/fuse (char 10:229)"; fi
    fi
  fi
  [[ -c /dev/fuse ]] || die "/dev/fuse is missing: on a VM or host run 'modprobe fuse'; in a container start it with '--device /dev/fuse --cap-add SYS_ADMIN' (docker/podman)"
  # Opening the device only allocates a connection that closing drops again.
  ( exec 3<>/dev/fuse ) 2>/dev/null \
    || die "/dev/fuse exists but cannot be opened: in a container allow the device (docker: --device /dev/fuse --cap-add SYS_ADMIN; or --privileged)"
  # Non-root mounts: fusermount3 (setuid root) opens /dev/fuse with the caller's
  # filesystem uid, so the node must be world read-write, as Debian's udev rule
  # (KERNEL=="fuse", MODE="0666") makes it. Containers often create it 0600.
  local mode
  mode=$(stat -c %a /dev/fuse)
  if [[ $mode != 666 ]]; then
    chmod 0666 /dev/fuse || die "cannot chmod /dev/fuse to 0666: non-root mounts will fail (fusermount3: failed to open /dev/fuse)"
    note "/dev/fuse was mode $mode: set to 0666 (Debian's udev default) so non-root users can mount through fusermount3"
  fi
  note "ok"
}

configure_fuse_conf() {
  step "checking /etc/fuse.conf for user_allow_other"
  if grep -Eq '^[[:space:]]*user_allow_other' /etc/fuse.conf 2>/dev/null; then
    note "already set"
  else
    printf '\n# Added by pmemfs setup: lets non-root users mount with -o allow_other.\nuser_allow_other\n' >>/etc/fuse.conf \
      || die "cannot write /etc/fuse.conf: add the line 'user_allow_other' by hand"
    note "added"
  fi
}

# What node_modules was installed from: the lockfile, Node's module ABI and
# the compiler flags. A change in any of them means a fresh npm ci.
deps_fingerprint() {
  printf '%s abi=%s cxxflags=%s\n' \
    "$(sha256sum package-lock.json | cut -d' ' -f1)" "$(node -p process.versions.modules)" "$NPM_CXXFLAGS"
}

install_node_modules() {
  step "checking node_modules against package-lock.json"
  [[ -f package-lock.json ]] || die "package-lock.json is missing: run 'npm install' once to create it, and commit it"
  local want
  want=$(deps_fingerprint)
  if [[ -d node_modules && -f $STAMP && $(<"$STAMP") == "$want" ]]; then
    note "up to date, skipping npm ci"
    return
  fi
  # No dependency needs an install script: the only native code is our own
  # addon, built by npm run build below.
  local args=(ci --no-audit --no-fund)
  step "installing dependencies: CXXFLAGS=$NPM_CXXFLAGS npm ${args[*]}"
  CXXFLAGS=$NPM_CXXFLAGS npm "${args[@]}" </dev/null \
    || die "npm ci failed (see above): a network error means the npm registry is unreachable"
  echo "$want" >"$STAMP"
  note "installed"
}

build() {
  step "building: npm run build (native addon + TypeScript)"
  npm run build </dev/null \
    || die "npm run build failed (see above): fix the native/ or TypeScript errors, then re-run npm run setup"
}

# libpmemfs (native/libpmemfs/): the C library, the LD_PRELOAD library and
# pmemfs.pc, built by its Makefile (a no-op when up to date) and installed
# into /usr/local with install -C (unchanged files are not rewritten), then
# ldconfig so that libpmemfs.so.1 is found without LD_LIBRARY_PATH.
LIBPMEMFS_DIR=native/libpmemfs
LIBPMEMFS_PREFIX=/usr/local

install_libpmemfs() {
  step "building and installing libpmemfs (libpmemfs.so, libpmemfs-preload.so, pmemfs.h, pmemfs.pc) into $LIBPMEMFS_PREFIX"
  make -s -C "$LIBPMEMFS_DIR" </dev/null \
    || die "building $LIBPMEMFS_DIR failed (see above): fix the C errors, then re-run npm run setup"
  make -s -C "$LIBPMEMFS_DIR" install PREFIX="$LIBPMEMFS_PREFIX" </dev/null \
    || die "installing libpmemfs into $LIBPMEMFS_PREFIX failed (see above)"
  ldconfig || die "ldconfig failed: libpmemfs.so.1 will not be found at run time"
  pkg-config --exists pmemfs \
    || die "pkg-config does not find pmemfs: is $LIBPMEMFS_PREFIX/lib/pkgconfig on its search path (PKG_CONFIG_PATH)?"
  note "pmemfs $(pkg-config --modversion pmemfs): $LIBPMEMFS_PREFIX/lib/libpmemfs.so.1, $LIBPMEMFS_PREFIX/lib/libpmemfs-preload.so"
}

# A link we own is replaced freely; anything else in the way is left alone.
link_command() {
  local target=$ROOT/bin/$1 link=$LINK_DIR/$1
  [[ -f $target ]] || die "$target is missing: the checkout is incomplete"
  [[ -x $target ]] || chmod +x "$target"
  if [[ -L $link && $(readlink "$link") == "$target" ]]; then
    note "$link -> $target (already)"
    return
  fi
  if [[ -e $link && ! -L $link ]]; then
    die "$link exists and is not a symlink: move it away so setup can link $target"
  fi
  ln -sfn "$target" "$link"
  note "$link -> $target"
}

link_commands() {
  step "putting ${COMMANDS[*]} on PATH (symlinks in $LINK_DIR)"
  mkdir -p "$LINK_DIR"
  local c
  for c in "${COMMANDS[@]}"; do link_command "$c"; done
  case ":$PATH:" in
    *":$LINK_DIR:"*) ;;
    *) note "warning: $LINK_DIR is not on this shell's PATH; add it (export PATH=$LINK_DIR:\$PATH)" ;;
  esac
}

# `mount -t fuse.pmemfs REGION MNT -o OPTS`: mount(8) finds no
# /sbin/mount.fuse.pmemfs and falls back to /sbin/mount.fuse (type minus its
# subtype), which fuse3 links to mount.fuse3. It strips "fuse." from the type and
# runs `/bin/sh -c "pmemfs REGION MNT -o OPTS"` with the caller's environment
# (execl of /bin/sh, no PATH of its own), so `pmemfs` is found through PATH:
# /usr/local/bin is on root's PATH in login shells, sudo and systemd.
check_mount_helper() {
  step "checking mount -t fuse.pmemfs support"
  local helper='' h
  for h in "$(command -v mount.fuse3 || true)" /sbin/mount.fuse3 /usr/sbin/mount.fuse3; do
    if [[ -n $h && -x $h ]]; then helper=$h; break; fi
  done
  [[ -n $helper ]] || die "mount.fuse3 not found: install Debian's fuse3 package (apt-get install fuse3)"
  local found
  found=$(command -v pmemfs || true)
  if [[ -z $found ]]; then
    note "warning: $LINK_DIR is not on this PATH, so mount.fuse3 will not find 'pmemfs' from here"
  elif [[ $found != "$LINK_DIR/pmemfs" ]]; then
    die "'pmemfs' on PATH is $found, not $LINK_DIR/pmemfs: remove $found or put $LINK_DIR first in PATH"
  else
    note "$helper runs 'pmemfs' from PATH ($found)"
  fi
}

smoke() {
  step "checking the commands run"
  local c out
  for c in "${COMMANDS[@]}"; do
    if ! out=$("$LINK_DIR/$c" --version 2>&1 </dev/null); then
      printf '%s\n' "$out" | tail -n 8 >&2
      if grep -q ERR_UNKNOWN_FILE_EXTENSION <<<"$out"; then
        die "'$c --version' failed: package.json has \"type\": \"module\", so Node loads bin/$c as an ES module and rejects its '.${c##*.}' extension; the launcher must load as CommonJS (e.g. a bin/package.json containing {\"type\": \"commonjs\"})"
      elif grep -q ERR_MODULE_NOT_FOUND <<<"$out"; then
        die "'$c --version' failed: the build output (dist/) is incomplete; run npm run build and read its errors"
      fi
      die "'$c --version' failed (output above)"
    fi
  done
  note "$("$LINK_DIR/pmemfs" --version)"
}

main() {
  check_host
  install_packages
  check_dev_fuse
  configure_fuse_conf
  install_node_modules
  build
  install_libpmemfs
  link_commands
  check_mount_helper
  smoke
  step "setup complete: try 'npm start' or 'npm test'"
}

main "$@"
