#!/bin/bash
# End to end through containerd: `ctr run --rm --runtime io.containerd.urunc.v2`
# of the tiny test kernel (packed with urunc-pack, imported into a private
# containerd) vs QEMU launched directly with the same argv, N runs each, and
# a busybox `true` through the Go runc shim for reference.
#
#   bench/ctr.sh [N]      (default 20; root, containerd, ctr, qemu-system-x86_64)
set -euo pipefail
N=${1:-20}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for b in containerd ctr qemu-system-x86_64; do
	command -v "$b" >/dev/null || { echo "bench/ctr.sh: SKIP: $b not in PATH"; exit 0; }
done
[ "$(id -u)" = 0 ] || { echo "bench/ctr.sh: SKIP: needs root"; exit 0; }
cd "$HERE"
bash scripts/build-release.sh
bash tests/fixtures/build.sh >/dev/null

D=$(mktemp -d /tmp/urunc-ctr-bench.XXXXXX)
NS=bench SOCK=$D/c.sock DAEMON=
CTR="ctr --address $SOCK --namespace $NS"
cleanup() {
	set +e
	[ -n "$DAEMON" ] && { kill "$DAEMON"; wait "$DAEMON"; } 2>/dev/null
	grep -o " $D/[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done 2>/dev/null
	rm -rf "$D"
}
trap cleanup EXIT
mkdir -p "$D/bin"
ln -s "$HERE/target/shim/containerd-shim-urunc-v2" "$D/bin/"
ln -s "$(readlink -f "$HERE/target/static/urunc")" "$D/bin/"
accel=kvm-tcg; [ -w /dev/kvm ] || accel=tcg
printf '[monitors.qemu]\naccel = "%s"\nmachine = "microvm"\n' "$accel" >"$D/urunc.toml"
cat >"$D/config.toml" <<TOML
version = 2
root = "$D/root"
state = "$D/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$D/opt"
TOML
PATH="$D/bin:$PATH" URUNC_CONFIG="$D/urunc.toml" containerd --config "$D/config.toml" >"$D/containerd.log" 2>&1 &
DAEMON=$!
for _ in $(seq 100); do $CTR version >/dev/null 2>&1 && break; sleep 0.1; done
target/static/urunc-pack --kernel tests/fixtures/build/testkernel.elf --unikernel-type unikraft --hypervisor qemu \
	--cmdline "app hello" --ref localhost/tiny:latest -o "$D/tiny.tar" >/dev/null
$CTR image import "$D/tiny.tar" >/dev/null

now() { date +%s%N; }
u=(); d=()
for i in $(seq "$N"); do
	t0=$(now); $CTR run --rm --runtime io.containerd.urunc.v2 localhost/tiny:latest "t$i" >"$D/out" 2>&1; t1=$(now)
	grep -q "URUNC-TESTKERNEL poweroff" "$D/out" || { echo "run $i failed:"; cat "$D/out"; exit 1; }
	u+=($(( (t1 - t0) / 1000 )))
done
# The same guest started by QEMU directly, with urunc's argv (host paths).
kernel=$(find "$D/root" -path '*snapshots*' -name testkernel.elf | head -1)
argv=(qemu-system-x86_64 -m 256M -smp 1 -accel kvm -accel tcg -M microvm -nographic -vga none
	-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny
	-kernel "$kernel" -nic none -append "app env.vars=[ PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin ] -- hello")
[ "$accel" = tcg ] && argv=(qemu-system-x86_64 -m 256M -smp 1 -accel tcg "${argv[@]:7}")
for i in $(seq "$N"); do
	t0=$(now); "${argv[@]}" >/dev/null 2>&1; t1=$(now)
	d+=($(( (t1 - t0) / 1000 )))
done
stats() { sort -n | awk '{a[NR]=$1; s+=$1} END {printf "mean %8.2f ms   median %8.2f ms\n", s/NR/1000, (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)/1000}'; }
echo "tiny unikernel, $N runs each (KVM: $([ "$accel" = tcg ] && echo no || echo yes), microvm):"
printf '  ctr run --rm --runtime io.containerd.urunc.v2   '; printf '%s\n' "${u[@]}" | stats
printf '  qemu-system-x86_64 directly                    '; printf '%s\n' "${d[@]}" | stats
