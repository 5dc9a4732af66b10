/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Local delivery: a packet for one of this node's containers goes straight
 * into the container's netns with bpf_redirect_peer (from a tc ingress hook
 * to the peer of the endpoint's host-side veth), skipping the node's stack,
 * the bridge and the backlog queue, as Cilium's "BPF host routing" does.
 */
#ifndef BPFNET_FORWARD_H
#define BPFNET_FORWARD_H

#include "common.h"
#include "maps.h"

#define FWD_NOT_LOCAL (-1)

static __always_inline struct endpoint_info *endpoint_of(ip4_be addr)
{
	struct endpoint_key k = { .addr = addr };

	return bpf_map_lookup_elem(&bpfnet_endpoints, &k);
}

/* The endpoint behind the host-side device a packet came in on. */
static __always_inline struct endpoint_info *endpoint_of_iface(__u32 ifindex)
{
	struct iface_key k = { .ifindex = ifindex };

	return bpf_map_lookup_elem(&bpfnet_ifaces, &k);
}

/*
 * Deliver to the container that owns daddr: the Ethernet destination becomes
 * its MAC (the source MAC is left as is: receivers do not learn from it).
 * Returns a TC verdict, or FWD_NOT_LOCAL when daddr is not a local endpoint
 * (the caller lets the stack route it).
 */
static __always_inline int deliver_local(struct __sk_buff *skb, ip4_be daddr)
{
	struct endpoint_info *ep = endpoint_of(daddr);

	if (!ep)
		return FWD_NOT_LOCAL;
	if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), ep->mac, ETH_ALEN, 0) < 0) {
		metric_inc(METRIC_REWRITE_FAIL, skb->len);
		return TC_ACT_SHOT;
	}
	metric_inc(METRIC_REDIRECT, skb->len);
	return bpf_redirect_peer(ep->ifindex, 0);
}

#endif
