/**
 * The per-device settings the netfilter dataplanes need besides rules, all
 * inside the node's namespace and only on bpfnet's own devices:
 * - route_localnet on each network's bridge (or routed veths): lets a
 *   node-local client's 127.0.0.1 connection be DNATed out to a container
 *   (Docker does the same without its proxy); the raw rules drop anything
 *   from those devices to 127.0.0.0/8, so containers cannot use it to reach
 *   the node's loopback services;
 * - hairpin mode on bridge ports: with br_netfilter, a container's packet
 *   DNATed back to itself is bridged out of the port it came in by, which a
 *   bridge refuses unless the port is in hairpin mode;
 * - bridge-nf-call-iptables in that namespace: bridged traffic must pass
 *   netfilter for ICC=false, anti-spoofing and NAT of same-bridge flows.
 * Each is read first and written only when different.
 */
import { readSysctl, sysctl } from '../../netlink/index.js';
import { run } from '../../util/exec.js';
import type { Plan } from './plan.js';

export interface HostReport {
  routeLocalnet: string[];
  hairpin: string[];
  bridgeNfCallIptables: boolean;
}

const localnetKey = (dev: string) => `net/ipv4/conf/${dev}/route_localnet`;

function read(netns: string | undefined, key: string): string | null {
  try {
    return readSysctl(netns, key);
  } catch {
    return null; // device gone, or br_netfilter absent
  }
}

interface LinkJson {
  ifname: string;
  linkinfo?: { info_slave_kind?: string; info_slave_data?: { hairpin?: boolean } };
}

export async function ensureHostSettings(netns: string | undefined, plan: Plan): Promise<HostReport> {
  const report: HostReport = { routeLocalnet: [], hairpin: [], bridgeNfCallIptables: false };
  for (const dev of plan.localnetDevs) {
    const v = read(netns, localnetKey(dev));
    if (v !== null && v !== '1') {
      sysctl(netns, localnetKey(dev), 1);
      report.routeLocalnet.push(dev);
    }
  }
  if (plan.nets.some((n) => n.sel.kind === 'dev')) {
    const key = 'net/bridge/bridge-nf-call-iptables';
    const v = read(netns, key);
    if (v === '0') {
      sysctl(netns, key, 1);
      report.bridgeNfCallIptables = true;
    }
  }
  if (plan.bridgePorts.length > 0) {
    const { stdout } = await run('ip', ['-d', '-j', 'link', 'show'], { netns });
    const links = JSON.parse(stdout || '[]') as LinkJson[];
    const want = new Set(plan.bridgePorts);
    const todo = links.filter((l) => want.has(l.ifname) && l.linkinfo?.info_slave_kind === 'bridge' && l.linkinfo.info_slave_data?.hairpin !== true);
    if (todo.length > 0) {
      const batch = todo.map((l) => `link set dev ${l.ifname} type bridge_slave hairpin on`).join('\n') + '\n';
      await run('ip', ['-batch', '-'], { netns, input: batch });
      report.hairpin = todo.map((l) => l.ifname);
    }
  }
  return report;
}

/** Undo route_localnet (the only setting that widens what reaches the node). */
export function resetHostSettings(netns: string | undefined, devs: readonly string[]): void {
  for (const dev of devs) {
    if (read(netns, localnetKey(dev)) === '1') {
      try {
        sysctl(netns, localnetKey(dev), 0);
      } catch {
        // device removed meanwhile
      }
    }
  }
}
