#!/bin/sh
# Runs inside the cgroup v2 VM of cgroup_v2.rs, chrooted into the host's /
# (9p, read-only) with tmpfs on /run /tmp /var and a unified cgroup2
# hierarchy on /sys/fs/cgroup. Drives the workspace's urunc with the tiny
# test kernel on QEMU/TCG and prints "CG2 ..." lines for the test to check.
#   check.sh WORKDIR URUNC
W=$1
U=$2
export URUNC_CONFIG="$W/config.toml"
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
R=/sys/fs/cgroup

say() { echo "CG2 $*"; }
u() { "$U" --root /run/urunc-cg2 --log /tmp/urunc.log "$@"; }
fail() {
	say "FAIL $*"
	[ -f /tmp/urunc.log ] && tail -n 5 /tmp/urunc.log | sed 's/^/CG2 LOG /'
}
status() { u state "$1" | tr -d ' \n' | sed 's/.*"status":"\([a-z]*\)".*/\1/'; }
frozen() { sed -n 's/^frozen //p' "$1/cgroup.events"; }
mark() { say "time $1 $(cut -d' ' -f1 /proc/uptime)"; }
gone() { if [ -e "$1" ]; then echo present; else echo gone; fi; }
# How create placed process $1 (its debug line): "born" in the cgroup, or "moved".
placed() { sed -n "s/.*cgroup: process $1 \([a-z]*\) .*/\1/p" /tmp/urunc.log | head -n 1; }

# boot ID BUNDLE [GLOBAL FLAGS...]: create + start, wait for the guest
boot() {
	id=$1 src=$2
	shift 2
	rm -rf "/tmp/$id"
	cp -a "$src" "/tmp/$id"
	if ! u --debug "$@" create --bundle "/tmp/$id" --pid-file "/tmp/$id.pid" "$id" \
		</dev/null >"/tmp/$id.out" 2>"/tmp/$id.err"; then
		fail "create $id: $(cat "/tmp/$id.err")"
		return 1
	fi
	mark "$id-created"
	u "$@" start "$id" || { fail "start $id"; return 1; }
	n=0
	while ! grep -q "URUNC-TESTKERNEL hang" "/tmp/$id.out"; do
		n=$((n + 1))
		if [ $n -gt 300 ]; then
			fail "boot $id: $(cat "/tmp/$id.out" "/tmp/$id.err")"
			return 1
		fi
		sleep 0.1
	done
	mark "$id-booted"
	say "$id pid $(cat "/tmp/$id.pid")"
}

mark start
say controllers "$(cat $R/cgroup.controllers)"
say fstype "$(stat -f -c %T $R)"

# --- cgroupfs driver: /urunc-cg2/c1 ------------------------------------------
CG=$R/urunc-cg2/c1
if boot c1 "$W/bundle"; then
	pid=$(cat /tmp/c1.pid)
	for f in memory.max cpu.max cpu.weight pids.max; do
		say "c1 $f $(cat "$CG/$f" 2>&1)"
	done
	say "c1 procs $(tr '\n' ' ' <"$CG/cgroup.procs")"
	say "c1 proc-cgroup $(cat "/proc/$pid/cgroup")"
	say "c1 placed $(placed "$pid")"
	u pause c1 || fail "pause c1"
	say "c1 paused status=$(status c1) freeze=$(cat "$CG/cgroup.freeze") frozen=$(frozen "$CG")"
	u resume c1 || fail "resume c1"
	say "c1 resumed status=$(status c1) freeze=$(cat "$CG/cgroup.freeze") frozen=$(frozen "$CG")"
	say "c1 stats $(u events --stats c1)"
	u delete --force c1 || fail "delete c1"
	say "c1 after-delete cgroup=$(gone "$CG") parent=$(gone $R/urunc-cg2) state=$(gone /run/urunc-cg2/c1)"
fi

# --- systemd driver: urunc-cg2.slice:cg2test:c2 ------------------------------
if boot c2 "$W/bundle-sd" --systemd-cgroup; then
	pid=$(cat /tmp/c2.pid)
	scope=$(find $R -type d -name 'cg2test-c2.scope')
	say "c2 scope $scope"
	say "c2 memory.max $(cat "$scope/memory.max" 2>&1)"
	say "c2 procs $(tr '\n' ' ' <"$scope/cgroup.procs")"
	say "c2 placed $(placed "$pid")"
	u delete --force c2 || fail "delete c2"
	say "c2 after-delete scope=$(gone "$scope") slices=$(gone $R/urunc.slice)"
fi
mark end
say done
