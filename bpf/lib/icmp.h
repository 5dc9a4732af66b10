/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP errors about translated flows. An error quotes the offending datagram
 * as it was on the wire where the error arose, i.e. translated; the receiver
 * matches it against its own sockets, so the quote must be translated back
 * like the flow itself, along with the outer address:
 *   uplink ingress   quote node:natport -> remote     (SNAT)   -> container:port -> remote
 *   uplink ingress   quote node:hostport -> client    (DNAT)   -> container:cport -> client
 *   uplink egress    quote remote -> container:port   (SNAT)   -> remote -> node:natport
 *   container side   quote client -> container:cport  (DNAT)   -> client -> node:hostport
 * Fixed up: the quoted address and port, the quote's IP checksum, its L4
 * checksum when quoted (receivers do not check it, but Linux fixes it too and
 * it keeps the bytes honest), and the ICMP checksum over all of that. Errors
 * do not refresh flow state: an error must not keep a dead flow alive.
 * p comes from parse_ipv4_ext (PARSE_ICMP_ERROR).
 */
#ifndef BPFNET_ICMP_H
#define BPFNET_ICMP_H

#include "common.h"
#include "maps.h"
#include "parse.h"
#include "csum.h"
#include "nat.h"
#include "snat.h"

#define ICMP_INNER_SRC 0
#define ICMP_INNER_DST 1

/* True when p is an ICMP error with a translatable quote. p from
 * parse_ipv4_ext (already parsed), or from parse_ipv4_l4, which reports ICMP
 * as PARSE_OTHER: then the ICMP part is parsed here. */
static __always_inline int icmp_error_parsed(struct __sk_buff *skb, struct pkt *p)
{
	__u16 tot_len;

	if (p->in_l3_off)
		return 1;
	/* l4_off is 0 for fragments and non-IPv4 (p zeroed by the caller). */
	if (p->proto != IPPROTO_ICMP || !p->l4_off)
		return 0;
	if (bpf_skb_load_bytes(skb, p->l3_off + offsetof(struct iphdr, tot_len), &tot_len, 2) < 0)
		return 0;
	return parse_icmp(skb, p, p->l3_off + bpf_ntohs(tot_len)) == PARSE_ICMP_ERROR;
}

/* The ICMP checksum (p->l4_csum_off) follows a change of the message bytes. */
static __always_inline int icmp_csum_follow(struct __sk_buff *skb, const struct pkt *p,
					    __u32 old, __u32 new, __u32 size)
{
	return bpf_l4_csum_replace(skb, p->l4_csum_off, old, new, size);
}

/* Replace the quote's checksum field at off (updated by fix) and carry its
 * change into the ICMP checksum. */
static __always_inline int icmp_inner_csum(struct __sk_buff *skb, const struct pkt *p, __u32 off,
					   __u32 old_a, __u32 new_a, __u32 size_a,
					   __u32 old_b, __u32 new_b, __u32 size_b)
{
	__u16 before, after;

	if (bpf_skb_load_bytes(skb, off, &before, 2) < 0)
		return -1;
	if (size_a && csum_field_replace(skb, off, old_a, new_a, size_a) < 0)
		return -1;
	if (size_b && csum_field_replace(skb, off, old_b, new_b, size_b) < 0)
		return -1;
	if (bpf_skb_load_bytes(skb, off, &after, 2) < 0)
		return -1;
	return icmp_csum_follow(skb, p, before, after, 2);
}

/*
 * The quote's source (ICMP_INNER_SRC) or destination address and port become
 * (addr, port); p's in_* fields follow. 0 on success.
 */
