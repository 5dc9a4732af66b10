// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* cgroup sock_addr hooks: published ports for processes on the node
 * (lib/sock.h). Attached to the cgroup2 root through pinned BPF links
 * (src/loader/cgroup.ts); act only in the node's netns. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/sock.h"

SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	return sock_xlate_fwd(ctx);
}

/* Unconnected UDP: sendto()/sendmsg() with a destination address. */
SEC("cgroup/sendmsg4")
int sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock_xlate_fwd(ctx);
}

/* UDP: the source address recvfrom()/recvmsg() report. */
SEC("cgroup/recvmsg4")
int sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	return sock_xlate_rev(ctx);
}

SEC("cgroup/getpeername4")
int sock_getpeername4(struct bpf_sock_addr *ctx)
{
	return sock_xlate_rev(ctx);
}

char _license[] SEC("license") = "Dual BSD/GPL";
