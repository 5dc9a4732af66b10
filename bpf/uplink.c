// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The node's uplink.
 * from_uplink (tc ingress): replies to masqueraded flows and ICMP errors
 * about them go back to their container; then published-port DNAT (and ICMP
 * errors about published-port replies); all are
 * delivered straight into the container when it is local. What we did not
 * translate may not reach container addresses unless the network allows
 * direct access (gateway mode nat, Docker's "direct routing" protection).
 * to_uplink (tc egress): masquerade of container traffic. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/nat.h"
#include "lib/snat.h"
#include "lib/icmp.h"
#include "lib/forward.h"
#include "lib/xdp_nat.h"

/* Outside -> a container address, untranslated: allowed only where the
 * network says so. The gateway is a node address: always reachable. */
static __always_inline int direct_denied(const struct pkt *p, int rc)
{
	struct net_value *net;

	if (!p->daddr)
		return 0;
	net = net_of(p->daddr);
	if (!net || p->daddr == net->gateway)
		return 0;
	if (net->flags & NET_F_INTERNAL)
		return METRIC_DROP_INTERNAL;
	if (!(net->flags & NET_F_DIRECT))
		return METRIC_DROP_DIRECT;
	if (rc == PARSE_L4)
		snat_pin_direct(p, net);
	return 0;
}

SEC("tc")
int from_uplink(struct __sk_buff *skb)
{
	struct pkt p = {};
	int rc = parse_ipv4_ext(skb, &p), ret;
	__u32 metric = METRIC_PASS;

	if (rc == PARSE_L4 || rc == PARSE_ICMP_ECHO || rc == PARSE_ICMP_ERROR) {
		ret = rc == PARSE_ICMP_ERROR ? icmp_error_rsnat(skb, &p) : snat_rev(skb, &p);
		if (ret == SNAT_DONE) {
			metric_inc(rc == PARSE_ICMP_ERROR ? METRIC_ICMP_XLATE : METRIC_RSNAT, skb->len);
			return deliver_local(skb, p.daddr);
		}
		if (ret == SNAT_FAILED)
			return drop(skb, METRIC_REWRITE_FAIL);
	}
	if (rc == PARSE_ICMP_ERROR) {
		ret = icmp_error_dnat(skb, &p);
		if (ret == NAT_DONE) {
			metric_inc(METRIC_ICMP_XLATE, skb->len);
			return deliver_local(skb, p.daddr);
		}
		if (ret == NAT_FAILED)
			return drop(skb, METRIC_REWRITE_FAIL);
	}
	if (rc == PARSE_L4) {
		switch (nat_dnat(skb, &p)) {
		case NAT_DONE:
			metric_inc(METRIC_DNAT, skb->len);
			return deliver_local(skb, p.daddr);
		case NAT_FAILED:
			return drop(skb, METRIC_REWRITE_FAIL);
		case NAT_CLASH:
			metric = METRIC_CT_CLASH;
			break;
		default:
			break;
		}
	}
	ret = direct_denied(&p, rc);
	if (ret) {
		/* With --xdp, published ports were translated before this hook:
		 * a flow the XDP program recorded is delivered, not refused. */
		if (rc == PARSE_L4 && dnat_flow_known(&p))
			return deliver_local(skb, p.daddr);
		return drop(skb, ret);
	}
	if (rc == PARSE_FRAG)
		metric = METRIC_SKIP_FRAG;
	else if (rc == PARSE_MALFORMED)
		metric = METRIC_SKIP_MALFORMED;
	metric_inc(metric, skb->len);
	return TC_ACT_OK;
}

SEC("tc")
int to_uplink(struct __sk_buff *skb)
{
	struct pkt p = {};
	int rc = parse_ipv4_ext(skb, &p), ret;
	__u32 done = METRIC_SNAT;

	switch (rc) {
	case PARSE_L4:
	case PARSE_ICMP_ECHO:
		ret = snat_v4(skb, &p);
		break;
	case PARSE_ICMP_ERROR:
		done = METRIC_ICMP_XLATE;
		ret = icmp_error_snat(skb, &p);
		if (ret == SNAT_NONE)
			ret = snat_other(&p);
		break;
	case PARSE_OTHER:
		ret = snat_other(&p);
		break;
	case PARSE_FRAG:
		/* Internal stays internal; masquerade needs fragment tracking,
		 * which bpfnet does not have yet: passed untouched. */
		if (snat_other(&p) == SNAT_INTERNAL)
			return drop(skb, METRIC_DROP_INTERNAL);
		metric_inc(METRIC_SKIP_FRAG, skb->len);
		return TC_ACT_OK;
	default:
		metric_inc(METRIC_SKIP_MALFORMED, skb->len);
		return TC_ACT_OK;
	}
	switch (ret) {
	case SNAT_DONE:
		metric_inc(done, skb->len);
		return TC_ACT_OK;
	case SNAT_FAILED:
		return drop(skb, METRIC_REWRITE_FAIL);
	case SNAT_NO_PORT:
		return drop(skb, METRIC_DROP_SNAT_NO_PORT);
	case SNAT_NO_STATE:
		return drop(skb, METRIC_DROP_SNAT_STATE);
	case SNAT_INTERNAL:
		return drop(skb, METRIC_DROP_INTERNAL);
	default:
		metric_inc(METRIC_PASS, skb->len);
		return TC_ACT_OK;
	}
}

char _license[] SEC("license") = "Dual BSD/GPL";
