#!/bin/bash
# urunc's main job, end to end with real parts (as root, on Debian 12):
#   1. a guest: Debian's kernel (/boot/vmlinuz-*) + an initramfs of
#      busybox-static whose /init (scripts/demo/init) brings up eth0 from the
#      kernel's ip= parameter and serves a page with busybox httpd;
#   2. urunc-pack packs it into an OCI image archive;
#   3. a private containerd (own config, root, state and socket under a
#      temporary directory; a system containerd is left alone) imports it;
#   4. a network namespace with eth0 (a veth pair, as a CNI plugin would
#      make it; the peer stays here with the neighbouring address);
#   5. ctr run --runtime io.containerd.urunc.v2: containerd -> shim ->
#      urunc -> QEMU; curl fetches the page from the peer side.
# Everything (container, image, containerd, namespace, temporary files) is
# removed at the end, also when a step fails.
#
# Binaries (default: the installed ones):
#   URUNC=/usr/local/bin/urunc  URUNC_PACK=/usr/local/bin/urunc-pack
#   URUNC_SHIM=/usr/local/bin/containerd-shim-urunc-v2
# URUNC_DEMO_ACCEL=kvm|tcg skips the KVM probe.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
URUNC=${URUNC:-/usr/local/bin/urunc}
URUNC_PACK=${URUNC_PACK:-/usr/local/bin/urunc-pack}
URUNC_SHIM=${URUNC_SHIM:-/usr/local/bin/containerd-shim-urunc-v2}

