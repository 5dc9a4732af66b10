/**
 * CHECK: is the attachment still what ADD made? The agent's record and
 * kernel view (SandboxInspect: host veth present and paired) and, inside
 * CNI_NETNS, the interface, its address and MAC, and the default route.
 * Every problem found is listed; none means the attachment is fine.
 */
import type { Messages } from '../api/generated/types.js';
import { Rtnl } from '../netlink/index.js';
import { attachmentEndpoint } from './result.js';
import type { CniEnv, CniResult } from './types.js';

type SandboxDetail = Messages['SandboxDetail'];

/** What the container side must have. */
export interface ExpectedInside {
  ifName: string;
  cidr: string;
  mac: string;
  /** Peer ifindex the agent recorded (0: unknown). */
  hostIfindex: number;
  gateway?: string;
}

/** Problems with the agent's view and prevResult (no kernel access). */
export function checkRecord(d: SandboxDetail, env: Pick<CniEnv, 'netns' | 'ifName'>, prev: CniResult | undefined): { problems: string[]; expected: ExpectedInside } {
  const problems: string[] = [];
  const { ep, net } = attachmentEndpoint(d);
  const cidr = `${ep.ipv4}/${ep.prefixLen}`;
  if (d.sandbox && d.sandbox.netnsPath !== env.netns) problems.push(`the attachment was made in netns ${d.sandbox.netnsPath}, not CNI_NETNS ${env.netns}`);
  if (ep.ifName !== env.ifName) problems.push(`the endpoint's interface is ${ep.ifName}, not CNI_IFNAME ${env.ifName}`);
  const link = d.links.find((l) => l.endpointId === ep.id);
  if (!link || !link.hostIfindex) problems.push(`the host-side veth ${ep.hostIfName} is missing in the agent's namespace`);
  else if (!link.present) problems.push(`the veth pair ${ep.hostIfName} <-> ${ep.ifName} is broken (host ifindex ${link.hostIfindex}, container ifindex ${link.peerIfindex || 'none'})`);
  if (prev?.ips?.length) {
    const want = prev.ips.map((i) => i.address);
    if (!want.includes(cidr)) problems.push(`prevResult has ${want.join(', ')} but the endpoint has ${cidr}`);
  }
  const gateway = net.ipam?.gateway;
  const expected: ExpectedInside = { ifName: env.ifName, cidr, mac: ep.mac, hostIfindex: link?.hostIfindex ?? 0 };
  // The default route is this attachment's when ADD said so (another attachment may own it).
  const hadDefault = prev?.routes ? prev.routes.some((r) => r.dst === '0.0.0.0/0') : true;
  if (gateway && !net.internal && hadDefault) expected.gateway = gateway;
  return { problems, expected };
}

/** Problems inside the namespace, read over rtnetlink there. */
export function checkInside(netns: string, want: ExpectedInside): string[] {
  const problems: string[] = [];
  let rt: Rtnl;
  try {
    rt = Rtnl.open(netns);
  } catch (e) {
    return [`cannot open CNI_NETNS ${netns}: ${(e as Error).message}`];
  }
  try {
    const link = rt.link(want.ifName);
    if (!link) return [`interface ${want.ifName} does not exist in ${netns}`];
    if (!link.up) problems.push(`interface ${want.ifName} in ${netns} is down`);
    if (link.mac && want.mac && link.mac.toLowerCase() !== want.mac.toLowerCase()) problems.push(`interface ${want.ifName} has MAC ${link.mac}, expected ${want.mac}`);
    if (want.hostIfindex && link.peerIndex !== want.hostIfindex) {
      problems.push(`interface ${want.ifName} is not paired with the agent's host veth (its peer is ifindex ${link.peerIndex ?? 'none'}, expected ${want.hostIfindex})`);
    }
    const addrs = rt.addrs(link.index).map((a) => a.cidr);
    if (!addrs.includes(want.cidr)) problems.push(`interface ${want.ifName} lacks address ${want.cidr} (has ${addrs.join(', ') || 'none'})`);
    if (want.gateway) {
      const def = rt.routes({}).filter((r) => r.dst === 'default');
      if (!def.some((r) => r.gateway === want.gateway && r.oif === link.index)) {
        const have = def.map((r) => `via ${r.gateway ?? '-'} dev ${r.dev ?? r.oif ?? '?'}`).join('; ');
        problems.push(`no default route via ${want.gateway} dev ${want.ifName} in ${netns}${have ? ` (found: ${have})` : ''}`);
      }
    }
  } finally {
    rt.close();
  }
  return problems;
}

/**
 * Before ADD: does the interface exist already (ADD must not take it over),
 * and does another interface hold the default route (a second attachment
 * then gets none: the agent leaves an engine's default route alone)?
 */
export function namespaceBefore(netns: string, ifName: string): { ifExists: boolean; otherDefault: boolean } {
  const rt = Rtnl.open(netns);
  try {
    return {
      ifExists: !!rt.link(ifName),
      otherDefault: rt.routes({}).some((r) => r.dst === 'default' && r.dev !== ifName),
    };
  } finally {
    rt.close();
  }
}
