/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Network policy for packets leaving a container that no translation claimed:
 * isolation between networks, ICC, internal networks. Networks are found by
 * longest-prefix match of an address in bpfnet_nets.
 *
 * Decisions (Docker 28/29 semantics, see docker-networking.md):
 *   - A network's gateway address is the node, not a container: reaching it
 *     (own network or another network's) is never an isolation or ICC matter,
 *     like Docker, whose rules are in FORWARD and never in INPUT.
 *   - Isolation: source and destination in different networks -> drop.
 *   - ICC off (NET_F_NO_ICC): anything to the own subnet other than the
 *     gateway -> drop, subnet broadcast included; limited broadcast and
 *     multicast too (a bridge would flood them to the other containers;
 *     Docker's br_netfilter FORWARD drop does the same for bridged IPv4).
 *   - Internal (NET_F_INTERNAL): only destinations inside the subnet (the
 *     gateway is inside), plus limited broadcast and multicast (they stay on
 *     the bridge); anything else -> drop. Docker's rules drop everything
 *     leaving the subnet through the bridge; its INPUT chain would still let
 *     an internal container reach the node's other addresses, bpfnet does not
 *     ("nothing in or out of the subnet").
 */
#ifndef BPFNET_POLICY_H
#define BPFNET_POLICY_H

#include "common.h"
#include "maps.h"
#include "parse.h"

static __always_inline struct net_value *net_of(ip4_be addr)
{
	struct net_key k = { .prefixlen = 32, .addr = addr };

	return bpf_map_lookup_elem(&bpfnet_nets, &k);
}

/* True when source and destination both sit in bpfnet networks and those
 * differ. Traffic to non-container addresses (node, outside) is not ours to
 * judge here: it is routed, masqueraded or DNATed elsewhere. */
static __always_inline int cross_network(const struct pkt *p)
{
	struct net_value *dst, *src;

	dst = net_of(p->daddr);
	if (!dst)
		return 0;
	src = net_of(p->saddr);
	return src && src->net_id != dst->net_id;
}

/* 224.0.0.0/4 or 255.255.255.255: link-level group traffic, never routed here. */
static __always_inline int ipv4_is_group(ip4_be addr)
{
	__u32 a = bpf_ntohl(addr);

	return (a >> 28) == 0xe || a == 0xffffffff;
}

enum policy_verdict {
	POLICY_PASS = 0,	/* to the node or outside: the stack routes it */
	POLICY_SAME_NET,	/* a container of the sender's network: deliver it */
	POLICY_DROP_ISOLATION,
	POLICY_DROP_ICC,
	POLICY_DROP_INTERNAL,
};

/*
 * Internal networks, judged on the packet as the container sent it (before
 * any translation, so replies of translated flows are covered too): true when
 * it stays inside src's subnet.
 */
static __always_inline int internal_allows(const struct pkt *p, const struct net_value *src)
{
	struct net_value *dst;

	if (p->daddr == src->gateway || ipv4_is_group(p->daddr))
		return 1;
	dst = net_of(p->daddr);
	return dst && dst->net_id == src->net_id;
}

/* src: the sender's network (net_of(saddr)), or 0 when it has none. */
static __always_inline int policy_check(const struct pkt *p, const struct net_value *src)
{
	struct net_value *dst;

	if (!src)
		return POLICY_PASS;
	if (ipv4_is_group(p->daddr))
		return (src->flags & NET_F_NO_ICC) ? POLICY_DROP_ICC : POLICY_PASS;
	dst = net_of(p->daddr);
	if (!dst || p->daddr == dst->gateway)
		return POLICY_PASS;
	if (dst->net_id != src->net_id)
		return POLICY_DROP_ISOLATION;
	if (src->flags & NET_F_NO_ICC)
		return POLICY_DROP_ICC;
	return POLICY_SAME_NET;
}

#endif
