#!/bin/bash
# The network data path, same run: HTTP requests/s and p99 latency from a
# peer namespace (`ab`, apache2-utils) to a unikernel guest through urunc's
# tap + tc redirect, against the same request answered by a runc container
# on a veth. Each server sits in a pod namespace of its own whose eth0 is a
# veth to the one peer namespace, as a CNI plugin leaves a pod:
#
#   Solo5 spt / Solo5 hvt   tests/fixtures/solo5-ping's http fixture (a
#                           stateless TCP/HTTP responder, see http.c) through
#                           `urunc` (MirageOS on spt, hvt with /dev/kvm); spt
#                           a second time in shared mode (the pod IP stays
#                           on eth0, nftables DNAT to the guest's /30)
#   QEMU virtio-net         the same fixture built for Solo5's virtio target,
#                           vhost-net off, then on (`[monitors.qemu] vhost`;
#                           "not measurable" without /dev/vhost-net). QEMU
#                           runs it under TCG by default (QEMU_ACCEL=kvm for a
#                           host whose KVM runs Solo5's virtio boot code: this
#                           nested one cannot emulate its SSE instructions)
#   reference               busybox httpd (busybox-static) serving the same
#                           body from a runc container in its own pod namespace
#
# Rounds go round-robin over the servers (all up at once), so a loud moment
# of the machine slows every row alike; the figures are medians over rounds.
# ab's p99 comes from its -e CSV (sub-millisecond resolution).
#
#   bench/netpath.sh [-n REQUESTS] [-c CONCURRENCY] [-k ROUNDS] [-t SECONDS] [-m]
#     -n  requests per ab run (default 5000)   -c  ab's concurrency (default 8)
#     -k  rounds (default 3)                    -t  at most this long per ab run (default 5)
#     -m  print only bench/all.sh's table rows (what | urunc | reference | ratio | target)
#
# Needs root, ip, tc, ab, curl, runc, busybox (static), solo5-spt, the Solo5
# toolchain (/opt/solo5-src) for the fixture; qemu-system-x86_64 and
# solo5-hvt rows are left out without them. URUNC=<path> picks urunc
# (default target/debug/urunc, built when absent).
set -euo pipefail
N=5000 C=8 K=3 T=5 MD=
while getopts n:c:k:t:m o; do
	case $o in
	n) N=$OPTARG ;; c) C=$OPTARG ;; k) K=$OPTARG ;; t) T=$OPTARG ;; m) MD=1 ;;
	*) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 2 ;;
	esac
done
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { echo "bench/netpath.sh: $*" >&2; }
[ "$(id -u)" = 0 ] || { say "SKIP: needs root"; exit 0; }
for b in ip tc ab curl runc solo5-spt; do
	command -v "$b" >/dev/null || { say "SKIP: $b not in PATH"; exit 0; }
done
busybox=$(command -v busybox || echo /bin/busybox)
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' || { say "SKIP: static busybox not found (busybox-static)"; exit 0; }
URUNC=${URUNC:-$HERE/target/debug/urunc}
[ -x "$URUNC" ] || (cd "$HERE" && cargo build -q -p urunc)
ACCEL=${QEMU_ACCEL:-tcg}

W=$(mktemp -d /tmp/urunc-netpath.XXXXXX)
set +e
bash "$HERE/tests/fixtures/solo5-ping/build.sh" "$W/fx" >/dev/null 2>"$W/fx.err"
rc=$?
set -e
if [ $rc = 3 ]; then say "SKIP: $(cat "$W/fx.err")"; rm -rf "$W"; exit 0; fi
[ $rc = 0 ] || { cat "$W/fx.err" >&2; rm -rf "$W"; exit 1; }

