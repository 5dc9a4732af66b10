/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The bpfnet map ABI: the ONLY definition of every map and of every key/value
 * layout shared with userspace. src/maps/generated/abi.ts is generated from the
 * BTF of the compiled objects (`make gen`); a test fails when the two disagree.
 *
 * Conventions the generator relies on (it reads typedef names from BTF):
 *   ip4_be  - IPv4 address, network byte order  -> TS string "a.b.c.d"
 *   port_be - L4 port, network byte order       -> TS number
 *   __u8/__u16/__u32 host order -> number, __u64 -> bigint, pad* fields -> zero
 * Keys are fully padded explicitly so that hashing never sees garbage bytes.
 */
#ifndef BPFNET_MAPS_H
#define BPFNET_MAPS_H

#include "common.h"

typedef __u32 ip4_be;
typedef __u16 port_be;

/* ---- published ports (DNAT frontends) ------------------------------------ */

/* (host IP or 0.0.0.0 for "every local address", protocol, host port). */
struct port_key {
	ip4_be  addr;
	port_be port;
	__u8    proto;		/* IPPROTO_TCP or IPPROTO_UDP */
	__u8    pad;
};

/* Where a published port goes: the container's address and port. */
struct port_value {
	ip4_be  backend_addr;
	port_be backend_port;
	__u16   flags;		/* reserved, 0 */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct port_key);
	__type(value, struct port_value);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} bpfnet_ports SEC(".maps");

/* ---- node addresses ------------------------------------------------------ */

/* The node's own IPv4 addresses: a wildcard frontend (addr 0.0.0.0) matches
 * only packets addressed to one of these, as Docker's `--dst-type LOCAL`. */
struct addr_key {
	ip4_be addr;
};

struct addr_value {
	__u32 flags;		/* reserved, 0 */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct addr_key);
	__type(value, struct addr_value);
	__uint(max_entries, 256);
} bpfnet_addrs SEC(".maps");

/* ---- reverse NAT state --------------------------------------------------- */

/* The reply tuple as the container sends it: container -> client. */
struct nat_ct_key {
	ip4_be  saddr;
	ip4_be  daddr;
	port_be sport;
	port_be dport;
	__u8    proto;
	__u8    pad[3];
};

/* The frontend the client originally addressed; restored on replies. */
struct nat_ct_value {
	ip4_be  orig_addr;
	port_be orig_port;
	__u16   flags;		/* reserved, 0 */
	__u64   last_seen_ns;	/* bpf_ktime_get_ns() of the last packet */
};

/* LRU: a flood of new flows evicts the oldest instead of failing inserts. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct nat_ct_key);
	__type(value, struct nat_ct_value);
	__uint(max_entries, 262144);
} bpfnet_nat_ct SEC(".maps");

/* ---- networks (isolation) ------------------------------------------------ */

/* Longest-prefix match of an address to the bpfnet network whose subnet holds
 * it. Containers on different networks must not reach each other directly
 * (Docker 29 drops inter-network forwarding); the endpoint program compares
 * the networks of source and destination. */
struct net_key {
	__u32  prefixlen;	/* LPM trie: significant bits of addr */
	ip4_be addr;
};

struct net_value {
	__u32 net_id;		/* agent-assigned, non-zero */
	__u32 flags;		/* NET_F_* */
};

#define NET_F_INTERNAL	0x1	/* --internal: nothing in or out of the subnet */
#define NET_F_NO_ICC	0x2	/* enable_icc=false */

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct net_key);
	__type(value, struct net_value);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} bpfnet_nets SEC(".maps");

/* ---- metrics ------------------------------------------------------------- */

/* Index into bpfnet_metrics. Append only: values are ABI. */
enum metric_id {
	METRIC_DNAT = 0,	/* published-port DNAT applied */
	METRIC_RNAT = 1,	/* reply reverse-translated */
	METRIC_PASS = 2,	/* matched nothing, passed untouched */
	METRIC_SKIP_FRAG = 3,	/* IPv4 fragment, passed untouched */
	METRIC_SKIP_MALFORMED = 4, /* bad or truncated header, passed untouched */
	METRIC_CT_INSERT_FAIL = 5, /* reverse NAT state not stored (flow still DNATed) */
	METRIC_REWRITE_FAIL = 6,   /* helper failed mid-rewrite: dropped */
	METRIC_CT_CLASH = 7,	/* reply tuple busy for another frontend: not DNATed */
	METRIC_DROP_ISOLATION = 8, /* container -> another network's address: dropped */
	METRIC_MAX = 9,
};

struct metric_value {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, enum metric_id);	/* enum keeps the ids in BTF */
	__type(value, struct metric_value);
	__uint(max_entries, METRIC_MAX);
} bpfnet_metrics SEC(".maps");

static __always_inline void metric_inc(__u32 id, __u32 bytes)
{
	struct metric_value *m = bpf_map_lookup_elem(&bpfnet_metrics, &id);

	if (m) {
		m->packets++;
		m->bytes += bytes;
	}
}

#endif
