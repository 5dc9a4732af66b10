#!/usr/bin/env bash
# Installs what bpfnet needs on a Debian machine, only when it is missing:
# clang/llvm (BPF compiler), libbpf headers, bpftool, iproute2 (ip, tc),
# iptables, nftables, ping, dig, a C toolchain for the native addon, and the npm
# dependencies. Mounts bpffs if absent. With BENCH=1 (make bench) also what
# only the benchmarks use: the CNI reference plugins, iperf3, static libc.
# Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have clang || need+=(clang)
have llvm-strip || need+=(llvm)
[ -f /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
[ -f /usr/include/linux/bpf.h ] || need+=(linux-libc-dev)
have bpftool || need+=(bpftool)
{ have ip && have tc; } || need+=(iproute2)
have iptables || need+=(iptables)
have nft || need+=(nftables)
have ping || need+=(iputils-ping)
have nsenter || need+=(util-linux)
have gcc || need+=(gcc)
# The native rtnetlink addon (native/) is built with node-gyp: make, g++, python3.
have g++ || need+=(g++)
have make || need+=(make)
have python3 || need+=(python3)
# dig: the embedded DNS server's integration test queries it as a real client.
have dig || need+=(dnsutils)
# the DNS redirect of the iptables/nftables modes flushes a sandbox's conntrack entries
have conntrack || need+=(conntrack)
# A real Docker engine (dockerd, containerd, runc) and a static busybox for its
# images: the coexistence and Docker network plugin tests start one (src/lab/dockerd.ts).
[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || need+=(docker.io)
[ -x /bin/busybox ] || need+=(busybox-static)
# Podman 4.3 (CNI backend) and the CNI reference plugins: the bpfnet CNI
# plugin's tests run podman with it (test/integration/cni-podman.test.ts).
have podman || need+=(podman)
[ -x /usr/lib/cni/loopback ] || need+=(containernetworking-plugins)
# Only for the benchmarks (make bench sets BENCH=1): bench/setup.ts compares
# sandbox setup against the CNI reference plugins (bridge, host-local).
if [ "${BENCH:-}" = 1 ]; then
  { [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ]; } || need+=(containernetworking-plugins)
  # bench/throughput.ts drives iperf3.
  have iperf3 || need+=(iperf3)
  # bench/tools/echo.c is linked statically for the docker peer's busybox image.
  [ -f "/usr/lib/$(gcc -dumpmachine 2>/dev/null)/libc.a" ] || need+=(libc6-dev)
fi

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bpfnet needs: ${need[*]}; run as root or: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "installing: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # docker.io's postinst would start a system dockerd in the root namespace
  # (its firewall rules, docker0); the tests start their own in namespaces.
  if [[ " ${need[*]} " == *" docker.io "* ]] && [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Some hosts boot without bpffs; the agent mounts it too, but tests expect it.
if ! grep -qs ' /sys/fs/bpf bpf ' /proc/mounts; then
  mount -t bpf bpf /sys/fs/bpf
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund >/dev/null
fi
