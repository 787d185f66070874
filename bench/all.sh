#!/bin/bash
# Every benchmark of issue 14 in one run, printed as ONE table whose rows
# each carry their reference, measured in the same run (paired runs,
# round-robin, so a loud moment slows both sides alike):
#
#   1. full lifecycle of Solo5's test_hello on spt: `urunc run` vs `runc run`
#      of a busybox /bin/true, vs `unshare -fpmniu solo5-spt` (the same
#      namespaces without urunc) and vs solo5-spt directly; CPU time and
#      syscalls per lifecycle (perf stat task-clock, strace -f -c), which
#      stay meaningful on a loaded machine;
#   2. `ctr run --rm` of that unikernel (urunc's shim) vs busybox /bin/true
#      through containerd's runc shim (containerd-shim-runc-v2);
#   3. C concurrent `urunc run` vs C × one alone;
#   4. density: D Solo5 spt unikernels (tests/fixtures/solo5-ping, which
#      waits for pings on its network) running at once through containerd,
#      each in a network namespace of its own with an eth0 as a CNI plugin
#      leaves it: per container, the shim's PSS, the monitor's PSS outside
#      the guest's memory and the guest's, from /proc/PID/smaps_rollup and
#      smaps, beside containerd-shim-runc-v2's PSS for D busybox `sleep`s;
#      and the start of D at once vs D × one;
#   5. the network data path (bench/netpath.sh): HTTP req/s and p99 from a
#      peer namespace to the solo5-http fixture through urunc's tap + tc on
#      spt, hvt and QEMU virtio-net (vhost off; on where /dev/vhost-net
#      exists) vs busybox httpd in a runc container on a veth, round-robin.
#
#   bench/all.sh [-n RUNS] [-c CONCURRENT] [-d DENSITY] [-s SINGLES] [-p REQUESTS]
#     -n  paired lifecycle runs per side (default 20)
#     -c  concurrent `urunc run`s (default 100)
#     -d  unikernels (and busybox references) up at once (default 100; 0 skips)
#     -s  single starts timed for the "× one" references (default 10)
#     -p  HTTP requests per ab run for the data-path rows (default 5000; 0 skips)
#
# Needs root, solo5-spt, runc, busybox (static), containerd + ctr +
# containerd-shim-runc-v2, ip; perf and strace for the counting rows (the
# rows are left out without them); the Solo5 toolchain (/opt/solo5-src) for
# the density rows; ab (apache2-utils), curl, tc for the data-path rows
# (QEMU rows with qemu-system-x86_64). URUNC=<path> picks the urunc binary (default: the
# static release build, built when absent).
set -euo pipefail
N=20 C=100 DENS=100 S=10 REQ=5000
while getopts n:c:d:s:p: o; do
	case $o in
	n) N=$OPTARG ;; c) C=$OPTARG ;; d) DENS=$OPTARG ;; s) S=$OPTARG ;; p) REQ=$OPTARG ;;
	*) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 2 ;;
	esac
done
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { echo "bench/all.sh: $*" >&2; }
[ "$(id -u)" = 0 ] || { say "SKIP: needs root"; exit 0; }
for b in solo5-spt runc unshare containerd ctr containerd-shim-runc-v2 ip; do
	command -v "$b" >/dev/null || { say "SKIP: $b not in PATH"; exit 0; }
done
hello=${TEST_HELLO:-}
for c in /usr/local/lib/solo5-tests/test_hello.spt /opt/solo5-src/tests/test_hello/test_hello.spt; do
	[ -z "$hello" ] && [ -f "$c" ] && hello=$c
done
[ -n "$hello" ] || { say "SKIP: test_hello.spt not found (set TEST_HELLO)"; exit 0; }
busybox=$(command -v busybox || echo /bin/busybox)
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' || { say "SKIP: static busybox not found (busybox-static)"; exit 0; }
cd "$HERE"
if [ -z "${URUNC:-}" ]; then
	[ -x target/static/urunc ] && [ -x target/shim/containerd-shim-urunc-v2 ] || bash scripts/build-release.sh
	URUNC=$HERE/target/static/urunc
fi
SHIM=${SHIM:-$HERE/target/shim/containerd-shim-urunc-v2}
PACK=${PACK:-$HERE/target/static/urunc-pack}
[ -x "$PACK" ] || PACK=$(dirname "$(readlink -f "$URUNC")")/urunc-pack

