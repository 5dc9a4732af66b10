/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Anti-spoofing for frames leaving a container (tc ingress of its host-side
 * veth), against the endpoint the device belongs to (bpfnet_ifaces):
 *
 *   - every frame: Ethernet source == the endpoint's MAC (a frame of any
 *     EtherType with another source would poison the bridge's FDB and pull
 *     other endpoints' traffic toward this container);
 *   - IPv4: source address == the endpoint's address (also for fragments,
 *     ICMP and packets the parser calls malformed, as long as the fixed
 *     header is there to read);
 *   - ARP (Ethernet/IPv4): sender MAC == the endpoint's MAC and sender IP ==
 *     the endpoint's address, or 0.0.0.0 (an RFC 5227 probe, `arping -D`).
 *     ARP that is not Ethernet/IPv4 or is truncated cannot be checked and is
 *     refused.
 *
 * IPv6 addresses are not checked (bpfnet has no IPv6 yet); the MAC still is.
 * An endpoint MAC of 00:00:00:00:00:00 means "not known": no MAC checks.
 */
#ifndef BPFNET_ANTISPOOF_H
#define BPFNET_ANTISPOOF_H

#include "common.h"
#include "maps.h"
#include "parse.h"

#ifndef ETH_P_ARP
#define ETH_P_ARP 0x0806
#endif

/* The Ethernet header as loaded once by the endpoint program; 8-aligned so
 * the compiler may compare the source with aligned half/word loads. */
struct eth_view {
	__u8   dst[6];
	__u8   src[6];
	__be16 proto;
} __attribute__((aligned(8)));

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	__u8 d = 0;

#pragma unroll
	for (int i = 0; i < ETH_ALEN; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

static __always_inline int mac_is_zero(const __u8 *a)
{
	__u8 d = 0;

#pragma unroll
	for (int i = 0; i < ETH_ALEN; i++)
		d |= a[i];
	return d == 0;
}

/* ARP for Ethernet/IPv4, as on the wire (28 bytes after the Ethernet header). */
struct arp_eth_ipv4 {
	__be16 htype;
	__be16 ptype;
	__u8   hlen;
	__u8   plen;
	__be16 oper;
	__u8   sha[6];
	__u8   spa[4];
	__u8   tha[6];
	__u8   tpa[4];
};

static __always_inline int arp_sender_ok(struct __sk_buff *skb, const struct endpoint_info *ep, int check_mac)
{
	struct arp_eth_ipv4 arp;
	const __u8 *want = (const __u8 *)&ep->addr;
	__u8 d = 0, z = 0;

	if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr), &arp, sizeof(arp)) < 0)
		return 0;
	if (arp.htype != bpf_htons(1) || arp.ptype != bpf_htons(ETH_P_IP) ||
	    arp.hlen != ETH_ALEN || arp.plen != 4)
		return 0;
	if (check_mac && !mac_eq(arp.sha, ep->mac))
		return 0;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		d |= arp.spa[i] ^ want[i];
		z |= arp.spa[i];
	}
	return d == 0 || z == 0;
}

/*
 * True when the frame may leave the container. rc and p are parse_ipv4_l4's
 * result for this frame (saddr is filled in for PARSE_L4/OTHER/FRAG IPv4).
 */
static __always_inline int source_ok(struct __sk_buff *skb, const struct endpoint_info *ep,
				     const struct eth_view *eth, int rc, const struct pkt *p)
{
	int check_mac = !mac_is_zero(ep->mac);

	if (check_mac && !mac_eq(eth->src, ep->mac))
		return 0;
	if (eth->proto == bpf_htons(ETH_P_IP)) {
		ip4_be saddr = p->saddr;

		/* The parser gives up on a malformed header before reading the
		 * addresses; read the source ourselves when the fixed header is
		 * there (the receiving stack drops the packet anyway, but not
		 * before a bridge has flooded it). */
		if (rc == PARSE_MALFORMED &&
		    bpf_skb_load_bytes(skb, sizeof(struct ethhdr) + offsetof(struct iphdr, saddr),
				       &saddr, sizeof(saddr)) < 0)
			return 1;	/* a runt without an address: nothing to spoof */
		return saddr == ep->addr;
	}
	if (eth->proto == bpf_htons(ETH_P_ARP))
		return arp_sender_ok(skb, ep, check_mac);
	return 1;
}

#endif
