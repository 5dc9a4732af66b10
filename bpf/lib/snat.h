/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Masquerade (SNAT) of container traffic leaving through an uplink, and its
 * reverse for replies. State is two bpfnet_snat entries per flow:
 *   OUT  container tuple             -> (node address, allocated port)
 *   IN   reply tuple as it arrives   -> (container address, original port)
 * IN is inserted first with BPF_NOEXIST: that insert is what claims the port
 * (the IN key holds the remote's address and port, so a port is shared by
 * flows to different remotes, like Linux's tuple-unique NAT). OUT follows;
 * IN is rolled back when OUT fails. The agent garbage-collects pairs from
 * last_seen_ns and the state bits (src/dataplane/ebpf/gc.ts).
 *
 * Protocols: TCP and UDP (ports), ICMP echo (the identifier is the port).
 * Nothing else has ports to make a reply unambiguous, so other protocols from
 * a masqueraded network are dropped (counted as drop_snat_state) instead of
 * leaking the container's private address onto the uplink's network, where
 * no reply could come back anyway.
 */
#ifndef BPFNET_SNAT_H
#define BPFNET_SNAT_H

#include "common.h"
#include "maps.h"
#include "parse.h"
#include "csum.h"
#include "frontend.h"
#include "policy.h"

#ifndef EEXIST
#define EEXIST 17
#endif

/* Above Linux's default ip_local_port_range (32768-60999), so masquerade
 * never competes with the node's own sockets for a remote's tuple. */
#define SNAT_PORT_MIN_DEFAULT 61000
#define SNAT_PORT_MAX_DEFAULT 65535
/* Candidates tried per new flow before giving up (Cilium tries up to 128,
 * asking for GC after 64; GC here adapts its interval to what it deletes). */
#define SNAT_PROBES 32

#define SNAT_TCPF_FIN 0x01
#define SNAT_TCPF_SYN 0x02
#define SNAT_TCPF_RST 0x04
#define SNAT_TCPF_ACK 0x10

enum snat_result {
	SNAT_NONE = 0,		/* not ours: pass untouched */
	SNAT_DONE,		/* translated */
	SNAT_FAILED,		/* a helper failed half-way: drop (rewrite_fail) */
	SNAT_NO_PORT,		/* no free port among the candidates: drop */
	SNAT_NO_STATE,		/* state not storable (or no ports to key it by): drop */
	SNAT_INTERNAL,		/* source in an internal network: drop */
};

/* SNAT_ST_* bits a packet contributes (TCP only; REPLY is the caller's). */
static __always_inline __u8 snat_tcp_bits(const struct pkt *p)
{
	__u8 s = 0;

	if (p->proto != IPPROTO_TCP)
		return 0;
	if ((p->tcp_flags & (SNAT_TCPF_SYN | SNAT_TCPF_ACK)) == SNAT_TCPF_SYN)
		s |= SNAT_ST_SYN;
	if (p->tcp_flags & SNAT_TCPF_FIN)
		s |= SNAT_ST_FIN;
	if (p->tcp_flags & SNAT_TCPF_RST)
		s |= SNAT_ST_RST;
	return s;
}

/* Refresh an entry; the state byte is written only when it changes (the
 * entry's cache line is shared by every CPU carrying the flow). Returns 1
 * when a new connection reuses a closed tuple: its state starts over (else
 * GC would reap it after the short close timeout). */
static __always_inline int snat_touch(struct snat_value *v, __u8 bits, __u64 now)
{
	__u8 st = v->state;
	int restart = 0;

	if ((bits & SNAT_ST_SYN) && (st & (SNAT_ST_FIN | SNAT_ST_RST))) {
		st = 0;
		restart = 1;
	}
	st |= bits;
	if (st != v->state)
		v->state = st;
	v->last_seen_ns = now;
	return restart;
}

static __always_inline void snat_port_range(__u32 *min, __u32 *max)
{
	__u32 id = CONFIG_NODE;
	struct config_value *c = bpf_map_lookup_elem(&bpfnet_config, &id);

	*min = SNAT_PORT_MIN_DEFAULT;
	*max = SNAT_PORT_MAX_DEFAULT;
	if (c && c->snat_port_min && c->snat_port_min <= c->snat_port_max) {
		*min = c->snat_port_min;
		*max = c->snat_port_max;
	}
}

/* Where probing starts when the original port is out of range: a hash of the
 * tuple (deterministic, so a retransmitted first packet that lost a race
 * probes the same ports). Mirrored in test/bpf/snat.test.ts. */
static __always_inline __u32 snat_hash(const struct pkt *p)
{
	__u32 h = p->saddr ^ (p->daddr * 0x9e3779b1u) ^
		  (((__u32)p->sport << 16) | p->dport) ^ p->proto;

	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/* A published port on the masquerade address: replies would be fine (reverse
 * SNAT runs before DNAT), but a new connection from the same remote tuple
 * could not reach the published port while our flow lives. Skip it. */
static __always_inline int snat_port_published(ip4_be addr, port_be port, __u8 proto)
{
	struct port_key k = { .addr = addr, .port = port, .proto = proto };

	if (proto == IPPROTO_ICMP)
		return 0;
	/* addr is ours: the wildcard applies. */
	return frontend_find(&k, 1) != 0;
}

static __always_inline void snat_in_key(struct snat_key *k, const struct pkt *p,
					ip4_be addr, port_be port)
{
	k->saddr = p->daddr;
	k->daddr = addr;
	/* ICMP: the reply carries the (translated) identifier in both places. */
	k->sport = p->proto == IPPROTO_ICMP ? port : p->dport;
	k->dport = port;
	k->proto = p->proto;
	k->dir = SNAT_DIR_IN;
}

#define SNAT_ALLOC_NEW     0	/* IN entry inserted by us */
#define SNAT_ALLOC_ADOPTED 1	/* IN entry already mapped back to this flow (OUT lost) */

/*
 * Claim a port on addr for p's flow by inserting its IN entry. The original
 * port when it is in range and free, else from a hash, +1 each try. An IN
 * entry that already leads back to this very flow is adopted: its OUT half
 * was evicted (LRU) or collected, and keeping the port keeps the connection.
 */
static __always_inline int snat_alloc(const struct pkt *p, ip4_be addr, __u8 state, __u64 now,
				      port_be *out_port)
{
	struct snat_key in = {};
	struct snat_value v = { .addr = p->saddr, .port = p->sport, .state = state, .last_seen_ns = now };
	struct snat_value *cur;
	__u32 min, max, span, start, orig = bpf_ntohs(p->sport);
	int i, ret;

	snat_port_range(&min, &max);
	span = max - min + 1;
	start = orig >= min && orig <= max ? orig - min : snat_hash(p) % span;
#pragma clang loop unroll(disable)
	for (i = 0; i < SNAT_PROBES; i++) {
		port_be port;

		if ((__u32)i >= span)
			break;
		port = bpf_htons((__u16)(min + (start + i) % span));
		if (snat_port_published(addr, port, p->proto))
			continue;
		snat_in_key(&in, p, addr, port);
		ret = bpf_map_update_elem(&bpfnet_snat, &in, &v, BPF_NOEXIST);
		if (ret == 0) {
			*out_port = port;
			return SNAT_ALLOC_NEW;
		}
		if (ret != -EEXIST)
			return -SNAT_NO_STATE;
		cur = bpf_map_lookup_elem(&bpfnet_snat, &in);
		if (cur && cur->addr == p->saddr && cur->port == p->sport) {
			snat_touch(cur, state, now);
			*out_port = port;
			return SNAT_ALLOC_ADOPTED;
		}
	}
	return -SNAT_NO_PORT;
}

/* Source (dst 0) or destination (dst 1) becomes (addr, port); p follows the
 * packet (ICMP echo: the identifier is both ports). */
static __always_inline int snat_rewrite(struct __sk_buff *skb, struct pkt *p, const int dst,
					ip4_be addr, port_be port)
{
	if (rewrite_addr_any(skb, p, dst ? offsetof(struct iphdr, daddr) : offsetof(struct iphdr, saddr),
			     dst ? p->daddr : p->saddr, addr) < 0 ||
	    rewrite_port(skb, p, l4_port_off(p->proto, dst), dst ? p->dport : p->sport, port) < 0)
		return SNAT_FAILED;
	if (dst) {
		p->daddr = addr;
		p->dport = port;
	} else {
		p->saddr = addr;
		p->sport = port;
	}
	if (p->proto == IPPROTO_ICMP)
		p->sport = p->dport = port;
	return SNAT_DONE;
}

/* The masquerade address for a network leaving through ifindex; 0 = none. */
static __always_inline ip4_be snat_addr_for(const struct net_value *net, __u32 ifindex)
{
	struct uplink_key k = { .ifindex = ifindex };
	struct uplink_value *u;

	if (net->snat_addr)
		return net->snat_addr;
	u = bpf_map_lookup_elem(&bpfnet_uplinks, &k);
	return u ? u->snat_addr : 0;
}

/*
 * Policy for a packet leaving through the uplink from source net: SNAT_DONE
 * when it is to be masqueraded, SNAT_NONE to pass, SNAT_INTERNAL to drop.
 * The network's gateway is a node address, not a container: never dropped.
 */
static __always_inline int snat_policy(const struct pkt *p, const struct net_value *net)
{
	if (net->flags & NET_F_INTERNAL)
		return p->saddr == net->gateway ? SNAT_NONE : SNAT_INTERNAL;
	if (net->flags & NET_F_NO_MASQ)
		return SNAT_NONE;
	return SNAT_DONE;
}

/*
 * tc egress of an uplink, TCP/UDP/ICMP echo (p from parse_ipv4_ext). The
 * network lookup comes first, so a network's masquerade setting applies at
 * once to flows that already have state.
 */
static __always_inline int snat_v4(struct __sk_buff *skb, struct pkt *p)
{
	struct snat_key out = {
		.saddr = p->saddr, .daddr = p->daddr, .sport = p->sport, .dport = p->dport,
		.proto = p->proto, .dir = SNAT_DIR_OUT,
	};
	struct net_value *net = net_of(p->saddr), *dst;
	struct snat_value *v, ov = {};
	__u8 bits = snat_tcp_bits(p);
	__u64 now;
	ip4_be addr;
	port_be port;
	int ret;

	if (!net)
		return SNAT_NONE;
	ret = snat_policy(p, net);
	if (ret != SNAT_DONE)
		return ret;
	/* Echo replies answer pings that reached the container directly
	 * (NET_F_DIRECT): they keep its address. Only requests start flows. */
	if (p->proto == IPPROTO_ICMP && p->icmp_type != ICMP_ECHO)
		return SNAT_NONE;

	/* Hot path: an existing flow. */
	now = bpf_ktime_get_ns();
	v = bpf_map_lookup_elem(&bpfnet_snat, &out);
	if (v) {
		addr = v->addr;
		port = v->port;
		if (snat_touch(v, bits, now)) {
			/* GC reads both halves: the IN half starts over too. */
			struct snat_key in = {};
			struct snat_value *iv;

			snat_in_key(&in, p, addr, port);
			iv = bpf_map_lookup_elem(&bpfnet_snat, &in);
			if (iv)
				iv->state = bits;
		}
		if (addr == p->saddr && port == p->sport)
			return SNAT_NONE;	/* identity: see snat_pin_direct */
		return snat_rewrite(skb, p, 0, addr, port);
	}

	/* A new flow. Where outside may reach containers directly, a TCP
	 * packet other than a first SYN may answer such a connection: it must
	 * keep the container's address. Elsewhere any packet (re)creates state,
	 * so a flow whose entries were evicted keeps going, usually on the same
	 * port. */
	if ((net->flags & NET_F_DIRECT) && p->proto == IPPROTO_TCP && !(bits & SNAT_ST_SYN))
		return SNAT_NONE;
	dst = net_of(p->daddr);
	if (dst && dst->net_id == net->net_id)
		return SNAT_NONE;
	addr = snat_addr_for(net, skb->ifindex);
	if (!addr)
		return SNAT_NONE;

	ret = snat_alloc(p, addr, bits, now, &port);
	if (ret < 0)
		return -ret;
	ov.addr = addr;
	ov.port = port;
	ov.state = bits;
	ov.last_seen_ns = now;
	if (bpf_map_update_elem(&bpfnet_snat, &out, &ov, BPF_NOEXIST) < 0) {
		struct snat_key in = {};

		snat_in_key(&in, p, addr, port);
		if (ret == SNAT_ALLOC_NEW)
			bpf_map_delete_elem(&bpfnet_snat, &in);
		/* Another CPU set the flow up in between: use its mapping. */
		v = bpf_map_lookup_elem(&bpfnet_snat, &out);
		if (!v)
			return SNAT_NO_STATE;
		addr = v->addr;
		port = v->port;
	}
	return snat_rewrite(skb, p, 0, addr, port);
}

/* The IN entry of the flow p (a packet from outside) replies to, if any. */
static __always_inline struct snat_value *snat_reply_entry(const struct pkt *p)
{
	struct snat_key k = {
		.saddr = p->saddr, .daddr = p->daddr, .sport = p->sport, .dport = p->dport,
		.proto = p->proto, .dir = SNAT_DIR_IN,
	};

	return bpf_map_lookup_elem(&bpfnet_snat, &k);
}

/*
 * Reply from outside (tc ingress of an uplink): destination back to the
 * container. The OUT entry learns REPLY (and FIN/RST) so its GC timeout
 * follows the connection; that extra lookup happens only when a bit is new.
 */
static __always_inline int snat_rev(struct __sk_buff *skb, struct pkt *p)
{
	struct snat_value *v, *o;
	__u8 bits = snat_tcp_bits(p) | SNAT_ST_REPLY;
	ip4_be addr;
	port_be port;

	/* An echo request from outside is not a reply, whatever its id. */
	if (p->proto == IPPROTO_ICMP && p->icmp_type != ICMP_ECHOREPLY)
		return SNAT_NONE;
	v = snat_reply_entry(p);
	if (!v)
		return SNAT_NONE;
	addr = v->addr;
	port = v->port;
	if ((v->state | bits) != v->state) {
		struct snat_key ok = {
			.saddr = addr, .daddr = p->saddr, .sport = port,
			.dport = p->proto == IPPROTO_ICMP ? port : p->sport,
			.proto = p->proto, .dir = SNAT_DIR_OUT,
		};

		o = bpf_map_lookup_elem(&bpfnet_snat, &ok);
		if (o && (o->state | bits) != o->state)
			o->state |= bits & (SNAT_ST_REPLY | SNAT_ST_FIN | SNAT_ST_RST);
	}
	snat_touch(v, bits & ~SNAT_ST_SYN, bpf_ktime_get_ns());
	return snat_rewrite(skb, p, 1, addr, port);
}

/*
 * Uplink ingress, a UDP datagram reaching a container directly in a network
 * that both masquerades and allows direct access (nat-unprotected): the
 * container's answers must keep its address, but UDP has no SYN to tell an
 * answer from a new flow. An identity OUT entry (container tuple -> itself)
 * makes snat_v4 see an existing flow that translates to nothing; GC judges
 * it alone (it has no IN half) with the UDP timeout.
 */
static __always_inline void snat_pin_direct(const struct pkt *p, const struct net_value *net)
{
	struct snat_key k = {
		.saddr = p->daddr, .daddr = p->saddr, .sport = p->dport, .dport = p->sport,
		.proto = IPPROTO_UDP, .dir = SNAT_DIR_OUT,
	};
	struct snat_value v = { .addr = p->daddr, .port = p->dport, .state = SNAT_ST_REPLY };
	struct snat_value *cur;

	if (p->proto != IPPROTO_UDP || (net->flags & (NET_F_NO_MASQ | NET_F_INTERNAL)))
		return;
	v.last_seen_ns = bpf_ktime_get_ns();
	cur = bpf_map_lookup_elem(&bpfnet_snat, &k);
	if (cur) {
		/* Refresh only our own identity entry, never a real mapping. */
		if (cur->addr == v.addr && cur->port == v.port)
			cur->last_seen_ns = v.last_seen_ns;
		return;
	}
	bpf_map_update_elem(&bpfnet_snat, &k, &v, BPF_NOEXIST);
}

/*
 * Packets of a masqueraded network that snat_v4 cannot handle (other
 * protocols; ICMP types other than echo and errors pass): SNAT_NO_STATE to
 * drop (see the file comment), SNAT_INTERNAL, or SNAT_NONE.
 */
static __always_inline int snat_other(const struct pkt *p)
{
	struct net_value *net;
	int ret;

	if (!p->saddr)
		return SNAT_NONE;
	net = net_of(p->saddr);
	if (!net)
		return SNAT_NONE;
	ret = snat_policy(p, net);
	if (ret != SNAT_DONE)
		return ret;
	if (p->proto == IPPROTO_ICMP || p->saddr == net->gateway)
		return SNAT_NONE;
	return SNAT_NO_STATE;
}

#endif
