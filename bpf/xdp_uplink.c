// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The node's uplink, XDP (optional, agent flag --xdp): published-port DNAT
 * before the skb exists (lib/xdp_nat.h). Always XDP_PASS: the stack and the
 * tc programs on the same uplink (uplink.c) do everything else. */
#include "lib/common.h"
#include "lib/xdp_nat.h"

SEC("xdp")
int xdp_uplink(struct xdp_md *ctx)
{
	xdp_nat_dnat(ctx);
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