W=$(mktemp -d /tmp/urunc-bench-all.XXXXXX)
R=$W/run # state roots, on a tmpfs as /run is
mkdir -p "$R"
mount -t tmpfs -o size=256m tmpfs "$R"
NS=uball$$ SOCK=$W/c.sock DAEMON=
CTR="ctr --address $SOCK --namespace $NS"
NETNS=()
cleanup() {
	set +e
	if [ -n "$DAEMON" ]; then
		for t in $($CTR task ls -q 2>/dev/null); do echo "$t"; done |
			xargs -r -P 8 -I{} $CTR task kill -s KILL {} >/dev/null 2>&1
		sleep 0.5
		for t in $($CTR task ls -q 2>/dev/null); do echo "$t"; done |
			xargs -r -P 8 -I{} $CTR task delete -f {} >/dev/null 2>&1
		$CTR container ls -q 2>/dev/null | xargs -r -P 8 -n 20 $CTR container delete >/dev/null 2>&1
		kill "$DAEMON"; wait "$DAEMON"
	fi 2>/dev/null
	for n in "${NETNS[@]}"; do
		ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$n" 2>/dev/null
	done
	grep -o " $W/[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done 2>/dev/null
	rm -rf "$W" "/run/containerd/urunc/$NS" "/run/containerd/runc/$NS" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s%N; }
