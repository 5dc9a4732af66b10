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
typedef __u8 mac_addr[6];	/* Ethernet address -> TS string "aa:bb:cc:dd:ee:ff" */

struct metric_value {
	__u64 packets;
	__u64 bytes;
};

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

/* Per published port counters (packets and bytes toward the container), keyed
 * by the frontend that matched. Created by the programs on first use with
 * BPF_NOEXIST and updated with atomic adds; the agent deletes an entry when
 * its port is unpublished. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct port_key);
	__type(value, struct metric_value);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} bpfnet_port_stats SEC(".maps");

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
	__u16   flags;		/* NAT_CT_F_* */
	ip4_be  client_addr;	/* hairpin: the client's real address, restored as
				 * the reply's destination (the key's daddr is the
				 * gateway it was SNATed to); 0 otherwise */
	__u32   pad;
	__u64   last_seen_ns;	/* bpf_ktime_get_ns() of the last packet */
};

#define NAT_CT_F_HAIRPIN 0x1	/* client source was SNATed to the gateway */

/* LRU: a flood of new flows evicts the oldest instead of failing inserts. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct nat_ct_key);
	__type(value, struct nat_ct_value);
	__uint(max_entries, 262144);
} bpfnet_nat_ct SEC(".maps");

/* ---- uplinks (masquerade) ----------------------------------------------- */

struct uplink_key {
	__u32 ifindex;
};

/* The source address masqueraded traffic leaving through this uplink gets. */
struct uplink_value {
	ip4_be snat_addr;
	__u32  flags;		/* reserved, 0 */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct uplink_key);
	__type(value, struct uplink_value);
	__uint(max_entries, 64);
} bpfnet_uplinks SEC(".maps");

/* ---- SNAT / masquerade state --------------------------------------------- */

#define SNAT_DIR_OUT 1		/* key = the tuple as the container sent it */
#define SNAT_DIR_IN  2		/* key = the reply tuple as it arrives (remote -> node) */

/* TCP and UDP: ports; ICMP echo: sport = dport = echo id. */
struct snat_key {
	ip4_be  saddr;
	ip4_be  daddr;
	port_be sport;
	port_be dport;
	__u8    proto;
	__u8    dir;		/* SNAT_DIR_* */
	__u8    pad[2];
};

/* OUT: the translated source (node address, allocated port);
 * IN: the container's original address and port, restored as destination. */
struct snat_value {
	ip4_be  addr;
	port_be port;
	__u8    state;		/* SNAT_ST_* seen so far, for garbage collection */
	__u8    flags;		/* reserved, 0 */
	__u64   last_seen_ns;
};

#define SNAT_ST_SYN	0x1	/* TCP SYN sent */
#define SNAT_ST_REPLY	0x2	/* a reply came back (established for UDP/ICMP too) */
#define SNAT_ST_FIN	0x4	/* TCP FIN seen either way */
#define SNAT_ST_RST	0x8	/* TCP RST seen either way */

/* Both directions of every masqueraded flow; LRU so a flood evicts the oldest
 * rather than failing, and the agent garbage-collects expired pairs. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct snat_key);
	__type(value, struct snat_value);
	__uint(max_entries, 262144);
} bpfnet_snat SEC(".maps");

/* ---- endpoints (delivery, anti-spoofing) --------------------------------- */

struct endpoint_key {
	ip4_be addr;
};

struct iface_key {
	__u32 ifindex;
};

/* One container interface; the value of both bpfnet_endpoints (by address)
 * and bpfnet_ifaces (by host-side ifindex). */
struct endpoint_info {
	ip4_be   addr;		/* the container's address */
	__u32    ifindex;	/* host side of its veth pair */
	mac_addr mac;		/* the container interface's MAC */
	__u16    pad;
	__u32    net_id;	/* bpfnet_nets id of its network */
	__u32    flags;		/* reserved, 0 */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} bpfnet_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct iface_key);
	__type(value, struct endpoint_info);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} bpfnet_ifaces SEC(".maps");

/* ---- socket-level translation (node-local clients) ----------------------- */

/* What a socket connected or sent to, after translation: restored as the
 * peer address by recvmsg4/getpeername4 so the application sees the address
 * it used. */
struct sock_rev_key {
	__u64   cookie;		/* bpf_get_socket_cookie() */
	ip4_be  addr;		/* backend */
	port_be port;
	__u8    proto;
	__u8    pad;
};

struct sock_rev_value {
	ip4_be  addr;		/* frontend */
	port_be port;
	__u16   pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct sock_rev_key);
	__type(value, struct sock_rev_value);
	__uint(max_entries, 65536);
} bpfnet_sock_rev SEC(".maps");

/* ---- agent configuration -------------------------------------------------- */

enum config_id {
	CONFIG_NODE = 0,
	CONFIG_MAX = 1,
};

struct config_value {
	__u64 netns_cookie;	/* the node's netns: cgroup hooks act only there */
	__u16 snat_port_min;	/* masquerade source ports, host order, inclusive */
	__u16 snat_port_max;
	__u32 flags;		/* reserved, 0 */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, enum config_id);
	__type(value, struct config_value);
	__uint(max_entries, CONFIG_MAX);
} bpfnet_config SEC(".maps");

/* ---- embedded DNS redirect (inside sandboxes) ----------------------------- */

/* 127.0.0.11:53 inside a sandbox is served by the agent on 127.0.0.11:port;
 * the sandbox's loopback program rewrites between the two. */
struct dns_key {
	__u64 netns_cookie;
};

struct dns_value {
	port_be port;
	__u16   pad;
	__u32   flags;		/* reserved, 0 */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct dns_key);
	__type(value, struct dns_value);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} bpfnet_dns SEC(".maps");

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
	__u32  net_id;		/* agent-assigned, non-zero */
	__u32  flags;		/* NET_F_* */
	ip4_be gateway;		/* the node's address on this network */
	ip4_be snat_addr;	/* host_ipv4: masquerade to this; 0 = the uplink's */
};

#define NET_F_INTERNAL	0x1	/* --internal / gateway mode isolated: nothing in or out of the subnet */
#define NET_F_NO_ICC	0x2	/* enable_icc=false */
#define NET_F_NO_MASQ	0x4	/* enable_ip_masquerade=false or gateway mode routed */
#define NET_F_DIRECT	0x8	/* gateway mode routed/nat-unprotected: outside may reach container IPs */

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
	METRIC_SNAT = 9,	/* outbound masqueraded */
	METRIC_RSNAT = 10,	/* reply to a masqueraded flow reversed */
	METRIC_DROP_SNAT_NO_PORT = 11, /* no free masquerade port: dropped */
	METRIC_DROP_SNAT_STATE = 12,   /* masquerade state could not be stored: dropped */
	METRIC_DROP_SPOOF = 13,	/* container sent with another source IP or MAC: dropped */
	METRIC_DROP_ICC = 14,	/* container -> same network, enable_icc=false: dropped */
	METRIC_DROP_INTERNAL = 15, /* into or out of an internal network: dropped */
	METRIC_DROP_DIRECT = 16, /* outside -> container address (gateway mode nat): dropped */
	METRIC_REDIRECT = 17,	/* delivered straight into a container by BPF */
	METRIC_HAIRPIN = 18,	/* container reached its own published port */
	METRIC_SOCK_XLATE = 19,	/* node-local connect/sendmsg translated */
	METRIC_ICMP_XLATE = 20,	/* ICMP error's inner header translated */
	METRIC_MAX = 21,
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
