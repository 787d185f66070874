#!/bin/bash
# Runs the whole test suite (as root, on Debian 12): formatting and lints,
# the test fixtures, then every crate's unit and integration tests (real
# QEMU boots, network namespaces, containerd, podman). Tests that need a
# monitor that is not installed (firecracker, solo5-*) print SKIP lines.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$HERE"
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
[ "$(id -u)" = 0 ] && bash scripts/install.sh --deps

# Engines and images built by hand on this machine, when present (see
# tests/fixtures/README.md): the CRI and ctr cases also run on containerd 2.x.
if [ -z "${URUNC_TEST_CONTAINERD:-}" ] && [ -x /opt/containerd-2.1.5/bin/containerd ]; then
	export URUNC_TEST_CONTAINERD=/opt/containerd-2.1.5/bin/containerd
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy -q --workspace --all-targets -- -D warnings
echo "== fixtures"
bash tests/fixtures/build.sh
echo "== cargo test"
cargo test --workspace --no-fail-fast -- --nocapture 2>&1 | tee /tmp/urunc-test.log
echo "== skipped:"
grep -a -h '^SKIP' /tmp/urunc-test.log | sort -u || echo "  (none)"