die() {
	echo "demo.sh: error: $*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "run as root (it starts containerd and makes a network namespace)"
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$1 (Debian package: $2)"); }
need qemu-system-x86_64 qemu-system-x86
need containerd containerd
need ctr containerd
need ip iproute2
need curl curl
need cpio cpio
need gzip gzip
BUSYBOX=""
for b in /bin/busybox /usr/bin/busybox; do
	if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then BUSYBOX=$b; break; fi
done
[ -n "$BUSYBOX" ] || missing+=("a static busybox (Debian package: busybox-static)")
KVER=""
for k in $(ls -1 /boot/vmlinuz-* 2>/dev/null | sed 's|^/boot/vmlinuz-||' | sort -V -r); do
	if [ -f "/lib/modules/$k/modules.dep" ]; then KVER=$k; break; fi
done
[ -n "$KVER" ] || missing+=("a kernel /boot/vmlinuz-<version> with /lib/modules/<version> (Debian package: linux-image-amd64)")
for b in "$URUNC" "$URUNC_PACK" "$URUNC_SHIM"; do
	[ -x "$b" ] || missing+=("$b (scripts/install.sh builds and installs it)")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "demo.sh: missing:" >&2
	printf '  - %s\n' "${missing[@]}" >&2
	exit 1
fi
KERNEL=/boot/vmlinuz-$KVER

# Names unique to this run: a test may run next to someone's demo.
NS=urunc-demo-$$   # containerd namespace and network namespace
NETNS=$NS
HOSTIF=udemo$$     # the veth's peer, in this namespace
ID=web
REF=localhost/urunc-demo-web:latest
n=$(($$ % 16384))
NET=10.201.$((n / 64)).$(((n % 64) * 4))
HOSTIP=${NET%.*}.$((${NET##*.} + 1))
GUESTIP=${NET%.*}.$((${NET##*.} + 2))

WORK=""
CTRD_PID=""
PROBE_PID=""
ctr_() { ctr --address "$WORK/c.sock" --namespace "$NS" "$@"; }
task_status() { ctr_ task ls 2>/dev/null | awk -v id="$ID" '$1 == id { print $3 }'; }
# PIDs of processes whose command line has the word sequence "$1 $2".
pids_with() {
	local p
	for p in /proc/[0-9]*; do
		{ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- " $1 $2 " && echo "${p#/proc/}"
	done
	return 0
}

cleanup() {
	local rc=$? i m p
	set +e
	# A signal's trap runs with the redirections of the command it arrived
	# in (`ctr_ run ... >run.out 2>&1`): speak on the script's own output.
	exec 1>&8 2>&9
	trap - EXIT INT TERM
	[ -n "$PROBE_PID" ] && kill -KILL "$PROBE_PID" 2>/dev/null && wait "$PROBE_PID" 2>/dev/null
	if [ -n "$CTRD_PID" ]; then
		if [ -n "$(task_status)" ]; then
			ctr_ task kill -s KILL "$ID" >/dev/null 2>&1
			for i in $(seq 100); do [ "$(task_status)" = RUNNING ] || break; sleep 0.1; done
			ctr_ task delete --force "$ID" >/dev/null 2>&1
		fi
		ctr_ container delete "$ID" >/dev/null 2>&1
		ctr_ image rm "$REF" >/dev/null 2>&1
		ctr_ namespace remove "$NS" >/dev/null 2>&1
		kill -TERM "$CTRD_PID" 2>/dev/null
		wait "$CTRD_PID" 2>/dev/null
	fi
	# A shim outlives containerd by design, and so does a monitor whose shim
	# died: stop ours if one is left (the monitor runs in our netns).
	for p in $(pids_with -namespace "$NS") $(ip netns pids "$NETNS" 2>/dev/null); do
		kill -KILL "$p" 2>/dev/null
	done
	if [ -n "$WORK" ]; then
		for m in $(awk -v d="$WORK/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
			umount -l "$m" 2>/dev/null
		done
	fi
	ip netns del "$NETNS" 2>/dev/null
	ip link del "$HOSTIF" 2>/dev/null
	rmdir "/run/containerd/urunc/$NS" 2>/dev/null
	[ -n "$WORK" ] && rm -rf "$WORK"
	if [ "$rc" = 0 ]; then
		echo "removed: the container, the image, containerd, network namespace $NETNS, $WORK"
	else
		echo "demo.sh: failed; removed what it had made" >&2
	fi
	exit "$rc"
}
# The script's stdout and stderr, kept for cleanup (see there); closed for
# the processes that outlive a command (containerd, the KVM probe).
exec 8>&1 9>&2
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Shows the end of a file on stderr (when a step failed).
tail_of() { [ -s "$2" ] && { echo "--- $1:" >&2; tail -n "${3:-20}" "$2" >&2; }; return 0; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
secs() { printf '%d.%01d s' $(($1 / 1000)) $((($1 % 1000) / 100)); }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/urunc-demo.XXXXXX")
T0=$(date +%s%N)
echo "urunc demo: a Linux guest packed as an OCI image and served through containerd"

# ------------------------------------------------------------------ 1. guest
# Debian builds virtio-net and virtio-pci as modules: take them and what
# they depend on (modules.dep lists dependencies, deepest last) into the
# initramfs, in load order.
MODDIR=/lib/modules/$KVER
declare -A seen=()
order=()
add_mod() {
	local p=$1 d
	[ -n "${seen[$p]:-}" ] && return
	seen[$p]=1
	for d in $(grep -E "^$p:" "$MODDIR/modules.dep" | cut -d: -f2-); do add_mod "$d"; done
	order+=("$p")
}
for m in virtio_pci virtio_net; do
	grep -qE "/$m\.ko\$" "$MODDIR/modules.builtin" 2>/dev/null && continue
	p=$(grep -E "(^|/)$m\.ko(\.xz|\.zst|\.gz)?:" "$MODDIR/modules.dep" | head -1 | cut -d: -f1)
	[ -n "$p" ] || die "kernel module $m not found in $MODDIR/modules.dep"
	add_mod "$p"
done
root=$WORK/initramfs
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
cp "$BUSYBOX" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
install -m 0755 "$HERE/demo/init" "$root/init"
: >"$root/lib/modules/load-order"
for p in "${order[@]}"; do
	name=$(basename "$p")
	case "$name" in
	*.ko.xz) xz -dc "$MODDIR/$p" >"$root/lib/modules/${name%.xz}" ;;
	*.ko.zst) zstd -qdc "$MODDIR/$p" >"$root/lib/modules/${name%.zst}" ;;
	*.ko.gz) gzip -dc "$MODDIR/$p" >"$root/lib/modules/${name%.gz}" ;;
	*) cp "$MODDIR/$p" "$root/lib/modules/$name" ;;
	esac
	name=${name%.xz}; name=${name%.zst}; name=${name%.gz}
	echo "${name%.ko}" >>"$root/lib/modules/load-order"
done
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) |
	gzip -9n >"$WORK/initramfs.cpio.gz"
rm -rf "$root"
echo "[1/5] guest: Debian's kernel $KERNEL + a $(($(stat -c %s "$WORK/initramfs.cpio.gz") / 1024)) KiB initramfs (busybox-static, /init = scripts/demo/init, virtio-net modules)"

# ------------------------------------------------------------ accelerator
# KVM when a Linux guest boots under it. Under some nested KVM (as on the
# project's CI hosts) the vCPU lacks CPU features QEMU's default model has
# (QEMU warns "host doesn't support requested feature") and Linux hangs
# while booting; so boot the guest once with `probe` under KVM and fall
# back to TCG, QEMU's emulator, unless it prints its marker within 8 s.
probe_kvm() {
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || { why="no usable /dev/kvm"; return 1; }
	qemu-system-x86_64 -accel kvm -M pc -m 256 -nographic -vga none -nodefaults -no-reboot \
		-serial "file:$WORK/probe.log" -kernel "$KERNEL" -initrd "$WORK/initramfs.cpio.gz" \
		-append "console=ttyS0 panic=-1 quiet rdinit=/init -- probe" \
		</dev/null >"$WORK/probe.err" 2>&1 8>&- 9>&- &
	PROBE_PID=$!
	local i ok=1 e
	why="a Linux guest did not boot under KVM within 8 s"
	for i in $(seq 80); do
		if grep -qs URUNC-DEMO-PROBE-OK "$WORK/probe.log"; then ok=0; break; fi
		kill -0 "$PROBE_PID" 2>/dev/null || { why="QEMU with KVM exited before the guest was up"; break; }
		e=$(grep -m1 -iE "doesn't support requested feature|internal error|emulation failure" "$WORK/probe.err" |
			sed 's/^qemu-system-x86_64: //; s/^warning: //' || true)
		if [ -n "$e" ]; then
			why="this host's KVM cannot run QEMU's CPU model in full, and Linux hangs on it: $e"
			break
		fi
		sleep 0.1
	done
	kill -KILL "$PROBE_PID" 2>/dev/null
	wait "$PROBE_PID" 2>/dev/null
	PROBE_PID=""
	return $ok
}
ACCEL=${URUNC_DEMO_ACCEL:-}
why="URUNC_DEMO_ACCEL=$ACCEL"
if [ -z "$ACCEL" ]; then
	if probe_kvm; then ACCEL=kvm; why="a Linux guest boots under KVM here"; else ACCEL=tcg; fi
fi
case "$ACCEL" in
kvm) echo "      accelerator: KVM ($why)" ;;
tcg) echo "      accelerator: TCG, QEMU's emulator ($why)" ;;
*) die "URUNC_DEMO_ACCEL=$ACCEL: expected kvm or tcg" ;;
esac
# urunc's config for this run: the accelerator, and `pc`, whose PCI bus
# takes virtio-net-pci.
printf '[monitors.qemu]\naccel = "%s"\nmachine = "pc"\n' "$ACCEL" >"$WORK/urunc.toml"
echo "      urunc config: [monitors.qemu] accel = \"$ACCEL\", machine = \"pc\""

# ------------------------------------------------------------------- 2. pack
"$URUNC_PACK" --kernel "$KERNEL" --initrd "$WORK/initramfs.cpio.gz" \
	--unikernel-type linux --hypervisor qemu --cmdline /init \
	--ref "$REF" -o "$WORK/image.tar" >"$WORK/pack.out" 2>"$WORK/pack.err" ||
	{ tail_of urunc-pack "$WORK/pack.err"; die "urunc-pack failed"; }
echo "[2/5] urunc-pack --kernel $KERNEL --initrd initramfs.cpio.gz --unikernel-type linux"
echo "        --hypervisor qemu --cmdline /init --ref $REF -o image.tar"
echo "      $(($(stat -c %s "$WORK/image.tar") / 1024 / 1024)) MiB OCI archive, manifest $(cut -c1-19 "$WORK/pack.out")..."

# ------------------------------------------------------------- 3. containerd
mkdir -p "$WORK/bin"
ln -s "$URUNC_SHIM" "$WORK/bin/containerd-shim-urunc-v2"
cat >"$WORK/containerd.toml" <<EOF
version = 2
root = "$WORK/root"
state = "$WORK/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$WORK/c.sock"
[ttrpc]
  address = ""
[debug]
  address = "$WORK/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$WORK/opt"
EOF
# The shim is found in containerd's PATH; it runs $URUNC_SHIM_RUNTIME,
# which reads $URUNC_CONFIG (both inherited through containerd).
PATH="$WORK/bin:$PATH" URUNC_SHIM_RUNTIME="$URUNC" URUNC_CONFIG="$WORK/urunc.toml" \
	containerd --config "$WORK/containerd.toml" </dev/null >"$WORK/containerd.log" 2>&1 8>&- 9>&- &
CTRD_PID=$!
for i in $(seq 200); do
	[ -S "$WORK/c.sock" ] && ctr_ version >/dev/null 2>&1 && break
	kill -0 "$CTRD_PID" 2>/dev/null || { tail_of containerd "$WORK/containerd.log"; die "containerd exited"; }
	sleep 0.1
done
ctr_ version >/dev/null 2>&1 || { tail_of containerd "$WORK/containerd.log"; die "containerd did not come up in 20 s"; }
ctr_ image import "$WORK/image.tar" >"$WORK/import.out" 2>&1 ||
	{ tail_of "ctr image import" "$WORK/import.out"; die "ctr image import failed"; }
echo "[3/5] containerd $(containerd --version | awk '{print $3}') (private, socket $WORK/c.sock):"
echo "      ctr image import image.tar -> $(ctr_ image ls -q | head -1)"

# ---------------------------------------------------------------- 4. network
ip -4 -o addr show | grep -qF " $HOSTIP/" && die "address $HOSTIP is already in use here"
ip netns add "$NETNS"
ip -n "$NETNS" link set lo up
ip link add "$HOSTIF" type veth peer name eth0 netns "$NETNS"
ip -n "$NETNS" addr add "$GUESTIP/30" dev eth0
ip -n "$NETNS" link set eth0 up
ip -n "$NETNS" route add default via "$HOSTIP"
ip addr add "$HOSTIP/30" dev "$HOSTIF"
ip link set "$HOSTIF" up
echo "[4/5] network namespace $NETNS: eth0 $GUESTIP/30, its veth peer $HOSTIF $HOSTIP/30 here"

# -------------------------------------------------------------------- 5. run
echo "[5/5] ctr run -d --runtime io.containerd.urunc.v2 --with-ns network:/var/run/netns/$NETNS"
echo "        $REF $ID"
START=$(date +%s%N)
ctr_ run -d --runtime io.containerd.urunc.v2 --with-ns "network:/var/run/netns/$NETNS" \
	--log-uri "file://$WORK/console.log" "$REF" "$ID" >"$WORK/run.out" 2>&1 ||
	{ tail_of "ctr run" "$WORK/run.out"; tail_of containerd "$WORK/containerd.log"; die "ctr run failed"; }
page=""
for i in $(seq 900); do
	page=$(curl -sS --connect-timeout 1 --max-time 2 "http://$GUESTIP/" 2>/dev/null) && break
	page=""
	if [ "$(task_status)" != RUNNING ]; then
		tail_of "guest console" "$WORK/console.log" 40
		die "the container stopped before serving ($(task_status))"
	fi
	sleep 0.1
done
FIRST=$(ms_since "$START")
if [ -z "$page" ]; then
	tail_of "guest console" "$WORK/console.log" 40
	die "no reply from http://$GUESTIP/ in 90 s"
fi
PID=$(ctr_ task ls | awk -v id="$ID" '$1 == id { print $2 }')
echo "      task $ID: pid $PID, $(readlink "/proc/$PID/exe") (the container's process is the monitor)"
echo
echo "\$ curl http://$GUESTIP/      # first reply $(secs "$FIRST") after ctr run"
echo "$page"
echo
ctr_ task kill "$ID"
for i in $(seq 300); do [ "$(task_status)" = STOPPED ] && break; sleep 0.1; done
ctr_ task delete "$ID" >"$WORK/delete.out" 2>&1
ctr_ container delete "$ID"
echo "ctr task kill $ID (SIGTERM to QEMU), task delete, container delete; $(secs "$(ms_since "$T0")") in all"
