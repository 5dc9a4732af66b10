/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet parsing. Conservative by design: anything we do not fully understand
 * (non-IPv4, IP fragments, truncated or inconsistent headers) is reported so
 * the caller passes it untouched. Reads go through bpf_skb_load_bytes so IP
 * options (variable header length) need no verifier gymnastics.
 */
#ifndef BPFNET_PARSE_H
#define BPFNET_PARSE_H

#include "common.h"
#include "maps.h"

enum parse_result {
	PARSE_L4 = 0,		/* IPv4 TCP/UDP, tuple filled in */
	PARSE_OTHER,		/* valid but nothing for us (non-IPv4, ICMP, ...) */
	PARSE_FRAG,		/* IPv4 fragment */
	PARSE_MALFORMED,	/* truncated or inconsistent */
};

struct pkt {
	__u32   l3_off;
	__u32   l4_off;
	__u32   l4_csum_off;	/* absolute offset of the TCP/UDP checksum */
	ip4_be  saddr;
	ip4_be  daddr;
	port_be sport;
	port_be dport;
	__u8    proto;
	__u8    udp_csum_zero;	/* UDP sent without checksum: keep it that way */
};

#define IP_MF     0x2000
#define IP_OFFSET 0x1fff

static __always_inline int parse_ipv4_l4(struct __sk_buff *skb, struct pkt *p)
{
	struct ethhdr eth;
	struct iphdr ip;
	__u32 ihl_len, tot_len;

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
		return PARSE_MALFORMED;
	if (eth.h_proto != bpf_htons(ETH_P_IP))
		return PARSE_OTHER;

	p->l3_off = sizeof(struct ethhdr);
	if (bpf_skb_load_bytes(skb, p->l3_off, &ip, sizeof(ip)) < 0)
		return PARSE_MALFORMED;
	if (ip.version != 4 || ip.ihl < 5)
		return PARSE_MALFORMED;
	ihl_len = ip.ihl * 4;
	tot_len = bpf_ntohs(ip.tot_len);
	if (tot_len < ihl_len || p->l3_off + tot_len > skb->len)
		return PARSE_MALFORMED;
	/* Addresses first: policy (isolation) applies to fragments too. */
	p->proto = ip.protocol;
	p->saddr = ip.saddr;
	p->daddr = ip.daddr;
	if (ip.frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return PARSE_FRAG;

	p->l4_off = p->l3_off + ihl_len;
	p->udp_csum_zero = 0;

	if (ip.protocol == IPPROTO_TCP) {
		struct tcphdr th;

		if (tot_len < ihl_len + sizeof(th) ||
		    bpf_skb_load_bytes(skb, p->l4_off, &th, sizeof(th)) < 0)
			return PARSE_MALFORMED;
		if (th.doff < 5 || tot_len < ihl_len + th.doff * 4)
			return PARSE_MALFORMED;
		p->sport = th.source;
		p->dport = th.dest;
		p->l4_csum_off = p->l4_off + offsetof(struct tcphdr, check);
		return PARSE_L4;
	}
	if (ip.protocol == IPPROTO_UDP) {
		struct udphdr uh;

		if (tot_len < ihl_len + sizeof(uh) ||
		    bpf_skb_load_bytes(skb, p->l4_off, &uh, sizeof(uh)) < 0)
			return PARSE_MALFORMED;
		p->sport = uh.source;
		p->dport = uh.dest;
		p->l4_csum_off = p->l4_off + offsetof(struct udphdr, check);
		p->udp_csum_zero = uh.check == 0;
		return PARSE_L4;
	}
	return PARSE_OTHER;
}

#endif
