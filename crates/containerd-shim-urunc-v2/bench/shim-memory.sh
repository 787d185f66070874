#!/bin/bash
# Memory per shim process: containerd-shim-urunc-v2 against Debian's
# containerd-shim-runc-v2, each serving N sleeping busybox containers under a
# private containerd (Debian's 1.6). Prints per-shim averages of PSS,
# private (clean+dirty) and RSS from /proc/PID/smaps_rollup, then cleans up.
#
# usage: bench/shim-memory.sh            (run as root from anywhere)
# env:   N=10                containers per shim kind
#        SHIM_BIN=path       use this shim binary instead of building one
#        URUNC_SHIM_RUNTIME  OCI runtime our shim drives (default runc)
set -euo pipefail

N=${N:-10}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
export URUNC_SHIM_RUNTIME=${URUNC_SHIM_RUNTIME:-runc}

die() { echo "shim-memory: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (containerd)"
for t in containerd ctr containerd-shim-runc-v2 tar sha256sum "$URUNC_SHIM_RUNTIME"; do
    command -v "$t" >/dev/null || die "$t not found in PATH (apt-get install containerd runc)"
done
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] && file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' \
    || BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "static busybox not found (apt-get install busybox-static)"

if [ -z "${SHIM_BIN:-}" ]; then
    # The installed build (scripts/build-release.sh): size-optimised, fat
    # LTO, one codegen unit, stripped, static and non-PIE.
    echo "building the shim (scripts/build-release.sh)..." >&2
    bash "$REPO/scripts/build-release.sh"
    SHIM_BIN=$REPO/target/shim/containerd-shim-urunc-v2
fi
[ -x "$SHIM_BIN" ] || die "shim binary $SHIM_BIN missing"

D=$(mktemp -d /tmp/shimbench.XXXXXX)
NS=shimbench
SOCK=$D/c.sock
CTR="ctr --address $SOCK --namespace $NS"
IMAGE=docker.io/library/shimbench:latest
DAEMON=

cleanup() {
    set +e
    if [ -n "$DAEMON" ]; then
        for id in $($CTR task ls -q 2>/dev/null); do
            $CTR task kill -s KILL "$id" >/dev/null 2>&1
        done
        for id in $($CTR task ls -q 2>/dev/null); do
            for _ in $(seq 50); do
                $CTR task ls 2>/dev/null | grep -q "^$id .*STOPPED" && break
                sleep 0.1
            done
            $CTR task delete "$id" >/dev/null 2>&1
        done
        for id in $($CTR container ls -q 2>/dev/null); do
            $CTR container delete "$id" >/dev/null 2>&1
        done
        kill "$DAEMON" 2>/dev/null
        wait "$DAEMON" 2>/dev/null
    fi
    grep -o " $D/[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null
    done
    rm -rf "$D"
    rmdir "/run/containerd/urunc/$NS" 2>/dev/null
}
trap cleanup EXIT

# Image: busybox + applet links, as an OCI layout archive.
mkdir -p "$D/rootfs/bin" "$D/rootfs/proc" "$D/rootfs/sys" "$D/rootfs/dev" "$D/rootfs/tmp" \
    "$D/layout/blobs/sha256" "$D/bin"
cp "$BUSYBOX" "$D/rootfs/bin/busybox"
for a in sh sleep; do ln -s busybox "$D/rootfs/bin/$a"; done
tar --owner=0 --group=0 --numeric-owner -C "$D/rootfs" -cf "$D/layer.tar" .
blob() { local d; d=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$D/layout/blobs/sha256/$d"; echo "$d $(stat -c %s "$1")"; }
read -r LD LS < <(blob "$D/layer.tar")
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"config":{"Env":["PATH=/bin"]}}' \
    "$LD" >"$D/config.json"
