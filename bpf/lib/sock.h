/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Socket-level translation of published ports for processes on the node
 * ("socket LB"): connect()/sendmsg() to a frontend is rewritten to the
 * container's address before the kernel routes anything, so node-local
 * clients reach published ports without per-packet NAT and without a proxy.
 * recvmsg()/getpeername() put the frontend back as the peer address, so the
 * application sees the address it used.
 *
 * The programs are attached to a cgroup (the cgroup2 root: every process on
 * the machine, in every netns) and act only on sockets of the node's netns:
 * bpf_get_netns_cookie() must equal bpfnet_config[CONFIG_NODE].netns_cookie
 * (and that cookie must be set). Netns cookies are never reused, so an agent
 * whose netns is gone leaves inert programs, never wrong ones.
 *
 * Frontend match, as Docker's docker-proxy behaves (it listens on the host
 * IP of the mapping):
 *   1. exact (destination, port, proto) key: a port published on 127.0.0.1
 *      or on one node IP answers there only;
 *   2. else the wildcard key (0.0.0.0, port, proto), only when the
 *      destination is one of the node's addresses (bpfnet_addrs) or in
 *      127.0.0.0/8.
 * A destination of 0.0.0.0 means the local host to connect()/sendto() (the
 * kernel routes it to 127.0.0.1), and is matched as 127.0.0.1.
 */
#ifndef BPFNET_SOCK_H
#define BPFNET_SOCK_H

#include "common.h"
#include "maps.h"
#include "frontend.h"

/* Return values the kernel accepts from cgroup sock_addr programs. */
#define SOCK_ALLOW 1

#define IPV4_LOOPBACK_NET  0x7f000000U	/* 127.0.0.0/8, host order */
#define IPV4_LOOPBACK_MASK 0xff000000U
#define IPV4_LOOPBACK_ADDR 0x7f000001U	/* 127.0.0.1, host order */

/* True when ctx's socket lives in the netns bpfnet's node config names. */
static __always_inline int sock_in_node_netns(struct bpf_sock_addr *ctx)
{
	__u32 id = CONFIG_NODE;
	struct config_value *cfg = bpf_map_lookup_elem(&bpfnet_config, &id);

	if (!cfg || !cfg->netns_cookie)
		return 0;
	return bpf_get_netns_cookie(ctx) == cfg->netns_cookie;
}

static __always_inline int sock_proto_ok(__u32 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP;
}

static __always_inline int ipv4_is_loopback(ip4_be addr)
{
	return (bpf_ntohl(addr) & IPV4_LOOPBACK_MASK) == IPV4_LOOPBACK_NET;
}

/* The frontend for a node-local destination (see the header comment). */
static __always_inline struct port_value *sock_frontend_lookup(ip4_be daddr, port_be dport, __u8 proto)
{
	struct port_key k = {
		.addr = daddr,
		.port = dport,
		.proto = proto,
	};

	return frontend_find(&k, ipv4_is_loopback(daddr));
}

/* connect4 and sendmsg4: frontend -> backend, remembered per socket. */
static __always_inline int sock_xlate_fwd(struct bpf_sock_addr *ctx)
{
	__u32 proto = ctx->protocol;
	ip4_be daddr;
	port_be dport;
	struct port_value *be;

	if (!sock_proto_ok(proto) || !sock_in_node_netns(ctx))
		return SOCK_ALLOW;
	daddr = ctx->user_ip4;
	dport = (port_be)ctx->user_port;
	if (!dport)
		return SOCK_ALLOW;
	/* connect(0.0.0.0) reaches 127.0.0.1, and getpeername() says so. */
	if (!daddr)
		daddr = bpf_htonl(IPV4_LOOPBACK_ADDR);

	be = sock_frontend_lookup(daddr, dport, (__u8)proto);
	if (!be)
		return SOCK_ALLOW;

	struct sock_rev_key rk = {
		.cookie = bpf_get_socket_cookie(ctx),
		.addr = be->backend_addr,
		.port = be->backend_port,
		.proto = (__u8)proto,
	};
	struct sock_rev_value rv = {
		.addr = daddr,
		.port = dport,
	};
	/* Without the record the application would see the backend as its
	 * peer; the connection itself still works, so translate anyway. */
	bpf_map_update_elem(&bpfnet_sock_rev, &rk, &rv, BPF_ANY);

	ctx->user_ip4 = be->backend_addr;
	ctx->user_port = (__u32)be->backend_port;
	metric_inc(METRIC_SOCK_XLATE, 0);
	return SOCK_ALLOW;
}

/* recvmsg4 and getpeername4: backend -> the frontend this socket used. */
static __always_inline int sock_xlate_rev(struct bpf_sock_addr *ctx)
{
	__u32 proto = ctx->protocol;
	struct sock_rev_value *rv;

	if (!sock_proto_ok(proto) || !sock_in_node_netns(ctx))
		return SOCK_ALLOW;

	struct sock_rev_key rk = {
		.cookie = bpf_get_socket_cookie(ctx),
		.addr = ctx->user_ip4,
		.port = (port_be)ctx->user_port,
		.proto = (__u8)proto,
	};
	rv = bpf_map_lookup_elem(&bpfnet_sock_rev, &rk);
	if (!rv)
		return SOCK_ALLOW;
	ctx->user_ip4 = rv->addr;
	ctx->user_port = (__u32)rv->port;
	return SOCK_ALLOW;
}

#endif
