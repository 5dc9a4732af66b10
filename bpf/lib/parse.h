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
	/* Only from parse_ipv4_ext (parse_ipv4_l4 reports ICMP as PARSE_OTHER): */
	PARSE_ICMP_ECHO,	/* echo request/reply: sport = dport = identifier */
	PARSE_ICMP_ERROR,	/* error with a translatable embedded datagram (in_* filled in) */
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
	/* Filled in by parse_ipv4_ext only (parse_icmp: icmp_type too). */
	__u8    tcp_flags;	/* TCP: the flags byte (FIN 0x01 SYN 0x02 RST 0x04 ACK 0x10) */
	__u8    icmp_type;
	/* ICMP error: the embedded (offending) datagram; in_l3_off 0 = none. The
	 * outer l4_csum_off is then the ICMP checksum. */
	__u8    in_proto;
	__u8    in_l4_len;	/* embedded L4 bytes present, capped at 255 */
	__u32   in_l3_off;
	__u32   in_l4_off;
	ip4_be  in_saddr;
	ip4_be  in_daddr;
	port_be in_sport;	/* ICMP echo inside: both = identifier */
	port_be in_dport;
};

#define IP_MF     0x2000
#define IP_OFFSET 0x1fff

#define ICMP_ECHOREPLY		0
#define ICMP_DEST_UNREACH	3
#define ICMP_ECHO		8
#define ICMP_TIME_EXCEEDED	11
#define ICMP_PARAMETERPROB	12
#define ICMP_HLEN		8	/* type, code, checksum, 4 bytes of rest */

/* The datagram an ICMP error quotes, from l4_off + 8. Only the leading bytes
 * are there (RFC 792: IP header + 8 bytes; Linux quotes more): enough for the
 * ports / echo id, which is all translation needs. */
static __always_inline int parse_icmp_inner(struct __sk_buff *skb, struct pkt *p, __u32 end)
{
	struct iphdr ip;
	__u32 off = p->l4_off + ICMP_HLEN, l4_off;
	__u8 l4[8];

	if (off + sizeof(ip) > end || bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)) < 0)
		return PARSE_MALFORMED;
	if (ip.version != 4 || ip.ihl < 5)
		return PARSE_MALFORMED;
	l4_off = off + ip.ihl * 4;
	if (l4_off + sizeof(l4) > end || bpf_skb_load_bytes(skb, l4_off, l4, sizeof(l4)) < 0)
		return PARSE_MALFORMED;
	/* A non-first fragment quotes no L4 header: nothing to match it by. */
	if (ip.frag_off & bpf_htons(IP_OFFSET))
		return PARSE_OTHER;
	p->in_proto = ip.protocol;
	p->in_saddr = ip.saddr;
	p->in_daddr = ip.daddr;
	p->in_l3_off = off;
	p->in_l4_off = l4_off;
	p->in_l4_len = end - l4_off > 255 ? 255 : end - l4_off;
	if (ip.protocol == IPPROTO_TCP || ip.protocol == IPPROTO_UDP) {
		__builtin_memcpy(&p->in_sport, &l4[0], 2);
		__builtin_memcpy(&p->in_dport, &l4[2], 2);
		return PARSE_ICMP_ERROR;
	}
	if (ip.protocol == IPPROTO_ICMP && (l4[0] == ICMP_ECHO || l4[0] == ICMP_ECHOREPLY)) {
		__builtin_memcpy(&p->in_sport, &l4[4], 2);
		p->in_dport = p->in_sport;
		return PARSE_ICMP_ERROR;
	}
	p->in_l3_off = 0;
	return PARSE_OTHER;
}

static __always_inline int parse_icmp(struct __sk_buff *skb, struct pkt *p, __u32 end)
{
	__u8 h[ICMP_HLEN];

	if (p->l4_off + ICMP_HLEN > end || bpf_skb_load_bytes(skb, p->l4_off, h, sizeof(h)) < 0)
		return PARSE_MALFORMED;
	p->icmp_type = h[0];
	p->l4_csum_off = p->l4_off + 2;
	if (h[0] == ICMP_ECHO || h[0] == ICMP_ECHOREPLY) {
		__builtin_memcpy(&p->sport, &h[4], 2);
		p->dport = p->sport;
		return PARSE_ICMP_ECHO;
	}
	if (h[0] == ICMP_DEST_UNREACH || h[0] == ICMP_TIME_EXCEEDED || h[0] == ICMP_PARAMETERPROB)
		return parse_icmp_inner(skb, p, end);
	return PARSE_OTHER;
}

/* The one IPv4 parser. want_icmp is a compile-time constant: parse_ipv4_l4
 * reports ICMP as PARSE_OTHER, parse_ipv4_ext parses it and the TCP flags too
 * (not for every caller: each field filled in is a live value on every path). */
static __always_inline int __parse_ipv4(struct __sk_buff *skb, struct pkt *p, const int want_icmp)
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
		if (want_icmp)
			p->tcp_flags = ((__u8 *)&th)[13];
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
		return PARSE_L4;
	}
	if (want_icmp && ip.protocol == IPPROTO_ICMP)
		return parse_icmp(skb, p, p->l3_off + tot_len);
	return PARSE_OTHER;
}

/* IPv4 TCP/UDP only: ICMP and everything else is PARSE_OTHER. */
static __always_inline int parse_ipv4_l4(struct __sk_buff *skb, struct pkt *p)
{
	return __parse_ipv4(skb, p, 0);
}

/* parse_ipv4_l4 plus TCP flags, ICMP echo (PARSE_ICMP_ECHO) and ICMP errors
 * quoting a TCP/UDP/echo datagram (PARSE_ICMP_ERROR). */
static __always_inline int parse_ipv4_ext(struct __sk_buff *skb, struct pkt *p)
{
	return __parse_ipv4(skb, p, 1);
}

#endif
