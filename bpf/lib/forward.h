/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Local delivery: a packet for one of this node's containers goes straight
 * into the container's netns with bpf_redirect_peer (from a tc ingress hook
 * to the peer of the endpoint's host-side veth), skipping the node's stack,
 * the bridge and the backlog queue, as Cilium's "BPF host routing" does.
 * redirect_peer scrubs the skb (pkt_type becomes PACKET_HOST), so the
 * receiving stack accepts it whatever the Ethernet destination said; the
 * destination is rewritten anyway so that a capture inside shows a sane frame.
 */
#ifndef BPFNET_FORWARD_H
#define BPFNET_FORWARD_H

#include "common.h"
#include "maps.h"
#include "parse.h"
#include "fib.h"

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

/* Into ep's container: Ethernet destination = its MAC (the source MAC is
 * left as is: receivers do not learn from it), then redirect_peer. The MAC is
 * written in place when the header is in the linear area (always, for veth),
 * else through bpf_skb_store_bytes. */
static __always_inline int redirect_to_endpoint(struct __sk_buff *skb, const struct endpoint_info *ep)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u8 *dst = data;

	if (data + ETH_ALEN <= end) {
		__builtin_memcpy(dst, ep->mac, ETH_ALEN);
	} else if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), ep->mac, ETH_ALEN, 0) < 0) {
		metric_inc(METRIC_REWRITE_FAIL, skb->len);
		return TC_ACT_SHOT;
	}
	metric_inc(METRIC_REDIRECT, skb->len);
	return bpf_redirect_peer(ep->ifindex, 0);
}

/* TTL - 1 with the checksum patched as the kernel's ip_decrease_ttl does, in
 * place when the IPv4 header is linear, else through the helpers (dec_ttl).
 * 0 when the packet must not be forwarded. */
static __always_inline int fwd_dec_ttl(struct __sk_buff *skb, const struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	__u32 check;

	if (p->l3_off != sizeof(struct ethhdr) || (void *)(ip + 1) > end)
		return dec_ttl(skb, p);
	if (ip->ttl <= 1)
		return 0;
	check = ip->check;
	check += bpf_htons(0x0100);
	ip->check = (__u16)(check + (check >= 0xffff));
	ip->ttl--;
	return 1;
}

/*
 * Deliver to the container that owns daddr, as a switch would (no TTL change).
 * When daddr is not a local endpoint the stack routes it (TC_ACT_OK).
 */
static __always_inline int deliver_local(struct __sk_buff *skb, ip4_be daddr)
{
	struct endpoint_info *ep = endpoint_of(daddr);

	if (!ep)
		return TC_ACT_OK;
	return redirect_to_endpoint(skb, ep);
}

/*
 * A translated packet (DNAT, reverse NAT) crosses the node as a router would:
 * TTL decremented, then into the local container that owns p->daddr, or, when
 * none does, routed by FIB lookup (fib_redirect decrements TTL itself). A TTL
 * that would expire goes to the stack (TC_ACT_OK), which answers it.
 */
static __always_inline int deliver_routed(struct __sk_buff *skb, const struct pkt *p)
{
	struct endpoint_info *ep = endpoint_of(p->daddr);

	if (!ep)
		return fib_redirect(skb, p);
	if (!fwd_dec_ttl(skb, p))
		return TC_ACT_OK;
	return redirect_to_endpoint(skb, ep);
}

#endif