static __always_inline int icmp_rewrite_inner(struct __sk_buff *skb, struct pkt *p, const int dst,
					      ip4_be addr, port_be port)
{
	ip4_be old_a = dst ? p->in_daddr : p->in_saddr;
	port_be old_p = dst ? p->in_dport : p->in_sport;
	__u32 a_off = p->in_l3_off + (dst ? offsetof(struct iphdr, daddr) : offsetof(struct iphdr, saddr));
	__u32 p_off = p->in_l4_off + l4_port_off(p->in_proto, dst);
	__u32 c_off = 0, pseudo = 0;

	if (old_a != addr) {
		if (icmp_inner_csum(skb, p, p->in_l3_off + offsetof(struct iphdr, check),
				    old_a, addr, 4, 0, 0, 0) < 0 ||
		    bpf_skb_store_bytes(skb, a_off, &addr, 4, 0) < 0 ||
		    icmp_csum_follow(skb, p, old_a, addr, 4) < 0)
			return -1;
	}

	/* The quoted L4 checksum, when the quote reaches it. */
	if (p->in_proto == IPPROTO_TCP) {
		if (p->in_l4_len >= offsetof(struct tcphdr, check) + 2)
			c_off = p->in_l4_off + offsetof(struct tcphdr, check);
		pseudo = 1;
	} else if (p->in_proto == IPPROTO_UDP) {
		__u16 c;

		/* Always quoted (first 8 bytes); zero = sent without: stays zero. */
		if (bpf_skb_load_bytes(skb, p->in_l4_off + offsetof(struct udphdr, check), &c, 2) < 0)
			return -1;
		if (c)
			c_off = p->in_l4_off + offsetof(struct udphdr, check);
		pseudo = 1;
	} else {
		c_off = p->in_l4_off + 2;	/* quoted echo: no pseudo-header */
	}
	if (c_off && (old_p != port || (pseudo && old_a != addr))) {
		if (icmp_inner_csum(skb, p, c_off,
				    old_a, addr, pseudo && old_a != addr ? 4 : 0,
				    old_p, port, old_p != port ? 2 : 0) < 0)
			return -1;
	}

	if (old_p != port) {
		if (bpf_skb_store_bytes(skb, p_off, &port, 2, 0) < 0 ||
		    icmp_csum_follow(skb, p, old_p, port, 2) < 0)
			return -1;
	}
	if (dst) {
		p->in_daddr = addr;
		p->in_dport = port;
	} else {
		p->in_saddr = addr;
		p->in_sport = port;
	}
	if (p->in_proto == IPPROTO_ICMP) {
		p->in_sport = port;
		p->in_dport = port;
	}
	return 0;
}

/* The outer source or destination of the ICMP message itself (no pseudo-header). */
static __always_inline int icmp_rewrite_outer(struct __sk_buff *skb, struct pkt *p, const int dst,
					      ip4_be addr)
{
	ip4_be old = dst ? p->daddr : p->saddr;

	if (old == addr)
		return 0;
	if (rewrite_l3_addr(skb, p, dst ? offsetof(struct iphdr, daddr) : offsetof(struct iphdr, saddr),
			    old, addr) < 0)
		return -1;
	if (dst)
		p->daddr = addr;
	else
		p->saddr = addr;
	return 0;
}

/*
 * Errors about masqueraded flows; the quote reversed is a bpfnet_snat key.
 *   egress 0 (uplink ingress): quote node:natport -> remote, its IN key; it
 *     goes to the container: quote container:port -> remote, outer
 *     destination the container (when it was the quote's source, as every
 *     sane sender addresses it).
 *   egress 1 (uplink egress): an error from a container about a reply it got
 *     (quote remote -> container:port, its OUT key) leaves as the node: quote
 *     remote -> node:natport, outer source the node. Also fixes the quote of
 *     errors the node itself sends about such replies.
 * SNAT_DONE, SNAT_NONE or SNAT_FAILED.
 */
static __always_inline int icmp_error_masq(struct __sk_buff *skb, struct pkt *p, const int egress)
{
	struct snat_key k = {
		.saddr = p->in_daddr, .daddr = p->in_saddr,
		.sport = p->in_dport, .dport = p->in_sport,
		.proto = p->in_proto, .dir = egress ? SNAT_DIR_OUT : SNAT_DIR_IN,
	};
	/* Our side of the quote, before it is rewritten. */
	ip4_be ours = egress ? p->in_daddr : p->in_saddr;
	struct snat_value *v;
	ip4_be addr;
	port_be port;

	if (!p->in_l3_off)
		return SNAT_NONE;
	v = bpf_map_lookup_elem(&bpfnet_snat, &k);
	if (!v)
		return SNAT_NONE;
	addr = v->addr;
	port = v->port;
	if (icmp_rewrite_inner(skb, p, egress ? ICMP_INNER_DST : ICMP_INNER_SRC, addr, port) < 0)
		return SNAT_FAILED;
	if ((egress ? p->saddr : p->daddr) == ours && icmp_rewrite_outer(skb, p, !egress, addr) < 0)
		return SNAT_FAILED;
	return SNAT_DONE;
}

