#!/bin/bash
# Installs what urunc needs on Debian 12 (as root), builds and installs
# urunc, containerd-shim-urunc-v2 and urunc-pack into /usr/local/bin, then
# runs urunc's main job (scripts/demo.sh): a Linux guest packed as an OCI
# image, run through containerd, serving a page.
#
#   scripts/install.sh            deps + build + install + demo (scripts/demo.sh)
#   scripts/install.sh --deps     Debian packages only
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Debian packages: monitors and guests (qemu, a guest kernel, busybox for the
# test initramfs, tools to build test kernels and disks), engines (containerd,
# runc, podman, skopeo, umoci), network tools for tests (iproute2; nftables only
# to inspect what urunc made; apache2-utils' ab for bench/netmodes.sh and bench/netpath.sh), CNI
# plugins for the CRI tests (bridge, host-local, loopback), protoc (the CRI
# client's protos are compiled at build time), and jq/curl for scripts.
PACKAGES=(
	build-essential binutils pkg-config ca-certificates curl jq
	qemu-system-x86 linux-image-amd64 busybox-static cpio gzip xz-utils zstd e2fsprogs util-linux
	iproute2 iputils-ping netcat-openbsd nftables apache2-utils
	containerd runc podman skopeo umoci containernetworking-plugins protobuf-compiler
)

deps() {
	local missing=()
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "installing Debian packages: ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq "${missing[@]}" >/dev/null
	fi
	if ! command -v cargo >/dev/null; then
		[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
	fi
	if ! command -v cargo >/dev/null; then
		echo "install.sh: a Rust toolchain (cargo, rustc >= 1.87) is needed: install it with rustup (https://rustup.rs)" >&2
		exit 1
	fi
}

[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
deps
[ "${1:-}" = "--deps" ] && exit 0

cd "$HERE"
echo "building urunc (release)..."
bash scripts/build-release.sh
install -m 0755 target/static/urunc target/static/urunc-pack target/shim/containerd-shim-urunc-v2 /usr/local/bin/
echo "installed /usr/local/bin/{urunc,urunc-pack,containerd-shim-urunc-v2}"

# The main job: a Linux guest packed with urunc-pack, imported into a
# private containerd and run through the shim and urunc on QEMU, serving a
# page that curl fetches (scripts/demo.sh; it removes what it made).
exec bash scripts/demo.sh
