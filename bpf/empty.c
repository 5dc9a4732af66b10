// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Baselines: the cheapest tc and XDP programs, for per-packet cost
 * comparisons and for exercising the loader's XDP path. */
#include "lib/common.h"

SEC("tc")
int empty_tc(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

SEC("xdp")
int empty_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
