// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* tc ingress of the node's uplink: published-port DNAT toward containers.
 * Translated packets continue up the node's stack, which routes them to the
 * container's veth; everything else passes untouched. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/nat.h"

SEC("tc")
int from_uplink(struct __sk_buff *skb)
{
	struct pkt p = {};

	switch (parse_ipv4_l4(skb, &p)) {
	case PARSE_L4:
		break;
	case PARSE_FRAG:
		metric_inc(METRIC_SKIP_FRAG, skb->len);
		return TC_ACT_OK;
	case PARSE_MALFORMED:
		metric_inc(METRIC_SKIP_MALFORMED, skb->len);
		return TC_ACT_OK;
	default:
		metric_inc(METRIC_PASS, skb->len);
		return TC_ACT_OK;
	}

	switch (nat_dnat(skb, &p)) {
	case NAT_DONE:
		metric_inc(METRIC_DNAT, skb->len);
		return TC_ACT_OK;
	case NAT_FAILED:
		metric_inc(METRIC_REWRITE_FAIL, skb->len);
		return TC_ACT_SHOT;
	case NAT_CLASH:
		metric_inc(METRIC_CT_CLASH, skb->len);
		return TC_ACT_OK;
	default:
		metric_inc(METRIC_PASS, skb->len);
		return TC_ACT_OK;
	}
}

char _license[] SEC("license") = "Dual BSD/GPL";
