/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The embedded DNS redirect inside a sandbox, on its loopback device: Docker
 * answers 127.0.0.11:53 from a resolver bound to 127.0.0.11:<random port>
 * and DNATs between the two with iptables in the container's netns; this is
 * the same without iptables (and without conntrack: the rewrite is
 * stateless, both ways, per packet).
 *
 *   query  127.0.0.11:53   <- client   becomes  127.0.0.11:port <- client
 *   reply  127.0.0.11:port -> client   becomes  127.0.0.11:53   -> client
 *
 * Run on tc egress of `lo`: every packet between two local sockets of the
 * netns passes there exactly once (lo's xmit hands it straight to its own
 * receive path), before the receiving socket is looked up; so one hook
 * covers both directions, UDP and TCP. The port is the agent's, per netns:
 * bpfnet_dns[bpf_get_netns_cookie(skb)] (the helper exists for tc programs
 * since Linux 6.14). A netns without an entry (not served, or detached) is
 * left alone. Checksums through the csum helpers: lo hands TCP and UDP
 * CHECKSUM_PARTIAL, where a port change leaves the checksum field alone.
 */
#ifndef BPFNET_DNSREDIR_H
#define BPFNET_DNSREDIR_H

#include "common.h"
#include "maps.h"
#include "parse.h"
#include "csum.h"

/* 127.0.0.11, Docker's embedded resolver address, and the DNS port. */
#define DNS_RESOLVER_ADDR bpf_htonl(0x7f00000b)
#define DNS_PORT bpf_htons(53)

enum dnsredir_result {
	DNSREDIR_PASS = 0,	/* not ours: untouched */
	DNSREDIR_QUERY,		/* dport 53 -> the agent's port */
	DNSREDIR_REPLY,		/* sport the agent's port -> 53 */
	DNSREDIR_FAILED,	/* a helper failed mid-rewrite */
};

static __always_inline const struct dns_value *dnsredir_lookup(struct __sk_buff *skb)
{
	struct dns_key k = { .netns_cookie = bpf_get_netns_cookie(skb) };

	return bpf_map_lookup_elem(&bpfnet_dns, &k);
}

static __always_inline int dnsredir(struct __sk_buff *skb)
{
	const struct dns_value *v;
	struct pkt p = {};
	port_be port;

	if (parse_ipv4_l4(skb, &p) != PARSE_L4)
		return DNSREDIR_PASS;
	if (p.daddr == DNS_RESOLVER_ADDR && p.dport == DNS_PORT) {
		v = dnsredir_lookup(skb);
		if (!v || !v->port)
			return DNSREDIR_PASS;
		port = v->port;
		if (rewrite_port(skb, &p, offsetof(struct udphdr, dest), p.dport, port) < 0)
			return DNSREDIR_FAILED;
		return DNSREDIR_QUERY;
	}
	if (p.saddr == DNS_RESOLVER_ADDR && p.sport != DNS_PORT) {
		v = dnsredir_lookup(skb);
		if (!v || !v->port || v->port != p.sport)
			return DNSREDIR_PASS;
		if (rewrite_port(skb, &p, offsetof(struct udphdr, source), p.sport, DNS_PORT) < 0)
			return DNSREDIR_FAILED;
		return DNSREDIR_REPLY;
	}
	return DNSREDIR_PASS;
}

#endif
