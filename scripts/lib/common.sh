# Shared helpers for the operator scripts (sourced, not executed).
# shellcheck shell=bash disable=SC2034  # variables for the scripts that source this

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Cargo puts binaries under $CARGO_TARGET_DIR when it is set; the scripts follow it
# so they always run what they just built.
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
RELEASE_DIR="$TARGET_DIR/release"
REFERENCE_DIR="${REFERENCE_DIR:-/usr/lib/cni}"

# Everything an operator script may need, as Debian packages.
ALL_PACKAGES=(iproute2 containernetworking-plugins iperf3 iputils-ping podman runc containerd protobuf-compiler busybox-static hyperfine buildah file time shellcheck)

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

# Makes sure cargo, rustfmt and clippy are there (rustup components when rustup is).
ensure_rust() {
  command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs)"
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    command -v rustup >/dev/null || die "cargo fmt / cargo clippy missing and no rustup to add them"
    rustup component add rustfmt clippy
  fi
}

build_release() {
  # protoc: the conformance suite's CRI client (k8s-cri) is generated at build time.
  ensure_packages protobuf-compiler
  (cd "$ROOT" && cargo build --release --workspace)
}

# Seconds since the epoch with microseconds (bash 5).
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# Prints the calling script's header comment (its help text).
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
