// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* tc egress of a sandbox's loopback device: 127.0.0.11:53 is served by the
 * agent's resolver on another port of 127.0.0.11 (lib/dnsredir.h).
 * Everything else passes untouched; a packet whose rewrite failed half way
 * is dropped rather than delivered with a wrong port or checksum. */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/dnsredir.h"

SEC("tc")
int sandbox_lo(struct __sk_buff *skb)
{
	return dnsredir(skb) == DNSREDIR_FAILED ? TC_ACT_SHOT : TC_ACT_OK;
}

char _license[] SEC("license") = "Dual BSD/GPL";
