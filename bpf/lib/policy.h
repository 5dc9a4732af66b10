/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Network policy for packets leaving a container: isolation between networks. */
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

#endif
