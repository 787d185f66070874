#!/bin/bash
# urunc's cost on top of QEMU, for the project's tiny test kernel:
#   1. create→execve per step, from urunc's own timestamps (TS00..TS16);
#   2. the full lifecycle (create, start, guest boots and powers off, delete)
#      through `urunc run` vs QEMU launched directly with the very same argv
#      (taken from urunc's debug log), N runs each, side by side.
#
#   bench/lifecycle.sh [N]      (default 30; needs root and qemu-system-x86_64)
#
# URUNC=<path> picks the binary (default target/static/urunc, built if absent).
set -euo pipefail

N=${1:-30}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "$(id -u)" != 0 ]; then echo "bench/lifecycle.sh: SKIP: needs root"; exit 0; fi
if ! command -v qemu-system-x86_64 >/dev/null; then echo "bench/lifecycle.sh: SKIP: qemu-system-x86_64 not in PATH"; exit 0; fi
URUNC=${URUNC:-$HERE/target/static/urunc}
[ -x "$URUNC" ] || bash "$HERE/scripts/build-release.sh"
bash "$HERE/tests/fixtures/build.sh" >/dev/null

work=$(mktemp -d /tmp/urunc-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bundle/rootfs/unikernel"
cp "$HERE/tests/fixtures/build/testkernel.elf" "$work/bundle/rootfs/unikernel/kernel"
accel=kvm-tcg
[ -w /dev/kvm ] || accel=tcg
cat >"$work/config.toml" <<TOML
[timestamps]
enabled = true
destination = "$work/ts.log"
[monitors.qemu]
accel = "$accel"
machine = "microvm"
TOML
cat >"$work/bundle/config.json" <<JSON
{
  "ociVersion": "1.0.2",
  "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["app", "hello"], "env": [], "cwd": "/"},
  "root": {"path": "rootfs"},
  "hostname": "bench",
  "annotations": {
    "com.urunc.unikernel.unikernelType": "unikraft",
    "com.urunc.unikernel.hypervisor": "qemu",
    "com.urunc.unikernel.binary": "/unikernel/kernel"
  },
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network"}],
    "seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}
  }
}
JSON
export URUNC_CONFIG="$work/config.toml"
now() { date +%s%N; }

# Warm-up run that also records the monitor argv.
"$URUNC" --root "$work/state" --debug --log "$work/log.json" --log-format json run --bundle "$work/bundle" warm >/dev/null 2>&1
argv_json=$(grep -o '"msg":"container warm: monitor argv [^"]*\(\\"[^"]*\)*"' "$work/log.json" | head -1 | sed 's/^"msg":"container warm: monitor argv //; s/"$//; s/\\"/"/g')
mapfile -t argv < <(jq -r '.[]' <<<"$argv_json" | sed "s|^/rootfs/|$work/bundle/rootfs/|")
: >"$work/ts.log"

u=(); d=()
for i in $(seq "$N"); do
	t0=$(now); "$URUNC" --root "$work/state" run --bundle "$work/bundle" "b$i" >/dev/null 2>&1; t1=$(now)
	u+=($(( (t1 - t0) / 1000 )))
	t0=$(now); "${argv[@]}" >/dev/null 2>&1; t1=$(now)
	d+=($(( (t1 - t0) / 1000 )))
done

stats() { sort -n | awk '{a[NR]=$1; s+=$1} END {printf "mean %8.2f ms   median %8.2f ms", s/NR/1000, (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)/1000}'; }
echo "urunc create→execve, per step (median over $N runs, µs since the previous step):"
jq -r '[.containerID, .timestampID, .time] | @tsv' "$work/ts.log" | awk -F'\t' '
	{ if ($1 != id) { id = $1; prev = $3 } ; d = ($3 - prev) / 1000; prev = $3; print $2 "\t" d }' |
	sort -k1,1 -k2,2n | awk -F'\t' '{ v[$1] = v[$1] " " $2; n[$1]++ }
	END { for (k in v) { split(substr(v[k],2), a, " "); m = a[int((n[k]+1)/2)]; printf "  %s %10.1f\n", k, m } }' | sort
awk_total=$(jq -r '[.containerID, .timestampID, .time] | @tsv' "$work/ts.log" | awk -F'\t' '
	{t[$1 FS $2]=$3; ids[$1]=1} END{for(k in ids) print (t[k FS "TS03"]-t[k FS "TS00"] + t[k FS "TS15"]-t[k FS "TS10"])/1000}' | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
echo "  TS00→TS15 time urunc itself spends: create (TS00→TS03) + start until the monitor's execve (TS10→TS15): ${awk_total} µs median"
echo
echo "full lifecycle, $N runs each (KVM: $([ "$accel" = tcg ] && echo no || echo yes), machine microvm):"
printf '  urunc run (create+start+wait+delete)  '; printf '%s\n' "${u[@]}" | stats; echo
printf '  qemu-system-x86_64 directly           '; printf '%s\n' "${d[@]}" | stats; echo
mu=$(printf '%s\n' "${u[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
md=$(printf '%s\n' "${d[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
echo "  urunc adds (median): $(awk -v a="$mu" -v b="$md" 'BEGIN{printf "%.2f ms", (a-b)/1000}')"
