#!/bin/bash
# HTTP through the two network modes, same run, side by side: the Linux
# test guest (QEMU, TCG here) serving on the pod IP in tc mode (the guest
# owns the pod IP) and in shared mode (nftables DNAT to the guest's /30),
# and the same one-shell-per-connection server as a plain process in the
# pod namespace (what a runc container on the veth would be). `ab` runs in
# the peer namespace (the gateway side of the pod's veth).
#
#   bench/netmodes.sh [N [C]]   (default 300 requests, concurrency 4;
#                                root, qemu-system-x86_64, ip, ab from apache2-utils)
#
# URUNC=<path> picks the binary (default target/debug/urunc, built if absent);
# MODES="shared tc" changes the order (TCG guests are sensitive to host load).
set -euo pipefail
N=${1:-300}
C=${2:-4}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "bench/netmodes.sh: SKIP: needs root"; exit 0; }
for b in qemu-system-x86_64 ip ab busybox; do
	command -v "$b" >/dev/null || { echo "bench/netmodes.sh: SKIP: $b not in PATH"; exit 0; }
done
URUNC=${URUNC:-$HERE/target/debug/urunc}
[ -x "$URUNC" ] || (cd "$HERE" && cargo build -q -p urunc)
bash "$HERE/tests/fixtures/build.sh" >/dev/null
FX=$HERE/tests/fixtures/build

W=$(mktemp -d /tmp/urunc-netbench.XXXXXX)
POD=unb$$p PEER=unb$$g SIM=unb$$s
PLAIN=
cleanup() {
	set +e
	for id in nb-tc nb-shared; do "$URUNC" --root "$W/state" delete --force "$id" 2>/dev/null; done
	[ -n "$PLAIN" ] && kill "$PLAIN" 2>/dev/null
	ip netns del "$POD" 2>/dev/null
	ip netns del "$PEER" 2>/dev/null
	ip netns del "$SIM" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
ip netns add "$POD"
ip netns add "$PEER"
ip -n "$POD" link set lo up
ip -n "$PEER" link set lo up
ip -n "$POD" link add eth0 type veth peer name p0 netns "$PEER"
ip -n "$POD" addr add 10.202.0.2/24 dev eth0
ip -n "$POD" link set eth0 up
ip -n "$POD" route add default via 10.202.0.1
ip -n "$PEER" addr add 10.202.0.1/24 dev p0
ip -n "$PEER" link set p0 up

cat >"$W/config.toml" <<TOML
[monitors.qemu]
accel = "tcg"
machine = "pc"
TOML
export URUNC_CONFIG=$W/config.toml

bundle() { # mode
	local b=$W/b-$1
	mkdir -p "$b/rootfs/boot" "$b/rootfs/etc"
	cp "$FX/vmlinux" "$FX/initramfs.cpio.gz" "$b/rootfs/boot/"
	echo "nameserver 10.202.0.1" >"$b/rootfs/etc/resolv.conf"
	cat >"$b/config.json" <<JSON
{
  "ociVersion": "1.0.2",
  "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["/init", "serve"], "env": [], "cwd": "/"},
  "root": {"path": "rootfs"},
  "hostname": "bench",
  "annotations": {
    "com.urunc.unikernel.unikernelType": "linux",
    "com.urunc.unikernel.hypervisor": "qemu",
    "com.urunc.unikernel.binary": "/boot/vmlinux",
    "com.urunc.unikernel.initrd": "/boot/initramfs.cpio.gz",
    "com.urunc.network.mode": "$1",
    "com.urunc.network.ports": "8080/tcp"
  },
  "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network", "path": "/var/run/netns/$POD"}]}
}
JSON
	echo "$b"
}

# ab's "Requests per second" and 99th percentile (ms) of PORT (default 8080).
measure() {
	local out
	out=$(ip netns exec "$PEER" ab -q -n "$N" -c "$C" "http://10.202.0.2:${2:-8080}/" 2>&1)
	local rps p99 failed
	rps=$(awk '/^Requests per second/ {print $4}' <<<"$out")
	p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
	failed=$(awk '/^Failed requests/ {print $3}' <<<"$out")
	printf '%-34s %10s %10s %8s\n' "$1" "${rps:-?}" "${p99:-?}" "${failed:-?}"
}

warm() { # WHAT [PORT]: until one request is answered
	for _ in $(seq 1 60); do
		ip netns exec "$PEER" busybox nc -w 2 10.202.0.2 "${2:-8080}" </dev/null 2>/dev/null | grep -q "hello" && return 0
		sleep 0.5
	done
	echo "bench/netmodes.sh: $1 never answered" >&2
	return 1
}

printf '%-34s %10s %10s %8s\n' "server (N=$N, c=$C)" "req/s" "p99 ms" "failed"
for mode in ${MODES:-tc shared}; do
	b=$(bundle "$mode")
	"$URUNC" --root "$W/state" create --bundle "$b" "nb-$mode" >"$W/$mode.out" 2>&1 </dev/null
	"$URUNC" --root "$W/state" start "nb-$mode"
	for _ in $(seq 1 240); do grep -q URUNC-SERVING "$W/$mode.out" && break; sleep 0.5; done
	warm "$mode"
	measure "guest, $mode mode"
	"$URUNC" --root "$W/state" delete --force "nb-$mode"
done

# The guest's server, as a plain process in the pod namespace.
# (busybox sh: the script uses read -t, which dash lacks)
sed -n "/cat >\/tmp\/hello <<'EOF'$/,/^EOF$/p" "$HERE/tests/fixtures/initramfs/init" |
	sed '1d;$d;s|^#!/bin/sh$|#!/bin/busybox sh|' >"$W/hello"
chmod +x "$W/hello"
ip netns exec "$POD" busybox nc -ll -p 8080 -e "$W/hello" &
PLAIN=$!
warm plain
measure "plain process on the veth"

# The same process one hop further, in its own namespace behind a veth with
# a /30 and the shared mode's DNAT + masquerade (made here with nft, as urunc
# makes them over netlink): the host-side cost of the mode alone.
if command -v nft >/dev/null; then
	ip netns add "$SIM"
	ip -n "$SIM" link set lo up
	ip -n "$POD" link add sim0 type veth peer name eth0 netns "$SIM"
	ip -n "$POD" addr add 169.254.200.1/30 dev sim0
	ip -n "$POD" link set sim0 up
	ip -n "$SIM" addr add 169.254.200.2/30 dev eth0
	ip -n "$SIM" link set eth0 up
	ip -n "$SIM" route add default via 169.254.200.1
	ip netns exec "$POD" sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward'
	ip netns exec "$POD" nft -f - <<NFT
table ip bench {
	chain prerouting { type nat hook prerouting priority -100; ip daddr 10.202.0.2 tcp dport 8081 dnat to 169.254.200.2:8080; }
	chain postrouting { type nat hook postrouting priority 100; ip saddr 169.254.200.2 oif "eth0" masquerade; }
}
NFT
	ip netns exec "$SIM" busybox nc -ll -p 8080 -e "$W/hello" &
	SIMPID=$!
	warm sim 8081
	measure "plain process behind shared's NAT" 8081
	kill "$SIMPID" 2>/dev/null
fi
