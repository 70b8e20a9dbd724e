# Shared helpers for the operator scripts (sourced, not executed).
# shellcheck shell=bash disable=SC2034  # variables for the scripts that source this

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Cargo puts binaries under $CARGO_TARGET_DIR when it is set; the scripts follow it
# so they always run what they just built.
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# The shipped binaries are static musl builds (no C library needed on the node),
# one Rust target per architecture of a release; the scripts run the amd64 ones
# from RELEASE_DIR. Tests and lints (cargo test, clippy) stay on the host target.
declare -A RELEASE_TARGETS=([amd64]=x86_64-unknown-linux-musl [arm64]=aarch64-unknown-linux-musl)
RELEASE_TARGET=${RELEASE_TARGETS[amd64]}
RELEASE_DIR="$TARGET_DIR/$RELEASE_TARGET/release"
BUILD_CMD="cargo build --release --workspace --target $RELEASE_TARGET"
# release_dir ARCH: where cargo puts ARCH's (amd64, arm64) release binaries.
# The word `file` prints for each architecture of a release.
declare -A FILE_ARCH=([amd64]=x86-64 [arm64]=aarch64)
release_dir() { printf '%s/%s/release' "$TARGET_DIR" "${RELEASE_TARGETS[$1]:?unknown architecture $1}"; }
REFERENCE_DIR="${REFERENCE_DIR:-/usr/lib/cni}"
# The CNI plugins this project ships, named once for every script (install,
# image, release, their tests). A third plugin is added here (and to the
# Rust side's `cni_testkit::PLUGINS`, which the suite and the bench read).
PLUGINS=(sbr bandwidth)
# The plugins in `sort` order, one line, space after each (as a listing of
# the installed files compares to it).
plugins_sorted() { printf '%s\n' "${PLUGINS[@]}" | sort | tr '\n' ' '; }

# Everything an operator script may need, as Debian packages.
ALL_PACKAGES=(iproute2 containernetworking-plugins iperf3 iputils-ping podman runc containerd protobuf-compiler
  busybox-static buildah file time shellcheck jq qemu-user-static qemu-system-arm
  qemu-system-x86)

if [[ -t 1 ]]; then
  C_BOLD=$'\e[1m' C_GREEN=$'\e[32m' C_RED=$'\e[31m' C_DIM=$'\e[2m' C_OFF=$'\e[0m'
else
  C_BOLD='' C_GREEN='' C_RED='' C_DIM='' C_OFF=''
fi

say() { printf '%s\n' "$*"; }
heading() { printf '\n%s== %s ==%s\n' "$C_BOLD" "$*" "$C_OFF"; }
die() { printf '%serror:%s %s\n' "$C_RED" "$C_OFF" "$*" >&2; exit 1; }

need_root() {
  [[ $(id -u) -eq 0 ]] || die "$(basename "$0") needs root (it creates network namespaces)"
}

# Installs the given Debian packages that are missing; runs `apt-get update` at most once.
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  ((${#missing[@]} == 0)) && return 0
  [[ $(id -u) -eq 0 ]] || die "missing packages ${missing[*]} and not root to install them"
  say "installing missing packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# rustup's default location, for shells (sudo, CI) whose PATH lacks it.
if ! command -v cargo >/dev/null && [[ -x ${HOME:-/root}/.cargo/bin/cargo ]]; then
  export PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi

# ensure_rust [TRIPLE...]: makes sure cargo, rustfmt and clippy are there (rustup
# components when rustup is), and the standard library of each Rust target given.
ensure_rust() {
  command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs)"
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    command -v rustup >/dev/null || die "cargo fmt / cargo clippy missing and no rustup to add them"
    rustup component add rustfmt clippy
  fi
  (($#)) || return 0
  local sysroot t missing=()
  sysroot=$(rustc --print sysroot)
  for t in "$@"; do
    [[ -d $sysroot/lib/rustlib/$t/lib ]] || missing+=("$t")
  done
  ((${#missing[@]} == 0)) && return 0
  command -v rustup >/dev/null || die "Rust targets ${missing[*]} missing and no rustup to add them"
  rustup target add "${missing[@]}"
}

# build_release_for ARCH: the release binaries of the whole workspace (plugins,
# installer, cni-run, the conformance suite) for ARCH (amd64, arm64). Always the
# whole workspace: a build of fewer packages unifies dependency features
# differently and would rebuild the plugins.
build_release_for() {
  local target=${RELEASE_TARGETS[$1]:?unknown architecture $1}
  ensure_rust "$target"
  # protoc: the conformance suite's CRI client (k8s-cri) is generated at build time.
  ensure_packages protobuf-compiler
  (cd "$ROOT" && cargo build --release --workspace --target "$target")
}

# The amd64 release binaries into RELEASE_DIR.
build_release() { build_release_for amd64; }

# The version of the workspace (workspace.package in Cargo.toml), e.g. 0.1.0.
workspace_version() {
  awk '/^\[/ { section = $0 } section == "[workspace.package]" && $1 == "version" { gsub(/"/, "", $3); print $3; exit }' \
    "$ROOT/Cargo.toml"
}

# tarball_name ARCH: the release tarball of ARCH for this workspace's version.
tarball_name() { printf 'cni-sbr-bandwidth-linux-%s-v%s.tgz' "$1" "$(workspace_version)"; }

# static_musl FILE ARCH: FILE is a static executable for ARCH (the word `file`
# prints: x86-64, aarch64) with no glibc in it (glibc leaves its ABI note, which
# `file` shows as "for GNU/Linux", and its tunables in a static binary).
static_musl() {
  local out
  out=$(file -L "$1")
  echo "$out"
  grep -Eq 'statically linked|static-pie linked' <<<"$out" || { echo "$1 is not statically linked"; return 1; }
  grep -q "$2" <<<"$out" || { echo "$1 is not an $2 executable"; return 1; }
  if grep -q 'GNU/Linux' <<<"$out" || grep -aq GLIBC_TUNABLES "$1"; then
    echo "$1 has glibc in it"; return 1
  fi
}

# check DESCRIPTION CMD...: one counted check of a test script, said as ok or FAIL;
# checks_passed WHAT ends the script with an error when any of them failed.
failures=0
check() {
  local what=$1; shift
  if "$@"; then say "ok   $what"; else say "FAIL $what"; failures=$((failures + 1)); fi
}
checks_passed() { ((failures == 0)) || die "$failures $1 check(s) failed"; }

# Seconds since the epoch with microseconds (bash 5).
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# Prints the calling script's header comment (its help text).
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
