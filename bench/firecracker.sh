#!/bin/bash
# Boot-to-exit wall time of the project's Firecracker test kernel
# (tests/fixtures/build/fckernel.elf), N runs each:
#   - through urunc:  urunc run (create + start + wait + delete; new pid,
#     mount, ipc, uts and network namespaces; sandbox root; seccomp on)
#   - directly:       firecracker --no-api --config-file <same config>
# and prints mean and median side by side.
#
#   bench/firecracker.sh [N]        (default 20; needs root and /dev/kvm)
#
# URUNC=<path> picks the urunc binary (default: target/static/urunc, built
# with cargo when absent). Exits 0 with a message when firecracker is absent.
set -euo pipefail

N=${1:-20}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FC=$(command -v firecracker || true)
if [ -z "$FC" ]; then
	echo "bench/firecracker.sh: SKIP: firecracker not found in PATH"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "bench/firecracker.sh: SKIP: needs root" >&2
	exit 0
fi
if [ ! -w /dev/kvm ]; then
	echo "bench/firecracker.sh: SKIP: /dev/kvm is not usable" >&2
	exit 0
fi
URUNC=${URUNC:-$HERE/target/static/urunc}
if [ ! -x "$URUNC" ]; then
	bash "$HERE/scripts/build-release.sh"
fi
bash "$HERE/tests/fixtures/build.sh" >/dev/null

work=$(mktemp -d /tmp/urunc-bench-fc.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bundle/rootfs/unikernel" "$work/root"
cp "$HERE/tests/fixtures/build/fckernel.elf" "$work/bundle/rootfs/unikernel/kernel"
: >"$work/config.toml"
cat >"$work/bundle/config.json" <<JSON
{
  "ociVersion": "1.0.2",
  "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["app"], "env": [], "cwd": "/"},
  "root": {"path": "rootfs", "readonly": false},
  "hostname": "bench",
  "annotations": {
    "com.urunc.unikernel.unikernelType": "unikraft",
    "com.urunc.unikernel.hypervisor": "firecracker",
    "com.urunc.unikernel.binary": "/unikernel/kernel"
  },
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network"}],
    "seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}
  }
}
JSON
# What urunc writes for this bundle (Unikraft words "app --", default
# 256 MiB and 1 vCPU), with host paths.
cat >"$work/fc.json" <<JSON
{
  "boot-source": {"kernel_image_path": "$work/bundle/rootfs/unikernel/kernel", "boot_args": "app --"},
  "machine-config": {"vcpu_count": 1, "mem_size_mib": 256, "smt": false},
  "drives": [],
  "network-interfaces": []
}
JSON

now() { date +%s%N; }
run_urunc() {
	URUNC_CONFIG=$work/config.toml "$URUNC" --root "$work/root" run --bundle "$work/bundle" "bench-$1" >"$work/out" 2>&1
}
run_direct() {
	"$FC" --no-api --config-file "$work/fc.json" --level Warning >"$work/out" 2>&1
}
check() {
	grep -q "URUNC-FCKERNEL cmdline: app --" "$work/out" || {
		echo "bench/firecracker.sh: $1 run did not boot the kernel:" >&2
		cat "$work/out" >&2
		exit 1
	}
}

: >"$work/t.urunc"
: >"$work/t.direct"
run_urunc warmup && check urunc
run_direct && check direct
for i in $(seq 1 "$N"); do
	t0=$(now); run_urunc "$i"; t1=$(now); check urunc
	echo $(((t1 - t0) / 1000)) >>"$work/t.urunc"
	t0=$(now); run_direct; t1=$(now); check direct
	echo $(((t1 - t0) / 1000)) >>"$work/t.direct"
done

stats() { # file -> "mean median" in ms
	sort -n "$1" | awk '{a[NR]=$1; s+=$1} END {
		m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2;
		printf "%.1f %.1f", s/NR/1000, m/1000 }'
}
read -r um umed <<<"$(stats "$work/t.urunc")"
read -r dm dmed <<<"$(stats "$work/t.direct")"
echo "fckernel boot-to-exit, $N runs each ($($FC --version 2>/dev/null | head -1))"
printf '%-34s %10s %10s\n' "" "mean ms" "median ms"
printf '%-34s %10s %10s\n' "urunc run" "$um" "$umed"
printf '%-34s %10s %10s\n' "firecracker --no-api --config-file" "$dm" "$dmed"
