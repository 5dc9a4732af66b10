// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tc ingress of a container veth's host side: every packet *from* a container.
 *
 *   1. anti-spoofing against the endpoint of this device (bpfnet_ifaces);
 *      no entry (an endpoint being set up) -> no check;
 *   2. internal networks: nothing leaves the subnet (before any translation,
 *      so replies of translated flows are held to it too);
 *   3. reverse NAT of replies to published ports (hairpin replies get their
 *      destination back too), delivered into the local client container or
 *      routed out by FIB lookup;
 *   4. published ports reached from a container through a node address (a
 *      bpfnet_addrs address or the network's gateway, like Docker's
 *      `--dst-type LOCAL`): DNAT (hairpin: source SNATed to the gateway) and
 *      delivery into the backend;
 *   5. policy for the rest: isolation, ICC, and same-network traffic
 *      delivered straight into the peer container; the node and outside
 *      destinations go to the stack (to_uplink masquerades them).
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/nat.h"
#include "lib/fib.h"
#include "lib/policy.h"
#include "lib/forward.h"
#include "lib/antispoof.h"
#include "lib/icmp.h"

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	struct endpoint_info *ep = endpoint_of_iface(skb->ifindex);
	struct eth_view eth;
	struct net_value *net;
	struct pkt p = {};
	int rc, hairpin;

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(struct ethhdr)) < 0)
		return TC_ACT_OK;	/* shorter than Ethernet: the stack drops it */
	rc = parse_ipv4_l4(skb, &p);

	/* 1. anti-spoofing */
	if (ep && !source_ok(skb, ep, &eth, rc, &p))
		return drop(skb, METRIC_DROP_SPOOF);
	if (eth.proto != bpf_htons(ETH_P_IP) || rc == PARSE_MALFORMED)
		return TC_ACT_OK;	/* ARP, IPv6, ...; malformed IPv4: the stack drops it */

	/* 2. internal networks */
	net = net_of(p.saddr);
	if (net && (net->flags & NET_F_INTERNAL) && !internal_allows(&p, net))
		return drop(skb, METRIC_DROP_INTERNAL);

	if (rc == PARSE_L4) {
		/* 3. replies of translated flows */
		switch (nat_rnat(skb, &p)) {
		case NAT_DONE:
			metric_inc(METRIC_RNAT, skb->len);
			return deliver_routed(skb, &p);
		case NAT_FAILED:
			return drop(skb, METRIC_REWRITE_FAIL);
		default:
			break;
		}

		/* 4. published ports through a node address (not from internal
		 * networks: Docker publishes nothing for them) */
		if (!(net && (net->flags & NET_F_INTERNAL)) &&
		    ((net && net->gateway && p.daddr == net->gateway) || nat_addr_is_node(p.daddr))) {
			switch (nat_dnat_local(skb, &p, net ? net->gateway : 0, &hairpin)) {
			case NAT_DONE:
				metric_inc(METRIC_DNAT, skb->len);
				if (hairpin)
					metric_inc(METRIC_HAIRPIN, skb->len);
				return deliver_routed(skb, &p);
			case NAT_FAILED:
				return drop(skb, METRIC_REWRITE_FAIL);
			case NAT_CLASH:
				metric_inc(METRIC_CT_CLASH, skb->len);
				return TC_ACT_OK;
			default:
				break;
			}
		}
	}

	/* ICMP errors a container sends about a flow that reached it through a
	 * published port (port unreachable, frag needed): the outer source and
	 * the quoted packet go back to the frontend the client used. */
	if (rc == PARSE_OTHER && p.proto == IPPROTO_ICMP) {
		switch (icmp_error_rnat(skb, &p)) {
		case NAT_DONE:
			metric_inc(METRIC_ICMP_XLATE, skb->len);
			return deliver_routed(skb, &p);
		case NAT_FAILED:
			return drop(skb, METRIC_REWRITE_FAIL);
		default:
			break;
		}
	}

	/* 5. policy for untranslated traffic (TCP, UDP, ICMP, fragments) */
	switch (policy_check(&p, net)) {
	case POLICY_SAME_NET:
		return deliver_local(skb, p.daddr);
	case POLICY_DROP_ISOLATION:
		return drop(skb, METRIC_DROP_ISOLATION);
	case POLICY_DROP_ICC:
		return drop(skb, METRIC_DROP_ICC);
	default:
		return TC_ACT_OK;
	}
}

char _license[] SEC("license") = "Dual BSD/GPL";
