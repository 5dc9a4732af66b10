/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Published-port DNAT and its reverse. DNAT looks the frontend up statelessly
 * on every packet (so a mapping applies to new and ongoing flows alike) and
 * records the reply tuple in bpfnet_nat_ct; the reverse translation on the
 * container side needs that record because a wildcard frontend could have been
 * reached through any node address.
 */
#ifndef BPFNET_NAT_H
#define BPFNET_NAT_H

#include "common.h"
#include "maps.h"
#include "parse.h"
#include "csum.h"

enum nat_result {
	NAT_NONE = 0,		/* nothing matched: pass untouched */
	NAT_DONE,		/* translated */
	NAT_FAILED,		/* a helper failed half-way: caller must drop */
	NAT_CLASH,		/* reply tuple in use by another frontend: pass untouched */
};

static __always_inline struct port_value *frontend_lookup(const struct pkt *p)
{
	struct port_key k = {
		.addr = p->daddr,
		.port = p->dport,
		.proto = p->proto,
	};
	struct addr_key a = { .addr = p->daddr };
	struct port_value *v;

	/* 0.0.0.0 is never a real destination; it must not hit a wildcard key. */
	if (!p->daddr)
		return 0;
	v = bpf_map_lookup_elem(&bpfnet_ports, &k);
	if (v)
		return v;
	/* Wildcard frontends apply only to the node's own addresses. */
	if (!bpf_map_lookup_elem(&bpfnet_addrs, &a))
		return 0;
	k.addr = 0;
	return bpf_map_lookup_elem(&bpfnet_ports, &k);
}

/* A reply tuple still in use for another frontend is not taken over before
 * it has been idle this long: two flows sharing one reply tuple would get each
 * other's replies (conntrack calls this a clash). */
#define NAT_CT_CLASH_IDLE_NS (60ULL * 1000 * 1000 * 1000)

static __always_inline void nat_ct_key_of(struct nat_ct_key *k, const struct pkt *p,
					  const struct port_value *be)
{
	k->saddr = be->backend_addr;
	k->daddr = p->saddr;
	k->sport = be->backend_port;
	k->dport = p->sport;
	k->proto = p->proto;
}

/* Returns 0 when the flow may use this frontend, -1 on a clash. */
static __always_inline int nat_ct_record(const struct pkt *p, const struct port_value *be)
{
	struct nat_ct_key k = {};
	__u64 now = bpf_ktime_get_ns();
	struct nat_ct_value *cur;

	nat_ct_key_of(&k, p, be);
	cur = bpf_map_lookup_elem(&bpfnet_nat_ct, &k);
	if (cur) {
		/* Hot path: refresh in place. */
		if (cur->orig_addr == p->daddr && cur->orig_port == p->dport) {
			cur->last_seen_ns = now;
			return 0;
		}
		if (now - cur->last_seen_ns < NAT_CT_CLASH_IDLE_NS)
			return -1;
	}
	struct nat_ct_value v = {
		.orig_addr = p->daddr,
		.orig_port = p->dport,
		.last_seen_ns = now,
	};
	if (bpf_map_update_elem(&bpfnet_nat_ct, &k, &v, BPF_ANY) < 0)
		metric_inc(METRIC_CT_INSERT_FAIL, 0);
	return 0;
}

/* Client -> node:hostPort becomes client -> container:containerPort. */
static __always_inline int nat_dnat(struct __sk_buff *skb, struct pkt *p)
{
	struct port_value *be = frontend_lookup(p);

	if (!be)
		return NAT_NONE;
	if (nat_ct_record(p, be) < 0)
		return NAT_CLASH;
	if (rewrite_addr(skb, p, offsetof(struct iphdr, daddr), p->daddr, be->backend_addr) < 0 ||
	    rewrite_port(skb, p, offsetof(struct tcphdr, dest), p->dport, be->backend_port) < 0)
		return NAT_FAILED;
	/* Keep the parsed tuple in step with the packet for later stages. */
	p->daddr = be->backend_addr;
	p->dport = be->backend_port;
	return NAT_DONE;
}

/* Container -> client replies get the frontend back as their source. */
static __always_inline int nat_rnat(struct __sk_buff *skb, struct pkt *p)
{
	struct nat_ct_key k = {
		.saddr = p->saddr,
		.daddr = p->daddr,
		.sport = p->sport,
		.dport = p->dport,
		.proto = p->proto,
	};
	struct nat_ct_value *ct = bpf_map_lookup_elem(&bpfnet_nat_ct, &k);

	if (!ct)
		return NAT_NONE;
	ct->last_seen_ns = bpf_ktime_get_ns();
	if (rewrite_addr(skb, p, offsetof(struct iphdr, saddr), p->saddr, ct->orig_addr) < 0 ||
	    rewrite_port(skb, p, offsetof(struct tcphdr, source), p->sport, ct->orig_port) < 0)
		return NAT_FAILED;
	p->saddr = ct->orig_addr;
	p->sport = ct->orig_port;
	return NAT_DONE;
}

#endif