read -r CD CS < <(blob "$D/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$CD" "$CS" "$LD" "$LS" >"$D/manifest.json"
read -r MD MS < <(blob "$D/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"latest"}}]}' \
    "$MD" "$MS" "$IMAGE" >"$D/layout/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$D/layout/oci-layout"
tar -C "$D/layout" -cf "$D/image.tar" .

# Private containerd; our shim first in its PATH.
ln -s "$SHIM_BIN" "$D/bin/containerd-shim-urunc-v2"
cat >"$D/config.toml" <<EOF
version = 2
root = "$D/root"
state = "$D/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = ""
[debug]
  address = "$D/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$D/opt"
EOF
PATH="$D/bin:$PATH" containerd --config "$D/config.toml" >"$D/containerd.log" 2>&1 &
DAEMON=$!
for _ in $(seq 100); do $CTR version >/dev/null 2>&1 && break; sleep 0.1; done
$CTR version >/dev/null 2>&1 || die "containerd did not start: $(tail -5 "$D/containerd.log")"
$CTR image import "$D/image.tar" >/dev/null

for i in $(seq "$N"); do
    $CTR run -d --runtime io.containerd.urunc.v2 "$IMAGE" "urunc-$i" /bin/sleep 1000 </dev/null >/dev/null
    $CTR run -d --runtime io.containerd.runc.v2 "$IMAGE" "runc-$i" /bin/sleep 1000 </dev/null >/dev/null
done
sleep 1

# PIDs of the shims of one kind serving this namespace.
shim_pids() {
    local name=$1 p
    for p in /proc/[0-9]*; do
        tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q "^[^ ]*$name -namespace $NS " && echo "${p#/proc/}"
    done
}
# Average of PSS, Private_Clean+Private_Dirty and RSS (KiB) over PIDs.
measure() {
    local n=0 pss=0 priv=0 rss=0 p
    for p in "$@"; do
        read -r a b c < <(awk '/^Pss:/{p=$2} /^Private_(Clean|Dirty):/{v+=$2} /^Rss:/{r=$2} END{print p, v, r}' \
            "/proc/$p/smaps_rollup")
        pss=$((pss + a)); priv=$((priv + b)); rss=$((rss + c)); n=$((n + 1))
    done
    [ "$n" -gt 0 ] || { echo "0 0 0 0"; return; }
    echo "$n $((pss / n)) $((priv / n)) $((rss / n))"
}
mapfile -t UP < <(shim_pids containerd-shim-urunc-v2)
mapfile -t RP < <(shim_pids containerd-shim-runc-v2)
read -r un up upriv urss < <(measure "${UP[@]}")
read -r rn rp rpriv rrss < <(measure "${RP[@]}")

if [ -n "${DETAIL:-}" ] && [ "${#UP[@]}" -gt 0 ]; then
    echo "private KiB by mapping, first urunc shim (pid ${UP[0]}), threads: $(ls /proc/${UP[0]}/task | wc -l)"
    awk '/^[0-9a-f]+-[0-9a-f]+ /{name=$6; if(name=="")name="[anon]"} /^Private_(Clean|Dirty):/{v[name]+=$2} END{for(n in v) if(v[n]>0) printf "%6d  %s\n", v[n], n}' \
        "/proc/${UP[0]}/smaps" | sort -rn | head -15
fi
kib() { awk -v k="$1" 'BEGIN{printf "%.2f MiB", k/1024}'; }
printf '%-28s %14s %14s\n' "per shim (average)" "urunc-v2 (ours)" "runc-v2 (Go)"
printf '%-28s %14s %14s\n' "shim processes" "$un" "$rn"
printf '%-28s %14s %14s\n' "PSS" "$(kib "$up")" "$(kib "$rp")"
printf '%-28s %14s %14s\n' "Private (clean+dirty)" "$(kib "$upriv")" "$(kib "$rpriv")"
printf '%-28s %14s %14s\n' "RSS" "$(kib "$urss")" "$(kib "$rrss")"
printf '%-28s %14s %14s\n' "binary size" "$(kib $(($(stat -L -c %s "$SHIM_BIN") / 1024)))" \
    "$(kib $(($(stat -L -c %s "$(command -v containerd-shim-runc-v2)") / 1024)))"
[ "$un" = "$N" ] || die "expected $N urunc shims, found $un"
[ "$rn" = "$N" ] || die "expected $N runc shims, found $rn"