med() { sort -n | awk '{a[NR]=$1} END {printf "%d\n", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ms() { awk -v u="$1" 'BEGIN{printf "%.2f ms", u/1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f×", a/b; else print "-" }'; }
plus() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%+.2f ms", (a-b)/1000}'; }
ROWS=()
row() { ROWS+=("$(printf '| %s | %s | %s | %s | %s |' "$@")"); }

# ---------------------------------------------------------------- bundles
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
export URUNC_CONFIG=$W/config.toml
K=$W/uk/rootfs/unikernel/hello
u_run() { "$URUNC" --root "$R/urunc" run --bundle "$W/uk" "u$1" >/dev/null 2>&1; }
r_run() { runc --root "$R/runc" run --bundle "$W/bb" "r$1" >/dev/null 2>&1; }
s_run() { unshare -fpmniu solo5-spt --mem=32 "$K" Hello_Solo5 >/dev/null 2>&1; }
d_run() { solo5-spt --mem=32 "$K" Hello_Solo5 >/dev/null 2>&1; }
u_run warm || { say "urunc run of test_hello failed:"; "$URUNC" --root "$R/urunc" run --bundle "$W/uk" warm2 >&2; exit 1; }
r_run warm || { say "runc run of busybox /bin/true failed"; exit 1; }

# ------------------------------------------------- 1. lifecycle, paired
say "lifecycle: $N paired runs"
u=() r=() s=() d=()
for i in $(seq "$N"); do
	t0=$(now); u_run "$i"; t1=$(now); u+=($(((t1 - t0) / 1000)))
	t0=$(now); r_run "$i"; t1=$(now); r+=($(((t1 - t0) / 1000)))
	t0=$(now); s_run; t1=$(now); s+=($(((t1 - t0) / 1000)))
	t0=$(now); d_run; t1=$(now); d+=($(((t1 - t0) / 1000)))
done
mu=$(printf '%s\n' "${u[@]}" | med) mr=$(printf '%s\n' "${r[@]}" | med)
msh=$(printf '%s\n' "${s[@]}" | med) md=$(printf '%s\n' "${d[@]}" | med)
row "\`urunc run\` spt test_hello vs \`runc run\` busybox /bin/true (median of $N)" "$(ms "$mu")" "runc $(ms "$mr")" "$(ratio "$mu" "$mr")" "≤ 0.15×"
row "the same vs \`unshare -fpmniu solo5-spt\` (same namespaces, no urunc)" "$(ms "$mu")" "$(ms "$msh")" "$(plus "$mu" "$msh")" "≤ +1 ms"
row "the same vs \`solo5-spt\` directly" "$(ms "$mu")" "$(ms "$md")" "$(plus "$mu" "$md")" "—"

# CPU time (task-clock of the whole process tree) and syscalls per lifecycle.
if command -v perf >/dev/null && perf stat -e task-clock true >/dev/null 2>&1; then
	cpu() { # command... -> µs of task-clock per run, over N runs
		perf stat -x, -e task-clock -r "$N" -- "$@" 2>&1 >/dev/null | awk -F, '/task-clock/{printf "%d", $1*1000}'
	}
	cu=$(cpu "$URUNC" --root "$R/urunc" run --bundle "$W/uk" cpu)
	cs=$(cpu unshare -fpmniu solo5-spt --mem=32 "$K" Hello_Solo5)
	cr=$(cpu runc --root "$R/runc" run --bundle "$W/bb" cpu)
	row "CPU time per lifecycle (perf task-clock, all processes, mean of $N)" "$(ms "$cu")" "unshare+spt $(ms "$cs"); runc $(ms "$cr")" "$(plus "$cu" "$cs")" "—"
fi
if command -v strace >/dev/null; then
	sc() { strace -f -c -o "$W/sc" "$@" >/dev/null 2>&1; awk '/ total$/{print $4}' "$W/sc"; }
	yu=$(sc "$URUNC" --root "$R/urunc" run --bundle "$W/uk" sc)
	ys=$(sc unshare -fpmniu solo5-spt --mem=32 "$K" Hello_Solo5)
	yd=$(sc solo5-spt --mem=32 "$K" Hello_Solo5)
	yr=$(sc runc --root "$R/runc" run --bundle "$W/bb" sc)
	row "syscalls per lifecycle (strace -f -c; the tender alone makes $yd)" "$yu" "unshare+spt $ys; runc $yr" "$(awk -v a="$yu" -v b="$ys" 'BEGIN{printf "%+d", a-b}')" "—"
fi

# ------------------------------------------- 3. concurrent urunc run
say "$C concurrent urunc run"
one=()
for i in $(seq "$S"); do t0=$(now); u_run "one$i"; t1=$(now); one+=($(((t1 - t0) / 1000))); done
mone=$(printf '%s\n' "${one[@]}" | med)
t0=$(now)
pids=()
for i in $(seq "$C"); do u_run "c$i" & pids+=($!); done
wait "${pids[@]}" || true
t1=$(now)
tc=$(((t1 - t0) / 1000))
left=$(find "$R/urunc" -mindepth 1 -maxdepth 1 | wc -l)
row "$C concurrent \`urunc run\` (all exit; $left state dirs left)" "$(ms "$tc")" "$C × one alone ($(ms "$mone") median of $S) = $(ms $((C * mone)))" "$(ratio "$tc" $((C * mone)))" "≤ 1.2×"

# ---------------------------------------------------------- containerd
mkdir -p "$W/bin"
ln -s "$SHIM" "$W/bin/containerd-shim-urunc-v2"
ln -s "$(readlink -f "$URUNC")" "$W/bin/urunc"
cat >"$W/containerd.toml" <<TOML
version = 2
root = "$W/croot"
state = "$W/cstate"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$W/opt"
TOML
PATH="$W/bin:$PATH" containerd --config "$W/containerd.toml" >"$W/containerd.log" 2>&1 &
DAEMON=$!
for _ in $(seq 100); do $CTR version >/dev/null 2>&1 && break; sleep 0.1; done
$CTR version >/dev/null 2>&1 || { say "containerd did not start: $(tail -3 "$W/containerd.log")"; exit 1; }

# busybox image as an OCI layout archive (as the shim's memory bench builds it)
mkdir -p "$W/img/rootfs/bin" "$W/img/rootfs/proc" "$W/img/rootfs/dev" "$W/img/layout/blobs/sha256"
cp "$busybox" "$W/img/rootfs/bin/busybox"
for a in sh sleep true; do ln -s busybox "$W/img/rootfs/bin/$a"; done
tar --owner=0 --group=0 --numeric-owner -C "$W/img/rootfs" -cf "$W/img/layer.tar" .
blob() { local h; h=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$W/img/layout/blobs/sha256/$h"; echo "$h $(stat -c %s "$1")"; }
read -r LD LS < <(blob "$W/img/layer.tar")
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"config":{"Env":["PATH=/bin"]}}' "$LD" >"$W/img/config.json"
read -r CD CS < <(blob "$W/img/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
	"$CD" "$CS" "$LD" "$LS" >"$W/img/manifest.json"
read -r MD MS < <(blob "$W/img/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"localhost/bench-busybox:latest","org.opencontainers.image.ref.name":"latest"}}]}' \
	"$MD" "$MS" >"$W/img/layout/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$W/img/layout/oci-layout"
tar -C "$W/img/layout" -cf "$W/busybox.tar" .
$CTR image import "$W/busybox.tar" >/dev/null
"$PACK" --kernel "$hello" --unikernel-type mirage --hypervisor spt --cmdline Hello_Solo5 \
	--ref localhost/bench-hello:latest -o "$W/hello.tar" >/dev/null 2>"$W/pack.err" || { cat "$W/pack.err" >&2; exit 1; }
$CTR image import "$W/hello.tar" >/dev/null

# ------------------------------------------------ 2. ctr run --rm, paired
say "ctr run --rm: $N paired runs"
cu_run() { $CTR run --rm --runtime io.containerd.urunc.v2 localhost/bench-hello:latest "$1" >"$W/out" 2>&1; }
cr_run() { $CTR run --rm --runtime io.containerd.runc.v2 localhost/bench-busybox:latest "$1" /bin/true >/dev/null 2>&1; }
cu_run cwarm; grep -q SUCCESS "$W/out" || { say "ctr run of test_hello failed:"; cat "$W/out" >&2; exit 1; }
cr_run crwarm
a=() b=()
for i in $(seq "$N"); do
	t0=$(now); cu_run "cu$i"; t1=$(now); a+=($(((t1 - t0) / 1000)))
	t0=$(now); cr_run "cr$i"; t1=$(now); b+=($(((t1 - t0) / 1000)))
done
ma=$(printf '%s\n' "${a[@]}" | med) mb=$(printf '%s\n' "${b[@]}" | med)
row "\`ctr run --rm\` spt test_hello (urunc shim) vs busybox /bin/true (runc shim), median of $N" "$(ms "$ma")" "runc shim $(ms "$mb")" "$(ratio "$ma" "$mb")" "≤ 0.5×"

# ------------------------------------------------------------ 4. density
if [ "$DENS" -gt 0 ]; then
	if ! bash tests/fixtures/solo5-ping/build.sh "$W/ping" >/dev/null 2>"$W/ping.err"; then
		say "density rows left out: solo5-ping did not build: $(tail -1 "$W/ping.err")"
		DENS=0
	fi
fi
if [ "$DENS" -gt 0 ]; then
	say "density: $DENS unikernels + $DENS busybox sleeps through containerd"
	"$PACK" --kernel "$W/ping/ping.spt" --unikernel-type mirage --hypervisor spt \
		--ref localhost/bench-ping:latest -o "$W/ping.tar" >/dev/null 2>"$W/pack.err" || { cat "$W/pack.err" >&2; exit 1; }
	$CTR image import "$W/ping.tar" >/dev/null
	# One network namespace per container, both veth ends inside it: eth0
	# with an address and a default route, as a CNI plugin leaves a pod's.
	mkns() { # index
		local n=ub$$-$1 a=$(($1 / 250)) b=$(($1 % 250 + 1))
		ip netns add "$n"
		ip -n "$n" link set lo up
		ip -n "$n" link add eth0 type veth peer name gw0
		ip -n "$n" addr add "10.$((200 + a)).$b.2/24" dev eth0
		ip -n "$n" addr add "10.$((200 + a)).$b.1/24" dev gw0
		ip -n "$n" link set gw0 up
		ip -n "$n" link set eth0 up
		ip -n "$n" route add default via "10.$((200 + a)).$b.1" dev eth0 2>/dev/null || true
	}
	total=$((DENS + S))
	for i in $(seq "$total"); do mkns "$i"; NETNS+=("ub$$-$i"); done
	p_run() { $CTR run -d --runtime io.containerd.urunc.v2 --with-ns "network:/var/run/netns/ub$$-$1" \
		localhost/bench-ping:latest "p$1" >/dev/null 2>&1; }
	p_gone() { $CTR task kill -s KILL "p$1" >/dev/null 2>&1; for _ in $(seq 50); do
		$CTR task ls 2>/dev/null | grep -q "^p$1 .*RUNNING" || break; sleep 0.05; done
		$CTR task delete -f "p$1" >/dev/null 2>&1; $CTR container delete "p$1" >/dev/null 2>&1; }
	# "× one": S single starts (ctr run -d returns once the monitor runs).
	one=()
	for i in $(seq "$((DENS + 1))" "$total"); do
		t0=$(now); p_run "$i" || { say "ctr run -d of solo5-ping failed"; exit 1; }; t1=$(now)
		one+=($(((t1 - t0) / 1000)))
		p_gone "$i"
	done
	mone=$(printf '%s\n' "${one[@]}" | med)
	t0=$(now)
	pids=()
	for i in $(seq "$DENS"); do p_run "$i" & pids+=($!); done
	wait "${pids[@]}" || true
	t1=$(now)
	tp=$(((t1 - t0) / 1000))
	running=$($CTR task ls 2>/dev/null | grep -c "^p[0-9]* .*RUNNING" || true)
	sleep 1
	still=$($CTR task ls 2>/dev/null | grep -c "^p[0-9]* .*RUNNING" || true)
	row "start of $DENS spt unikernels at once via containerd (\`ctr run -d\`; $running running, $still a second later)" "$(ms "$tp")" "$DENS × one ($(ms "$mone") median of $S) = $(ms $((DENS * mone)))" "$(ratio "$tp" $((DENS * mone)))" "≤ 1.2×"
	pids=()
	for i in $(seq "$DENS"); do
		$CTR run -d --runtime io.containerd.runc.v2 localhost/bench-busybox:latest "b$i" /bin/sleep 100000 >/dev/null 2>&1 &
		pids+=($!)
		if [ $((i % 10)) = 0 ]; then wait "${pids[@]}" || true; pids=(); fi
	done
	[ ${#pids[@]} = 0 ] || wait "${pids[@]}" || true
	sleep 1
	# PSS (KiB) from smaps_rollup. The guest's share: solo5-spt maps guest
	# memory at 0x10000 (split by the loader's mprotects into several
	# mappings); the tender itself is PIE and its libraries sit far above
	# 4 GiB, so the mappings that start below 4 GiB (8 hex digits) are the
	# guest's.
	pss() { awk '/^Pss:/{print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
	guest_pss() { awk '/^[0-9a-f]+-[0-9a-f]+ /{g = (index($1, "-") == 9)} g && /^Pss:/{t += $2} END{print t + 0}' "/proc/$1/smaps" 2>/dev/null; }
	shims() { for p in /proc/[0-9]*; do tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q "^[^ ]*$1 -namespace $NS " && echo "${p#/proc/}"; done; true; }
	mapfile -t US < <(shims containerd-shim-urunc-v2)
	mapfile -t RS < <(shims containerd-shim-runc-v2)
	# Only the tenders of this run: their network namespace is one of ours.
	ours=()
	for n in "${NETNS[@]}"; do for p in $(ip netns pids "$n" 2>/dev/null); do ours+=("$p"); done; done
	tot=0; for p in "${US[@]}"; do tot=$((tot + $(pss "$p"))); done; us_avg=$(( ${#US[@]} ? tot / ${#US[@]} : 0 ))
	tot=0; for p in "${RS[@]}"; do tot=$((tot + $(pss "$p"))); done; rs_avg=$(( ${#RS[@]} ? tot / ${#RS[@]} : 0 ))
	mt=0 gt=0; for p in "${ours[@]}"; do mt=$((mt + $(pss "$p"))); g=$(guest_pss "$p"); gt=$((gt + ${g:-0})); done
	nm=${#ours[@]}
	mon_avg=$(( nm ? (mt - gt) / nm : 0 )) g_avg=$(( nm ? gt / nm : 0 ))
	# urunc runs only during lifecycle commands: none of ours (--root in
	# this namespace's directory) may stay.
	uleft=0
	for p in $(pgrep -x urunc || true); do
		tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -q -- "/urunc/$NS " && uleft=$((uleft + 1))
	done
	mib() { awk -v k="$1" 'BEGIN{printf "%.2f MiB", k/1024}'; }
	row "shim PSS per container, $DENS up at once (${#US[@]} urunc shims, ${#RS[@]} runc shims)" "$(mib "$us_avg")" "containerd-shim-runc-v2 $(mib "$rs_avg")" "$(ratio "$us_avg" "$rs_avg")" "≤ 0.30 MiB"
	row "monitor (solo5-spt) PSS per container outside the guest's memory ($nm tenders)" "$(mib "$mon_avg")" "guest memory touched: $(mib "$g_avg")" "—" "—"
	row "urunc processes left while $DENS containers run" "$uleft" "0" "—" "0"
fi

# ------------------------------------------------------ 5. network data path
if [ "$REQ" -gt 0 ]; then
	say "network data path: bench/netpath.sh -n $REQ"
	mapfile -t NROWS < <(URUNC=$URUNC bash bench/netpath.sh -m -n "$REQ")
	ROWS+=("${NROWS[@]}")
fi

echo
echo "bench/all.sh: $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; $(date -u +%FT%TZ)"
echo
echo "| what | urunc | reference (same run) | ratio / difference | target |"
echo "|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
