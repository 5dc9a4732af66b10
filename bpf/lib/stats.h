/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per published port counters (bpfnet_port_stats): created on first use,
 * atomic adds after that (a frontend is hit from every CPU). And the tc drop
 * verdict, which always counts its reason. */
#ifndef BPFNET_STATS_H
#define BPFNET_STATS_H

#include "common.h"
#include "maps.h"

static __always_inline void port_stats_add(const struct port_key *k, __u32 bytes)
{
	struct metric_value *s = bpf_map_lookup_elem(&bpfnet_port_stats, k);

	if (!s) {
		struct metric_value zero = {};

		/* NOEXIST: a racing CPU's insert wins and we add to it below. */
		bpf_map_update_elem(&bpfnet_port_stats, k, &zero, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&bpfnet_port_stats, k);
		if (!s)
			return;
	}
	__sync_fetch_and_add(&s->packets, 1);
	__sync_fetch_and_add(&s->bytes, bytes);
}

static __always_inline int drop(struct __sk_buff *skb, __u32 metric)
{
	metric_inc(metric, skb->len);
	return TC_ACT_SHOT;
}

#endif
