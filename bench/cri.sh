#!/bin/bash
# Pod start through containerd's CRI, as a kubelet sees it: RunPodSandbox +
# CreateContainer + StartContainer until the first TCP reply from the pod IP,
# for a unikernel pod (handler urunc: the Linux fixture guest on QEMU TCG) and
# a runc busybox pod (nc on 8080), alternating, in the same run; prints each
# run and the medians. The harness is the CRI tests' (a private containerd in
# its own network namespace, CNI bridge, our pause image):
# crates/containerd-shim-urunc-v2/tests/cri.rs, test pod_start_benchmark.
#
#   bench/cri.sh [N]      (default 5; root, containerd, qemu-system-x86_64,
#                          containernetworking-plugins)
#   URUNC_TEST_CONTAINERD=/path/to/containerd bench/cri.sh   (another containerd)
set -euo pipefail
N=${1:-5}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$HERE"
bash tests/fixtures/build.sh >/dev/null
cargo build -q -p urunc -p urunc-pack
URUNC_CRI_BENCH_N=$N cargo test -q -p containerd-shim-urunc-v2 --test cri_bench \
	pod_start_benchmark -- --ignored --nocapture --test-threads=1 2>&1 |
	grep -E '^[a-z-]+ .* pod [0-9]+:|^pod start|SKIP|^pod_start_benchmark'
