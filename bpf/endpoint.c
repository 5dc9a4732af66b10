// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* tc ingress of a container veth's host side (packets *from* the container):
 * reverse translation of replies to published ports, then forwarded by FIB
 * lookup (the stack would drop a packet whose source is a node address). */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/nat.h"
#include "lib/fib.h"

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	struct pkt p = {};

	if (parse_ipv4_l4(skb, &p) != PARSE_L4)
		return TC_ACT_OK;

	switch (nat_rnat(skb, &p)) {
	case NAT_DONE:
		metric_inc(METRIC_RNAT, skb->len);
		return fib_redirect(skb, &p);
	case NAT_FAILED:
		metric_inc(METRIC_REWRITE_FAIL, skb->len);
		return TC_ACT_SHOT;
	default:
		return TC_ACT_OK;
	}
}

char _license[] SEC("license") = "Dual BSD/GPL";
