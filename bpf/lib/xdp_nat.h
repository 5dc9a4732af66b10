/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Published-port DNAT in XDP, on the uplink, before the skb exists.
 *
 * Same frontend semantics as the tc path (nat.h, reused read-only:
 * frontend_match, nat_ct_record and snat_reply_entry take no context): exact (host IP, proto,
 * port) first, then the wildcard 0.0.0.0 only for node addresses
 * (bpfnet_addrs), never for 0.0.0.0 or 127.0.0.0/8 destinations. The same
 * bpfnet_nat_ct entry is recorded, so the container side's reverse NAT works
 * unchanged, and a reply tuple busy for another frontend is left to tc (which
 * counts the clash).
 *
 * Deliberately narrower than tc: only the common case is translated here
 * (plain 20-byte IPv4 header, complete TCP/UDP header, not a fragment).
 * Everything else - IP options, fragments, malformed or truncated headers,
 * ICMP, non-IPv4, ARP, frontend misses, clashes, replies to masqueraded flows
 * - is XDP_PASSed untouched and uncounted: the tc program behind it decides
 * and counts exactly as without XDP. So XDP only ever counts METRIC_DNAT (and
 * METRIC_CT_INSERT_FAIL through nat_ct_record) plus the per-port counters.
 *
 * Checksums are updated by hand (RFC 1624: HC' = ~(~HC + ~m + m')) on the
 * 16-bit words as they sit in memory (ones' complement sums do not care about
 * byte order). A UDP checksum of 0 (none) stays 0; a computed 0 becomes
 * 0xffff (RFC 768), as the kernel's BPF_F_MARK_MANGLED_0 does.
 *
 * Caveat: XDP cannot see skb->ip_summed. A CHECKSUM_PARTIAL packet (only
 * possible when the uplink is a veth whose peer sends with checksum offload)
 * carries a pseudo-header seed, not a checksum, in its L4 field; the full
 * update above leaves that seed stale. The receiving container's stack
 * trusts CHECKSUM_PARTIAL and never checks it, so delivery over veth works;
 * a real NIC never hands XDP a CHECKSUM_PARTIAL packet.
 *
 * After XDP_PASS the tc program on the same uplink sees a packet already
 * addressed to a container: its frontend lookup does not match (container
 * addresses are neither frontends nor node addresses), and its "no direct
 * access to container IPs" check asks dnat_flow_known() below.
 */
#ifndef BPFNET_XDP_NAT_H
#define BPFNET_XDP_NAT_H

#include "common.h"
#include "maps.h"
#include "parse.h"
#include "stats.h"
#include "nat.h"
#include "snat.h"

enum xdp_nat_result {
	XDP_NAT_NONE = 0,	/* nothing for XDP: pass to tc untouched */
	XDP_NAT_DONE,		/* translated */
};

/* ---- checksums (RFC 1624) ------------------------------------------------ */

static __always_inline __u16 xdp_csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* ~m + m' for a 32-bit field, as a sum of 16-bit words. */
static __always_inline __u32 xdp_csum_delta4(__u32 from, __u32 to)
{
	return (__u16)~(from & 0xffff) + (__u16)~(from >> 16) + (to & 0xffff) + (to >> 16);
}

static __always_inline __u32 xdp_csum_delta2(__u16 from, __u16 to)
{
	return (__u16)~from + (__u32)to;
}

/* HC' = ~(~HC + delta). */
static __always_inline __u16 xdp_csum_apply(__u16 check, __u32 delta)
{
	return (__u16)~xdp_csum_fold((__u32)(__u16)~check + delta);
}

/* ---- parsing (direct packet access) -------------------------------------- */

/*
 * The plain case only: Ethernet + 20-byte IPv4 header + complete TCP/UDP
 * header, consistent lengths, not a fragment. *l4 points at the TCP/UDP
 * header. Anything else returns a non-PARSE_L4 result; the caller passes it.
 * Only p's tuple is filled in: checksums are patched through the pointers.
 */
