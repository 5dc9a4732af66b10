/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one frontend rule every published-port lookup follows (tc, XDP, the
 * socket hooks, masquerade's port choice): the exact (address, port, proto)
 * key first, then the wildcard 0.0.0.0, which serves node addresses only.
 */
#ifndef BPFNET_FRONTEND_H
#define BPFNET_FRONTEND_H

#include "common.h"
#include "maps.h"

/* One of the node's own addresses (bpfnet_addrs). */
static __always_inline int nat_addr_is_node(ip4_be addr)
{
	struct addr_key a = { .addr = addr };

	return bpf_map_lookup_elem(&bpfnet_addrs, &a) != 0;
}

/*
 * The frontend for *k (pad zeroed by the caller). `wild_ok`: the caller
 * already knows the wildcard may apply to k->addr, else bpfnet_addrs is asked.
 * *k is left holding the key that matched (for the per-port counters).
 */
static __always_inline struct port_value *frontend_find(struct port_key *k, int wild_ok)
{
	ip4_be addr = k->addr;	/* read before the helper call, not reloaded after */
	struct port_value *v = bpf_map_lookup_elem(&bpfnet_ports, k);

	if (v)
		return v;
	if (!wild_ok && !nat_addr_is_node(addr))
		return 0;
	k->addr = 0;
	return bpf_map_lookup_elem(&bpfnet_ports, k);
}

#endif
