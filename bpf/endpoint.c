// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* tc ingress of a container veth's host side (packets *from* the container):
 * reverse translation of replies to published ports. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/nat.h"

SEC("tc")
int endpoint_ingress(struct __sk_buff *skb)
{
	struct pkt p = {};

	if (parse_ipv4_l4(skb, &p) != PARSE_L4)
		return TC_ACT_OK;

	switch (nat_rnat(skb, &p)) {
	case NAT_DONE:
		metric_inc(METRIC_RNAT, skb->len);
		return TC_ACT_OK;
	case NAT_FAILED:
		metric_inc(METRIC_REWRITE_FAIL, skb->len);
		return TC_ACT_SHOT;
	default:
		return TC_ACT_OK;
	}
}

char _license[] SEC("license") = "Dual BSD/GPL";