static __always_inline int xdp_parse(struct xdp_md *ctx, struct pkt *p,
				     struct iphdr **iph, void **l4)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u32 len, tot_len;

	if ((void *)(eth + 1) > end)
		return PARSE_MALFORMED;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return PARSE_OTHER;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return PARSE_MALFORMED;
	if (ip->version != 4 || ip->ihl < 5)
		return PARSE_MALFORMED;
	if (ip->ihl != 5)
		return PARSE_OTHER;	/* IP options: tc handles them */
	len = (__u32)(end - data);
	tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < sizeof(*ip) || sizeof(*eth) + tot_len > len)
		return PARSE_MALFORMED;
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return PARSE_FRAG;

	p->proto = ip->protocol;
	p->saddr = ip->saddr;
	p->daddr = ip->daddr;

	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *th = (void *)(ip + 1);

		if ((void *)(th + 1) > end || tot_len < sizeof(*ip) + sizeof(*th))
			return PARSE_MALFORMED;
		if (th->doff < 5 || tot_len < sizeof(*ip) + th->doff * 4)
			return PARSE_MALFORMED;
		p->sport = th->source;
		p->dport = th->dest;
		*l4 = th;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *uh = (void *)(ip + 1);

		if ((void *)(uh + 1) > end || tot_len < sizeof(*ip) + sizeof(*uh))
			return PARSE_MALFORMED;
		p->sport = uh->source;
		p->dport = uh->dest;
		*l4 = uh;
	} else {
		return PARSE_OTHER;
	}
	*iph = ip;
	return PARSE_L4;
}

/* ---- DNAT ---------------------------------------------------------------- */

/* Client -> node:hostPort becomes client -> container:containerPort. */
static __always_inline int xdp_nat_dnat(struct xdp_md *ctx)
{
	struct pkt p = {};
	struct port_key k = {};
	struct port_value *be;
	struct iphdr *ip = 0;
	void *l4 = 0;
	__u16 *check;
	ip4_be addr;
	port_be port;
	__u32 delta, len;

	if (xdp_parse(ctx, &p, &ip, &l4) != PARSE_L4 || !ip || !l4)
		return XDP_NAT_NONE;
	be = frontend_match(&p, &k, 0);
	if (!be)
		return XDP_NAT_NONE;
	/* A reply to a masqueraded flow: tc reverses those before it looks at
	 * frontends, so XDP leaves them to tc. */
	if (snat_reply_entry(&p))
		return XDP_NAT_NONE;
	addr = be->backend_addr;
	port = be->backend_port;
	if (nat_ct_record(&p, be) < 0)
		return XDP_NAT_NONE;	/* clash: tc refuses it again and counts it */

	/* IPv4 header: daddr. */
	ip->check = xdp_csum_apply(ip->check, xdp_csum_delta4(p.daddr, addr));
	ip->daddr = addr;

	/* TCP/UDP: pseudo-header daddr and dest port, in one update. The dest
	 * port sits at the same offset in both headers; so do the checksums
	 * relative to their own header (tcphdr.check 16, udphdr.check 6). */
	delta = xdp_csum_delta4(p.daddr, addr) + xdp_csum_delta2(p.dport, port);
	if (p.proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;

		th->check = xdp_csum_apply(th->check, delta);
		th->dest = port;
	} else {
		struct udphdr *uh = l4;

		check = &uh->check;
		if (*check) {
			*check = xdp_csum_apply(*check, delta);
			if (!*check)
				*check = 0xffff;
		}
		uh->dest = port;
	}

	len = (__u32)((long)ctx->data_end - (long)ctx->data);
	port_stats_add(&k, len);
	metric_inc(METRIC_DNAT, len);
	return XDP_NAT_DONE;
}

/* ---- for the tc program behind XDP --------------------------------------- */

/*
 * True when p (outside -> container, untranslated as far as tc can tell) is a
 * packet the XDP program translated: bpfnet_nat_ct holds its reply tuple
 * (container -> client) for a non-hairpin flow, AND the frontend that entry
 * names is still published to exactly p's destination. The second check keeps
 * the exception as narrow as the DNAT itself: someone outside reaching
 * container:port directly from (client, sport) gets in only where sending to
 * the published frontend from the same (client, sport) would have got them to
 * the same place; an unpublished port stops it at once, not at ct expiry.
 * Usable from any program type (map lookups only).
 */
static __always_inline int dnat_flow_known(const struct pkt *p)
{
	struct nat_ct_value *ct;
	struct port_key pk = {};
	struct port_value *be;

	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return 0;
	ct = nat_ct_find(p->daddr, p->saddr, p->dport, p->sport, p->proto);
	if (!ct || (ct->flags & NAT_CT_F_HAIRPIN))
		return 0;
	pk.addr = ct->orig_addr;
	pk.port = ct->orig_port;
	pk.proto = p->proto;
	be = frontend_find(&pk, 0);
	return be && be->backend_addr == p->daddr && be->backend_port == p->dport;
}

#endif
