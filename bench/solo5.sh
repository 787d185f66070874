#!/bin/bash
# Full lifecycle (create → start → guest exits → delete) of Solo5's own
# test_hello on solo5-spt, N runs each, side by side:
#   1. through `urunc run` (new pid, mount, ipc, uts, network namespaces;
#      sandbox root; the tender's own seccomp);
#   2. solo5-spt launched directly with the same arguments;
#   3. runc's lifecycle of a busybox /bin/true (reference OCI runtime).
#
#   bench/solo5.sh [N]     (default 30; root; solo5-spt, runc, busybox)
# TEST_HELLO=<path> picks the unikernel (default: looked up like the tests).
set -euo pipefail
N=${1:-30}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "bench/solo5.sh: SKIP: needs root"; exit 0; }
command -v solo5-spt >/dev/null || { echo "bench/solo5.sh: SKIP: solo5-spt not in PATH"; exit 0; }
command -v runc >/dev/null || { echo "bench/solo5.sh: SKIP: runc not in PATH"; exit 0; }
hello=${TEST_HELLO:-}
for c in /usr/local/lib/solo5-tests/test_hello.spt /opt/solo5-src/tests/test_hello/test_hello.spt; do
	[ -z "$hello" ] && [ -f "$c" ] && hello=$c
done
[ -n "$hello" ] || { echo "bench/solo5.sh: SKIP: test_hello.spt not found (set TEST_HELLO)"; exit 0; }
busybox=$(command -v busybox || echo /bin/busybox)
[ -x "$busybox" ] || { echo "bench/solo5.sh: SKIP: busybox not found"; exit 0; }
URUNC=${URUNC:-$HERE/target/static/urunc}
[ -x "$URUNC" ] || bash "$HERE/scripts/build-release.sh"

W=$(mktemp -d /tmp/urunc-bench-solo5.XXXXXX)
# State roots on tmpfs, where runtimes keep them in production (/run/urunc,
# /run/runc).
R=$(mktemp -d /run/urunc-bench-solo5.XXXXXX)
# /run is a tmpfs on most hosts; make sure it is one here too.
mount -t tmpfs -o size=64m tmpfs "$R"
trap 'umount "$R"; rm -rf "$W" "$R"' EXIT
mkdir -p "$W/uk/rootfs/unikernel" "$W/bb/rootfs/bin" "$W/bb/rootfs/proc"
cp "$hello" "$W/uk/rootfs/unikernel/hello"
cp "$busybox" "$W/bb/rootfs/bin/busybox"
ln -s busybox "$W/bb/rootfs/bin/true"
ns='[{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network"}]'
cat >"$W/uk/config.json" <<JSON
{"ociVersion": "1.0.2",
 "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["Hello_Solo5"], "env": [], "cwd": "/"},
 "root": {"path": "rootfs"},
 "annotations": {"com.urunc.unikernel.unikernelType": "mirage", "com.urunc.unikernel.hypervisor": "spt",
                 "com.urunc.unikernel.binary": "/unikernel/hello"},
 "linux": {"namespaces": $ns, "resources": {"memory": {"limit": 33554432}}, "seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}}}
JSON
cat >"$W/bb/config.json" <<JSON
{"ociVersion": "1.0.2",
 "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["/bin/true"], "env": ["PATH=/bin"], "cwd": "/"},
 "root": {"path": "rootfs"},
 "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
 "linux": {"namespaces": $ns}}
JSON
: >"$W/config.toml"
export URUNC_CONFIG="$W/config.toml"
now() { date +%s%N; }
u=(); d=(); r=()
# Each in its own block: a runtime's asynchronous teardown (network
# namespaces are destroyed by a kernel worker) then slows only its own runs.
for i in $(seq "$N"); do
	t0=$(now); "$URUNC" --root "$R/urunc" run --bundle "$W/uk" "u$i" >/dev/null 2>&1; t1=$(now); u+=($(( (t1 - t0) / 1000 )))
done
for i in $(seq "$N"); do
	t0=$(now); solo5-spt --mem=32 "$W/uk/rootfs/unikernel/hello" Hello_Solo5 >/dev/null 2>&1; t1=$(now); d+=($(( (t1 - t0) / 1000 )))
done
for i in $(seq "$N"); do
	t0=$(now); runc --root "$R/runc" run --bundle "$W/bb" "r$i" >/dev/null 2>&1; t1=$(now); r+=($(( (t1 - t0) / 1000 )))
done
med() { sort -n | awk '{a[NR]=$1; s+=$1} END {printf "mean %8.2f ms   median %8.2f ms", s/NR/1000, (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)/1000}'; }
echo "solo5-spt test_hello, full lifecycle, $N runs each:"
printf '  urunc run (create+start+exit+delete)  '; printf '%s\n' "${u[@]}" | med; echo
printf '  solo5-spt directly                    '; printf '%s\n' "${d[@]}" | med; echo
printf '  runc run busybox /bin/true            '; printf '%s\n' "${r[@]}" | med; echo
mu=$(printf '%s\n' "${u[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
md=$(printf '%s\n' "${d[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
mr=$(printf '%s\n' "${r[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
awk -v u="$mu" -v d="$md" -v r="$mr" 'BEGIN{printf "  urunc adds %.2f ms to the direct launch (median); runc is %.1fx slower than urunc\n", (u-d)/1000, r/u}'
