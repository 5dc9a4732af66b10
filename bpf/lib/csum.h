/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Rewriting addresses and ports with correct checksums. Always through the
 * kernel's csum helpers rather than by hand: they know skb->ip_summed, so a
 * CHECKSUM_PARTIAL packet (veth, offload) gets only its pseudo-header part
 * fixed, and UDP's "no checksum" zero stays zero (BPF_F_MARK_MANGLED_0).
 */
#ifndef BPFNET_CSUM_H
#define BPFNET_CSUM_H

#include "common.h"
#include "parse.h"

static __always_inline __u64 l4_csum_flags(const struct pkt *p)
{
	return p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/* Replace the IPv4 address at l3_off + addr_off (saddr or daddr) where no L4
 * pseudo-header covers it: ICMP packets, or the IP header alone. */
static __always_inline int rewrite_l3_addr(struct __sk_buff *skb, const struct pkt *p,
					   __u32 addr_off, ip4_be old, ip4_be new)
{
	int ret = bpf_l3_csum_replace(skb, p->l3_off + offsetof(struct iphdr, check),
				      old, new, sizeof(new));

	if (ret < 0)
		return ret;
	return bpf_skb_store_bytes(skb, p->l3_off + addr_off, &new, sizeof(new), 0);
}

/* The same for TCP/UDP: their checksum covers the address (pseudo-header). */
static __always_inline int rewrite_addr(struct __sk_buff *skb, const struct pkt *p,
					__u32 addr_off, ip4_be old, ip4_be new)
{
	int ret = bpf_l4_csum_replace(skb, p->l4_csum_off, old, new,
				      BPF_F_PSEUDO_HDR | sizeof(new) | l4_csum_flags(p));

	if (ret < 0)
		return ret;
	return rewrite_l3_addr(skb, p, addr_off, old, new);
}

/* Replace the L4 port at l4_off + port_off (source or dest; same offset in TCP and UDP). */
static __always_inline int rewrite_port(struct __sk_buff *skb, const struct pkt *p,
					__u32 port_off, port_be old, port_be new)
{
	int ret;

	if (old == new)
		return 0;
	ret = bpf_l4_csum_replace(skb, p->l4_csum_off, old, new,
				  sizeof(new) | l4_csum_flags(p));
	if (ret < 0)
		return ret;
	return bpf_skb_store_bytes(skb, p->l4_off + port_off, &new, sizeof(new), 0);
}

/* Either of the above by protocol; nothing to do when the address stays. */
static __always_inline int rewrite_addr_any(struct __sk_buff *skb, const struct pkt *p,
					    __u32 addr_off, ip4_be old, ip4_be new)
{
	if (old == new)
		return 0;
	if (p->proto == IPPROTO_ICMP)
		return rewrite_l3_addr(skb, p, addr_off, old, new);
	return rewrite_addr(skb, p, addr_off, old, new);
}

/* Offset of the translatable "port" in the L4 header: TCP/UDP source or dest,
 * the ICMP echo identifier (one field for both directions). */
static __always_inline __u32 l4_port_off(__u8 proto, int dest)
{
	if (proto == IPPROTO_ICMP)
		return 4;
	return dest ? offsetof(struct tcphdr, dest) : offsetof(struct tcphdr, source);
}

/* Plain ones'-complement update of any 16-bit checksum field at off (an
 * embedded header's checksum): unlike bpf_l4_csum_replace this ignores
 * skb->ip_summed, which describes the outer packet only. */
static __always_inline int csum_field_replace(struct __sk_buff *skb, __u32 off,
					      __u32 old, __u32 new, __u32 size)
{
	return bpf_l3_csum_replace(skb, off, old, new, size);
}

#endif