static __always_inline int icmp_error_rsnat(struct __sk_buff *skb, struct pkt *p)
{
	return icmp_error_masq(skb, p, 0);
}

static __always_inline int icmp_error_snat(struct __sk_buff *skb, struct pkt *p)
{
	return icmp_error_masq(skb, p, 1);
}

/*
 * Uplink ingress: an error about a reply of a published-port flow (quote
 * node:hostport -> client, as the reply left: a router's "fragmentation
 * needed" is how the container learns the path MTU) goes to the container:
 * quote container:port -> client, outer destination the container. Only for
 * a flow bpfnet_nat_ct knows, so forged errors reach no one. NAT_DONE,
 * NAT_NONE or NAT_FAILED.
 */
static __always_inline int icmp_error_dnat(struct __sk_buff *skb, struct pkt *p)
{
	struct port_key fk = { .addr = p->in_saddr, .port = p->in_sport, .proto = p->in_proto };
	struct nat_ct_value *ct;
	struct port_value *be;
	ip4_be node = p->in_saddr, addr;
	port_be port;

	if (!p->in_l3_off || !node || (p->in_proto != IPPROTO_TCP && p->in_proto != IPPROTO_UDP))
		return NAT_NONE;
	be = frontend_find(&fk, 0);
	if (!be)
		return NAT_NONE;
	addr = be->backend_addr;
	port = be->backend_port;
	ct = nat_ct_find(addr, p->in_daddr, port, p->in_dport, p->in_proto);
	if (!ct || ct->orig_addr != node || ct->orig_port != p->in_sport)
		return NAT_NONE;
	if (icmp_rewrite_inner(skb, p, ICMP_INNER_SRC, addr, port) < 0)
		return NAT_FAILED;
	if (p->daddr == node && icmp_rewrite_outer(skb, p, 1, addr) < 0)
		return NAT_FAILED;
	return NAT_DONE;
}

/*
 * Container side (for endpoint.c; p from parse_ipv4_l4 or parse_ipv4_ext):
 * a container's error about a packet it got through a published port. The
 * quote client -> container:cport (reversed = a bpfnet_nat_ct key) becomes
 * client -> node:hostport and the error comes from node; for a hairpin flow
 * the quote's source and the outer destination get the client's real address
 * back. NAT_DONE (the caller counts METRIC_ICMP_XLATE and forwards it like a
 * reverse-NATed reply: fib_redirect), NAT_NONE, or NAT_FAILED (drop).
 */
static __always_inline int icmp_error_rnat(struct __sk_buff *skb, struct pkt *p)
{
	struct nat_ct_value *ct;
	ip4_be container, gw, orig, client;
	port_be orig_port;

	if (!icmp_error_parsed(skb, p) || (p->in_proto != IPPROTO_TCP && p->in_proto != IPPROTO_UDP))
		return NAT_NONE;
	container = p->in_daddr;
	gw = p->in_saddr;
	ct = nat_ct_find(container, gw, p->in_dport, p->in_sport, p->in_proto);
	if (!ct)
		return NAT_NONE;
	orig = ct->orig_addr;
	orig_port = ct->orig_port;
	client = (ct->flags & NAT_CT_F_HAIRPIN) ? ct->client_addr : 0;
	if (icmp_rewrite_inner(skb, p, ICMP_INNER_DST, orig, orig_port) < 0)
		return NAT_FAILED;
	if (p->saddr == container && icmp_rewrite_outer(skb, p, 0, orig) < 0)
		return NAT_FAILED;
	if (client) {
		if (icmp_rewrite_inner(skb, p, ICMP_INNER_SRC, client, p->in_sport) < 0)
			return NAT_FAILED;
		if (p->daddr == gw && icmp_rewrite_outer(skb, p, 1, client) < 0)
			return NAT_FAILED;
	}
	return NAT_DONE;
}

#endif
