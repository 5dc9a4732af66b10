/**
 * `bpfnet doctor` lines for the netfilter fallback dataplanes (iptables,
 * nftables): where each cannot match the eBPF dataplane, said plainly, and
 * whether br_netfilter (which ICC=false and anti-spoofing on bridge ports
 * rely on) is on in this namespace. Read-only; never throws.
 */
import { readFile } from 'node:fs/promises';

export interface FallbackNote {
  mode: 'iptables' | 'nftables';
  /** ok: behaves like eBPF apart from the limits; warn: something it needs is off here. */
  status: 'ok' | 'warn';
  limits: string[];
}

const BR_NF = '/proc/sys/net/bridge/bridge-nf-call-iptables';

/** '1' on, '0' off, null when br_netfilter is absent (module not loaded / not built). */
async function brNetfilter(): Promise<string | null> {
  return readFile(BR_NF, 'utf8').then(
    (s) => s.trim(),
    () => null,
  );
}

export async function fallbackNotes(): Promise<FallbackNote[]> {
  const brnf = await brNetfilter();
  const bridgeLine =
    brnf === null
      ? 'br_netfilter is absent (modprobe br_netfilter): ICC=false is NOT enforced, bridged anti-spoofing (iptables) and NAT between containers of one bridge do not work'
      : brnf === '1'
        ? 'ICC=false relies on br_netfilter (bridge-nf-call-iptables=1 here)'
        : 'br_netfilter is loaded but bridge-nf-call-iptables=0 here: the agent sets it to 1 in its node namespace for ICC=false';
  const common = [
    'clients on the node using 127.0.0.1 reach containers from the bridge gateway address (masqueraded: loopback cannot leave the node), not 127.0.0.1; via a node address they keep their own',
    'a container reaching its own published port is seen coming from its gateway (hairpin masquerade)',
    bridgeLine,
    'IPv4 only',
    'no per-port counters',
  ];
  const status = brnf === null ? 'warn' : 'ok';
  return [
    {
      mode: 'iptables',
      status,
      limits: [
        'published ports are one DNAT rule each, walked in order for the first packet of every connection (O(ports)); each change rewrites all of bpfnet\'s chains in one iptables-restore (O(ports) per change)',
        ...common,
      ],
    },
    {
      mode: 'nftables',
      status,
      limits: ['published ports are map lookups (O(1)); a port change is an element update, one transaction', ...common],
    },
  ];
}
