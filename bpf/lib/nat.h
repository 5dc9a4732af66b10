/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Published-port DNAT and its reverse. DNAT looks the frontend up statelessly
 * on every packet (so a mapping applies to new and ongoing flows alike) and
 * records the reply tuple in bpfnet_nat_ct; the reverse translation on the
 * container side needs that record because a wildcard frontend could have been
 * reached through any node address.
 *
 * Two entry points translate toward a container:
 *   nat_dnat()        packets from outside (the uplink);
 *   nat_dnat_local()  packets from a container to a node address, including
 *                     hairpin (a container reaching its own published port:
 *                     its source becomes its network's gateway, recorded with
 *                     NAT_CT_F_HAIRPIN so the reply's destination is restored).
 * nat_rnat() reverses both on the replies.
 *
 * A destination in 127.0.0.0/8 never matches a frontend: a packet on the wire
 * addressed to loopback is not ours to translate; only the socket-level hooks
 * serve loopback frontends (moby#45610).
 */
#ifndef BPFNET_NAT_H
#define BPFNET_NAT_H

#include "common.h"
#include "maps.h"
#include "parse.h"
#include "csum.h"
#include "stats.h"
#include "frontend.h"

enum nat_result {
	NAT_NONE = 0,		/* nothing matched: pass untouched */
	NAT_DONE,		/* translated */
	NAT_FAILED,		/* a helper failed half-way: caller must drop */
	NAT_CLASH,		/* reply tuple in use by another frontend: pass untouched */
};

static __always_inline int nat_addr_is_loopback(ip4_be addr)
{
	return (bpf_ntohl(addr) >> 24) == 127;
}

/*
 * The frontend p addresses (frontend_find): `local` says the caller already
 * knows daddr is a node address. *k is left holding the key that matched.
 */
static __always_inline struct port_value *frontend_match(const struct pkt *p, struct port_key *k, int local)
{
	/* 0.0.0.0 is never a real destination; it must not hit a wildcard key. */
	if (!p->daddr || nat_addr_is_loopback(p->daddr))
		return 0;
	k->addr = p->daddr;
	k->port = p->dport;
	k->proto = p->proto;
	k->pad = 0;
	return frontend_find(k, local);
}

/* The reverse NAT state of the reply tuple saddr:sport -> daddr:dport. */
static __always_inline struct nat_ct_value *nat_ct_find(ip4_be saddr, ip4_be daddr, port_be sport,
							 port_be dport, __u8 proto)
{
	struct nat_ct_key k = {
		.saddr = saddr, .daddr = daddr, .sport = sport, .dport = dport, .proto = proto,
	};

	return bpf_map_lookup_elem(&bpfnet_nat_ct, &k);
}

/* A reply tuple still in use for another frontend is not taken over before
 * it has been idle this long: two flows sharing one reply tuple would get each
 * other's replies (conntrack calls this a clash). */
#define NAT_CT_CLASH_IDLE_NS (60ULL * 1000 * 1000 * 1000)

enum nat_ct_claim_result {
	NAT_CT_OK = 0,
	NAT_CT_BUSY = -1,	/* clash: the tuple belongs to another live flow */
	NAT_CT_NOT_NEW = -2,	/* no state and not the start of a TCP flow */
};

static __always_inline void nat_ct_key_of(struct nat_ct_key *k, const struct pkt *p,
					  const struct port_value *be)
{
	k->saddr = be->backend_addr;
	k->daddr = p->saddr;
	k->sport = be->backend_port;
	k->dport = p->sport;
	k->proto = p->proto;
}

/* A TCP segment that opens a connection: SYN without ACK. Loaded here, not
 * kept by parse_ipv4_l4: only a new flow from a container asks. */
static __always_inline int tcp_is_syn(struct __sk_buff *skb, const struct pkt *p)
{
	__u8 flags;

	if (bpf_skb_load_bytes(skb, p->l4_off + 13, &flags, 1) < 0)
		return 0;
	return (flags & 0x12) == 0x02;	/* SYN, not ACK */
}

/*
 * Record (or refresh) the reply tuple of p's flow toward backend be. The reply
 * comes back addressed to `peer` (the client, or the gateway it was SNATed to
 * for hairpin, flags NAT_CT_F_HAIRPIN). need_syn: a TCP flow without state is
 * only started by a SYN (see nat_dnat_local).
 */
static __always_inline int nat_ct_claim(struct __sk_buff *skb, const struct pkt *p,
					const struct port_value *be, ip4_be peer,
					__u16 flags, int need_syn)
{
	struct nat_ct_key k = {};
	__u64 now = bpf_ktime_get_ns();
	struct nat_ct_value *cur;

	nat_ct_key_of(&k, p, be);
	k.daddr = peer;
	cur = bpf_map_lookup_elem(&bpfnet_nat_ct, &k);
	if (cur) {
		/* Hot path: refresh in place. */
		if (cur->orig_addr == p->daddr && cur->orig_port == p->dport && cur->flags == flags) {
			cur->last_seen_ns = now;
			return NAT_CT_OK;
		}
		if (now - cur->last_seen_ns < NAT_CT_CLASH_IDLE_NS)
			return NAT_CT_BUSY;
	}
	if (need_syn && p->proto == IPPROTO_TCP && !tcp_is_syn(skb, p))
		return NAT_CT_NOT_NEW;

	struct nat_ct_value v = {
		.orig_addr = p->daddr,
		.orig_port = p->dport,
		.flags = flags,
		.client_addr = (flags & NAT_CT_F_HAIRPIN) ? p->saddr : 0,
		.last_seen_ns = now,
	};
	if (bpf_map_update_elem(&bpfnet_nat_ct, &k, &v, BPF_ANY) < 0)
		metric_inc(METRIC_CT_INSERT_FAIL, 0);
	return NAT_CT_OK;
}

/* Returns 0 when the flow may use this frontend, -1 on a clash. */
static __always_inline int nat_ct_record(const struct pkt *p, const struct port_value *be)
{
	return nat_ct_claim(0, p, be, p->saddr, 0, 0) < 0 ? -1 : 0;
}

/* The source (dst 0) or destination (dst 1) of a TCP/UDP packet becomes
 * (addr, port); p follows. */
static __always_inline int nat_rewrite(struct __sk_buff *skb, struct pkt *p, const int dst,
				       ip4_be addr, port_be port)
{
	if (rewrite_addr(skb, p, dst ? offsetof(struct iphdr, daddr) : offsetof(struct iphdr, saddr),
			 dst ? p->daddr : p->saddr, addr) < 0 ||
	    rewrite_port(skb, p, dst ? offsetof(struct tcphdr, dest) : offsetof(struct tcphdr, source),
			 dst ? p->dport : p->sport, port) < 0)
		return -1;
	if (dst) {
		p->daddr = addr;
		p->dport = port;
	} else {
		p->saddr = addr;
		p->sport = port;
	}
	return 0;
}

/* Client -> node:hostPort becomes client -> container:containerPort. */
static __always_inline int nat_dnat(struct __sk_buff *skb, struct pkt *p)
{
	struct port_key k = {};
	struct port_value *be = frontend_match(p, &k, 0);

	if (!be)
		return NAT_NONE;
	if (nat_ct_record(p, be) < 0)
		return NAT_CLASH;
	if (nat_rewrite(skb, p, 1, be->backend_addr, be->backend_port) < 0)
		return NAT_FAILED;
	port_stats_add(&k, skb->len);
	return NAT_DONE;
}

/*
 * Container -> node address:hostPort (the caller has established that daddr
 * is the node's: a bpfnet_addrs address or the sender's gateway), DNATed like
 * on the uplink. When the backend is the sender itself (hairpin), the source
 * becomes `gateway` so that the reply leaves the container again instead of
 * short-cutting through its loopback; *hairpin says so. gateway 0: no hairpin
 * possible (NAT_NONE).
 *
 * A TCP flow without state is only started by a SYN: a container's reply to a
 * node socket whose port happens to be a published port (a connection the
 * node opened toward the container) is left alone. UDP cannot tell the two
 * apart.
 */
static __always_inline int nat_dnat_local(struct __sk_buff *skb, struct pkt *p, ip4_be gateway, int *hairpin)
{
	struct port_key k = {};
	struct port_value *be = frontend_match(p, &k, 1);
	ip4_be client = p->saddr;
	int hp, r;

	*hairpin = 0;
	if (!be)
		return NAT_NONE;
	hp = be->backend_addr == client;
	if (hp && !gateway)
		return NAT_NONE;
	r = nat_ct_claim(skb, p, be, hp ? gateway : client, hp ? NAT_CT_F_HAIRPIN : 0, 1);
	if (r == NAT_CT_BUSY)
		return NAT_CLASH;
	if (r == NAT_CT_NOT_NEW)
		return NAT_NONE;
	if (nat_rewrite(skb, p, 1, be->backend_addr, be->backend_port) < 0)
		return NAT_FAILED;
	if (hp) {
		if (rewrite_addr(skb, p, offsetof(struct iphdr, saddr), client, gateway) < 0)
			return NAT_FAILED;
		p->saddr = gateway;
		*hairpin = 1;
	}
	port_stats_add(&k, skb->len);
	return NAT_DONE;
}

/* Container -> client replies get the frontend back as their source; a
 * hairpin reply (to the gateway) also gets the client's own address back as
 * its destination. */
static __always_inline int nat_rnat(struct __sk_buff *skb, struct pkt *p)
{
	struct nat_ct_value *ct = nat_ct_find(p->saddr, p->daddr, p->sport, p->dport, p->proto);
	ip4_be client;

	if (!ct)
		return NAT_NONE;
	ct->last_seen_ns = bpf_ktime_get_ns();
	client = (ct->flags & NAT_CT_F_HAIRPIN) ? ct->client_addr : 0;
	if (nat_rewrite(skb, p, 0, ct->orig_addr, ct->orig_port) < 0)
		return NAT_FAILED;
	if (client) {
		if (rewrite_addr(skb, p, offsetof(struct iphdr, daddr), p->daddr, client) < 0)
			return NAT_FAILED;
		p->daddr = client;
	}
	return NAT_DONE;
}

#endif
