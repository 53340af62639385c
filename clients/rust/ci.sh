#!/usr/bin/env bash
# The Rust crate's checks, offline: rustfmt, clippy, a release build and the tests.
#
# Crates come from Debian's packaged sources (/usr/share/cargo/registry, the
# librust-*-dev packages) through .cargo-offline/config.toml, never from the
# network; --locked keeps Cargo.lock as committed. Run from anywhere:
#   bash clients/rust/ci.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

config=.cargo-offline/config.toml
export CARGO_NET_OFFLINE=true
# Build where cargo would by default (clients/rust/target) unless told otherwise.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

notice() { echo "statehub-rs ci: $*" >&2; }

if [ ! -d /usr/share/cargo/registry ]; then
    notice "error: /usr/share/cargo/registry is missing; install the crates with"
    notice "  apt-get install \$(grep librust ../../scripts/debian-packages.txt)"
    exit 1
fi

# `--config` goes after the subcommand: `cargo clippy` runs cargo again and only
# forwards the arguments that follow it.
if cargo fmt --version >/dev/null 2>&1; then
    notice "cargo fmt --check"
    cargo fmt --check
else
    notice "NOTICE: rustfmt is not installed; skipping the format check (rustup component add rustfmt)"
fi

if cargo clippy --version >/dev/null 2>&1; then
    notice "cargo clippy --all-targets -- -D warnings"
    cargo clippy --config "$config" --locked --all-targets -- -D warnings
else
    notice "NOTICE: clippy is not installed; skipping the lints (rustup component add clippy)"
fi

notice "cargo build --release"
cargo build --config "$config" --locked --release

notice "cargo test"
cargo test --config "$config" --locked