PEER=unp$$g
PODS=() UIDS=() RUNC_ID=
cleanup() {
	set +e
	for id in "${UIDS[@]}"; do "$URUNC" --root "$W/state" delete --force "$id" >/dev/null 2>&1; done
	[ -n "$RUNC_ID" ] && runc --root "$W/runc" delete --force "$RUNC_ID" >/dev/null 2>&1
	for n in "${PODS[@]}" "$PEER"; do
		ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$n" 2>/dev/null
	done
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ip netns add "$PEER"
ip -n "$PEER" link set lo up

# Pod namespace I: eth0 10.204.I.2/24, default route via the peer's
# v<I> (10.204.I.1). Prints the pod's address.
mkpod() {
	local n=unp$$p$1
	ip netns add "$n"
	PODS+=("$n")
	ip -n "$n" link set lo up
	ip -n "$n" link add eth0 type veth peer name "v$1" netns "$PEER"
	ip -n "$n" addr add "10.204.$1.2/24" dev eth0
	ip -n "$n" link set eth0 up
	ip -n "$n" route add default via "10.204.$1.1"
	ip -n "$PEER" addr add "10.204.$1.1/24" dev "v$1"
	ip -n "$PEER" link set "v$1" up
}

BODY='hello from urunc solo5-http'
ns='{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}'
# A urunc bundle for fixture FILE on HYPERVISOR in pod I (EXTRA: more
# annotations, JSON members).
ubundle() { # I HYPERVISOR FILE [EXTRA]
	local b=$W/b$1
	mkdir -p "$b/rootfs/unikernel"
	cp "$W/fx/$3" "$b/rootfs/unikernel/http"
	cat >"$b/config.json" <<JSON
{"ociVersion": "1.0.2",
 "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": [], "env": [], "cwd": "/"},
 "root": {"path": "rootfs"},
 "annotations": {"com.urunc.unikernel.unikernelType": "mirage", "com.urunc.unikernel.hypervisor": "$2",
                 "com.urunc.unikernel.binary": "/unikernel/http"${4:+, $4}},
 "linux": {"namespaces": [$ns, {"type": "network", "path": "/var/run/netns/unp$$p$1"}],
           "resources": {"memory": {"limit": 67108864}}, "seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}}}
JSON
	echo "$b"
}

# Rows: NAME|ADDRESS. Up one after another; a server that does not come up
# is an error.
ROWS=()
start_urunc() { # I HYPERVISOR FILE NAME [CONFIG [EXTRA]]
	local b id=np$1
	mkpod "$1"
	b=$(ubundle "$1" "$2" "$3" "${6:-}")
	printf '%s' "${5:-}" >"$W/c$1.toml"
	UIDS+=("$id")
	URUNC_CONFIG=$W/c$1.toml "$URUNC" --root "$W/state" create --bundle "$b" "$id" >"$W/$id.out" 2>&1 </dev/null ||
		{ say "urunc create ($4): $(tail -3 "$W/$id.out")"; exit 1; }
	URUNC_CONFIG=$W/c$1.toml "$URUNC" --root "$W/state" start "$id" ||
		{ say "urunc start ($4) failed"; exit 1; }
	for _ in $(seq 600); do grep -q "URUNC-SOLO5-HTTP port" "$W/$id.out" && break; sleep 0.1; done
	grep -q "URUNC-SOLO5-HTTP port" "$W/$id.out" || { say "$4 did not come up: $(tail -5 "$W/$id.out")"; exit 1; }
	ROWS+=("$4|10.204.$1.2")
}
start_urunc 1 spt http.spt "Solo5 spt (tap + tc)"
# Shared mode: the pod IP stays on eth0; nftables DNATs port 80 to the
# guest's /30 on its tap.
start_urunc 5 spt http.spt "Solo5 spt, shared mode (tap + nftables DNAT)" "" \
	'"com.urunc.network.mode": "shared", "com.urunc.network.ports": "80/tcp"'
if command -v solo5-hvt >/dev/null && [ -e /dev/kvm ]; then
	start_urunc 2 hvt http.hvt "Solo5 hvt (KVM; tap + tc)"
else
	say "Solo5 hvt row left out: no solo5-hvt or /dev/kvm"
fi
VHOST_NOTE=
if command -v qemu-system-x86_64 >/dev/null; then
	qc="[monitors.qemu]
accel = \"$ACCEL\"
machine = \"pc\"
cpu = \"max\"
"
	start_urunc 3 qemu http.virtio "QEMU ($ACCEL) virtio-net, vhost off (tap + tc)" "${qc}vhost = false
"
	if [ -c /dev/vhost-net ]; then
		start_urunc 4 qemu http.virtio "QEMU ($ACCEL) virtio-net, vhost on (tap + tc)" "${qc}vhost = true
"
	else
		VHOST_NOTE="QEMU ($ACCEL) virtio-net, vhost on (tap + tc)|not measurable here: no /dev/vhost-net"
	fi
else
	say "QEMU rows left out: no qemu-system-x86_64"
fi

# The reference: busybox httpd in a runc container on pod 9's veth.
mkpod 9
rb=$W/rb
mkdir -p "$rb/rootfs/bin" "$rb/rootfs/www" "$rb/rootfs/proc"
cp "$busybox" "$rb/rootfs/bin/busybox"
echo "$BODY" >"$rb/rootfs/www/index.html"
cat >"$rb/config.json" <<JSON
{"ociVersion": "1.0.2",
 "process": {"terminal": false, "user": {"uid": 0, "gid": 0},
             "args": ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"], "env": ["PATH=/bin"], "cwd": "/",
             "capabilities": {"bounding": ["CAP_NET_BIND_SERVICE"], "effective": ["CAP_NET_BIND_SERVICE"],
                              "permitted": ["CAP_NET_BIND_SERVICE"]}},
 "root": {"path": "rootfs"},
 "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
 "linux": {"namespaces": [$ns, {"type": "network", "path": "/var/run/netns/unp$$p9"}]}}
JSON
RUNC_ID=np-runc$$
runc --root "$W/runc" run -d --bundle "$rb" "$RUNC_ID" >"$W/runc.out" 2>&1 </dev/null ||
	{ say "runc run: $(tail -3 "$W/runc.out")"; exit 1; }
REF="runc busybox httpd|10.204.9.2"

get() { ip netns exec "$PEER" curl -s -m 2 "http://$1/" 2>/dev/null; }
for r in "${ROWS[@]}" "$REF"; do
	ok=
	for _ in $(seq 50); do get "${r#*|}" | grep -q "$BODY" && { ok=1; break; }; sleep 0.1; done
	[ -n "$ok" ] || {
		say "${r%%|*} at ${r#*|} does not answer HTTP: $(ip netns exec "$PEER" curl -sS -m 2 "http://${r#*|}/" 2>&1)"
		cat "$W/runc.out" >&2
		exit 1
	}
done

# ab: "RPS P99MS FAILED" (FAILED: failed + non-2xx). -n after -t: N
# requests or T seconds, whichever comes first (a slow row, e.g. hvt under
# nested KVM, stops at T).
ab_run() {
	local out
	out=$(ip netns exec "$PEER" ab -q -t "$T" -n "$N" -c "$C" -e "$W/ab.csv" "http://$1/" 2>&1) || { echo "0 0 $N"; return; }
	awk '/^Requests per second/ {printf "%s ", $4}' <<<"$out"
	awk -F, '$1 == "99" {printf "%s ", $2}' "$W/ab.csv"
	awk '/^Failed requests/ {f=$3} /^Non-2xx/ {f+=$3} END {print f+0}' <<<"$out"
}
declare -A RPS P99 FAIL
say "$K rounds of ab -n $N -c $C over ${#ROWS[@]} guests + runc"
for k in $(seq "$K"); do
	for r in "${ROWS[@]}" "$REF"; do
		read -r a p f < <(ab_run "${r#*|}")
		RPS[$r]+="$a " P99[$r]+="$p " FAIL[$r]=$((${FAIL[$r]:-0} + f))
	done
done
medf() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
rr=$(medf <<<"${RPS[$REF]}") rp=$(medf <<<"${P99[$REF]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f×", a/b; else print "-" }'; }
f0() { awk -v a="$1" 'BEGIN{printf "%.0f", a}'; }
f2() { awk -v a="$1" 'BEGIN{printf "%.2f", a}'; }
what="HTTP \`ab -n $N -c $C\` (at most ${T} s) from a peer netns, median of $K rounds"
if [ -n "$MD" ]; then
	for r in "${ROWS[@]}"; do
		a=$(medf <<<"${RPS[$r]}") p=$(medf <<<"${P99[$r]}") fl=
		[ "${FAIL[$r]}" = 0 ] || fl=", ${FAIL[$r]} requests failed"
		printf '| %s | %s | %s | %s | %s |\n' \
			"$what: solo5-http fixture on ${r%%|*} via urunc$fl" \
			"$(f0 "$a") req/s, p99 $(f2 "$p") ms" \
			"runc busybox httpd on a veth: $(f0 "$rr") req/s, p99 $(f2 "$rp") ms" \
			"$(ratio "$a" "$rr") req/s, $(ratio "$p" "$rp") p99" "—"
	done
	[ -n "$VHOST_NOTE" ] && printf '| %s | %s | %s | %s | %s |\n' "$what: solo5-http on ${VHOST_NOTE%%|*}" "${VHOST_NOTE#*|}" "—" "—" "—"
	exit 0
fi
echo
echo "bench/netpath.sh: $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; $(date -u +%FT%TZ)"
echo "ab -n $N -c $C (at most $T s each) from a peer namespace, median of $K round-robin rounds"
echo
echo "| server | req/s | p99 ms | failed | req/s vs runc | p99 vs runc |"
echo "|---|---|---|---|---|---|"
for r in "${ROWS[@]}" "$REF"; do
	a=$(medf <<<"${RPS[$r]}") p=$(medf <<<"${P99[$r]}")
	name=${r%%|*}
	[ "$r" = "$REF" ] || name="solo5-http on $name via urunc"
	printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$(f0 "$a")" "$(f2 "$p")" "${FAIL[$r]}" "$(ratio "$a" "$rr")" "$(ratio "$p" "$rp")"
done
[ -n "$VHOST_NOTE" ] && printf '| solo5-http on %s | %s | | | | |\n' "${VHOST_NOTE%%|*}" "${VHOST_NOTE#*|}"
exit 0
