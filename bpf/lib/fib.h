/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Forwarding a translated packet ourselves. After reverse NAT a reply's source
 * is one of the node's own addresses, which the stack's input path rejects as
 * martian; so we route it with bpf_fib_lookup and hand it to the egress device
 * with bpf_redirect_neigh (which also resolves L2), as Cilium does.
 */
#ifndef BPFNET_FIB_H
#define BPFNET_FIB_H

#include "common.h"
#include "parse.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/* Decrement TTL like a router would; 0 when the packet must not be forwarded. */
static __always_inline int dec_ttl(struct __sk_buff *skb, const struct pkt *p)
{
	__u8 ttl;

	if (bpf_skb_load_bytes(skb, p->l3_off + offsetof(struct iphdr, ttl), &ttl, 1) < 0 || ttl <= 1)
		return 0;
	/* TTL is the high byte of the 16-bit word it shares with the protocol. */
	if (bpf_l3_csum_replace(skb, p->l3_off + offsetof(struct iphdr, check),
				bpf_htons((__u16)ttl << 8), bpf_htons((__u16)(ttl - 1) << 8), 2) < 0)
		return 0;
	ttl--;
	return bpf_skb_store_bytes(skb, p->l3_off + offsetof(struct iphdr, ttl), &ttl, 1, 0) == 0;
}

/*
 * Route the (already translated) packet, whose tuple p reflects; TC_ACT_REDIRECT on success. When the
 * FIB cannot decide (forwarding disabled, no route, needs fragmentation, TTL
 * expiring) the packet goes to the stack with TC_ACT_OK, which reports the
 * error the usual way.
 */
static __always_inline int fib_redirect(struct __sk_buff *skb, const struct pkt *p)
{
	struct bpf_fib_lookup fib = {
		.family = AF_INET,
		.ipv4_src = p->saddr,
		.ipv4_dst = p->daddr,
		.l4_protocol = p->proto,
		.tot_len = skb->len - p->l3_off,
		.ifindex = skb->ifindex,
	};
	long ret = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);

	if (ret != BPF_FIB_LKUP_RET_SUCCESS && ret != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TC_ACT_OK;
	if (!dec_ttl(skb, p))
		return TC_ACT_OK;
	return bpf_redirect_neigh(fib.ifindex, 0, 0, 0);
}

#endif
