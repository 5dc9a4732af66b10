/**
 * Time to publish one more port with N (default 30,000) already published,
 * per netfilter dataplane, applying DesiredState directly to the dataplane
 * in a throw-away node namespace (a bridge network, N wildcard TCP ports):
 *
 *   iptables  one `iptables-restore --noflush` rewriting bpfnet's chains
 *             (every DNAT rule is rewritten: O(N) per change), plus the
 *             listing of the built-in chains each apply does;
 *   nftables  one `nft -f -` with one `add element` on the port map (O(1)).
 *
 * Each round publishes port N+i, then unpublishes it; the medians of both
 * are printed, with the time of the first (full) apply.
 * Usage: node dist/bench/fallback-publish.js [N] [rounds]
 */
import { randomBytes } from 'node:crypto';
import { Netns } from '../src/lab/netns.js';
import { IptablesDataplane } from '../src/dataplane/iptables/dataplane.js';
import { NftablesDataplane } from '../src/dataplane/nftables/dataplane.js';
import type { NetfilterDataplane } from '../src/dataplane/netfilter/dataplane.js';
import type { DesiredState, PublishedPort } from '../src/dataplane/types.js';

const N = Number(process.argv[2] ?? 30_000);
const ROUNDS = Number(process.argv[3] ?? 7);

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function stateWith(ports: PublishedPort[]): DesiredState {
  return {
    uplinks: ['up0'],
    nodeAddresses: ['198.18.0.1'],
    endpoints: [{ hostDev: 'vc0', ip: '198.19.0.2', networkId: 1 }],
    ports,
    networks: [{ id: 1, subnet: '198.19.0.0/24', gateway: '198.19.0.1', bridge: 'br0', driver: 'bridge', internal: false, icc: true, masquerade: true, gatewayMode: 'nat' }],
  };
}

const port = (i: number): PublishedPort => ({ hostIp: '0.0.0.0', hostPort: 1024 + i, proto: 'tcp', containerIp: '198.19.0.2', containerPort: 80 });

async function measure(mode: string, make: (netns: string) => NetfilterDataplane): Promise<Record<string, number | string>> {
  const ns = await Netns.create(`bfb-${randomBytes(3).toString('hex')}`);
  try {
    await ns.ip('link', 'add', 'br0', 'type', 'bridge');
    await ns.ip('link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up0p');
    const dp = make(ns.path);
    const base = Array.from({ length: N }, (_, i) => port(i));
    let t0 = process.hrtime.bigint();
    await dp.apply(stateWith(base));
    const full = ms(t0);
    const pub: number[] = [];
    const unpub: number[] = [];
    const kernel: number[] = [];
    const planning: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      t0 = process.hrtime.bigint();
      await dp.apply(stateWith([...base, port(N + r)]));
      pub.push(ms(t0));
      kernel.push(dp.lastTimings.kernelMs);
      planning.push(dp.lastTimings.planMs);
      t0 = process.hrtime.bigint();
      await dp.apply(stateWith(base));
      unpub.push(ms(t0));
    }
    await dp.teardown(stateWith(base));
    return { mode, N, rounds: ROUNDS, firstApplyMs: +full.toFixed(1), publishMedianMs: +median(pub).toFixed(2), unpublishMedianMs: +median(unpub).toFixed(2), kernelMedianMs: +median(kernel).toFixed(2), planMedianMs: +median(planning).toFixed(2), publishMs: pub.map((x) => +x.toFixed(1)).join(' ') };
  } finally {
    await ns.destroy();
  }
}

const rows = [
  await measure('iptables', (netns) => new IptablesDataplane({ netns })),
  await measure('nftables', (netns) => new NftablesDataplane({ netns })),
];
console.table(rows);
console.log(JSON.stringify(rows));
