// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* tc ingress of a container veth's host side (packets *from* the container):
 * reverse translation of replies to published ports, forwarded by FIB lookup
 * (the stack would drop a packet whose source is a node address); then
 * isolation: nothing reaches another network's containers directly. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/nat.h"
#include "lib/fib.h"
#include "lib/policy.h"

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	struct pkt p = {};
	int rc = parse_ipv4_l4(skb, &p);

	if (rc == PARSE_L4) {
		switch (nat_rnat(skb, &p)) {
		case NAT_DONE:
			metric_inc(METRIC_RNAT, skb->len);
			return fib_redirect(skb, &p);
		case NAT_FAILED:
			metric_inc(METRIC_REWRITE_FAIL, skb->len);
			return TC_ACT_SHOT;
		default:
			break;
		}
	}
	if (rc != PARSE_MALFORMED && cross_network(&p)) {
		metric_inc(METRIC_DROP_ISOLATION, skb->len);
		return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}

char _license[] SEC("license") = "Dual BSD/GPL";
