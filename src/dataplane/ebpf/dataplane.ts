/**
 * The eBPF dataplane: tc programs on the uplinks (DNAT) and on the host side
 * of every endpoint (reverse NAT), driven by maps under one bpffs root.
 * apply() is idempotent: loading reuses pinned versions, attaching replaces
 * in place, and map writes are the diff against what the maps hold.
 */
import { loadObject, pruneVersions, removeRoot, mapsDir, type LoadedObject } from '../../loader/load.js';
import { attachTc, detachTc } from '../../loader/tc.js';
import { TypedMap } from '../../maps/map.js';
import { diffEntries, portEntries } from '../../controller/ports.js';
import type { ApplyReport, Dataplane, DataplaneNetwork, DesiredState } from '../types.js';
import type { AddrKey, AddrValue, NetKey, NetValue } from '../../maps/generated/abi.js';
import { invalidArgument } from '../../util/errors.js';
import { isIPv4 } from 'node:net';

export interface EbpfOptions {
  /** bpffs root for this agent's pins (default /sys/fs/bpf/bpfnet). */
  root: string;
  /** Network namespace of the node (path), or undefined for the current one. */
  netns?: string | undefined;
  mapSizes?: Record<string, number>;
}

export const PROGRAMS = {
  uplink: { object: 'uplink', prog: 'from_uplink' },
  endpoint: { object: 'endpoint', prog: 'from_container' },
} as const;

export class EbpfDataplane implements Dataplane {
  readonly mode = 'ebpf' as const;
  /**
   * What this process attached: "dev@ifindex" -> pin. A device already
   * carrying the same program is skipped, so one endpoint change costs one
   * attach, not one per endpoint. Empty after a restart: the first apply
   * re-attaches everything (replace is atomic, so flows never notice).
   */
  private readonly attached = new Map<string, string>();
  constructor(readonly opts: EbpfOptions) {}

  get mapDir(): string {
    return mapsDir(this.opts.root);
  }

  /** Objects loaded by this process: their sources do not change under a running agent. */
  private readonly loaded = new Map<string, LoadedObject>();
  private pruned = false;

  private async load(name: string): Promise<LoadedObject> {
    let o = this.loaded.get(name);
    if (!o) {
      o = await loadObject(name, { root: this.opts.root, progType: 'classifier', ...(this.opts.mapSizes ? { mapSizes: this.opts.mapSizes } : {}) });
      this.loaded.set(name, o);
    }
    return o;
  }

  async apply(state: DesiredState): Promise<ApplyReport> {
    // Validate everything before touching the kernel: bad input changes nothing.
    const desiredPorts = portEntries(state.ports);
    for (const a of state.nodeAddresses) if (!isIPv4(a)) throw invalidArgument(`node address must be IPv4, got "${a}"`);
    const desiredAddrs: [AddrKey, AddrValue][] = state.nodeAddresses.map((a) => [{ addr: a }, { flags: 0 }]);
    const desiredNets = netEntries(state.networks ?? []);

    const uplink = await this.load(PROGRAMS.uplink.object);
    const endpoint = await this.load(PROGRAMS.endpoint.object);

    // Maps first, so a program never runs against a half-programmed table.
    const report: ApplyReport = { attached: [], ports: { added: 0, updated: 0, removed: 0 }, addresses: { added: 0, removed: 0 } };
    const ports = TypedMap.open(this.mapDir, 'bpfnet_ports');
    const addrs = TypedMap.open(this.mapDir, 'bpfnet_addrs');
    const nets = TypedMap.open(this.mapDir, 'bpfnet_nets');
    try {
      const pd = diffEntries(await ports.toArray(), desiredPorts);
      await ports.setMany(pd.upsert);
      await ports.deleteMany(pd.remove);
      report.ports = { added: pd.added, updated: pd.updated, removed: pd.remove.length };
      const ad = diffEntries(await addrs.toArray(), desiredAddrs);
      await addrs.setMany(ad.upsert);
      await addrs.deleteMany(ad.remove);
      report.addresses = { added: ad.added, removed: ad.remove.length };
      const nd = diffEntries(await nets.toArray(), desiredNets);
      await nets.setMany(nd.upsert);
      await nets.deleteMany(nd.remove);
      report.networks = { added: nd.added, removed: nd.remove.length };
    } finally {
      ports.close();
      addrs.close();
      nets.close();
    }

    const targets = [
      ...state.uplinks.map((dev) => ({ dev, ifindex: state.uplinkIndex?.[dev], obj: uplink, prog: PROGRAMS.uplink.prog })),
      ...state.endpoints.map((e) => ({ dev: e.hostDev, ifindex: e.ifindex, obj: endpoint, prog: PROGRAMS.endpoint.prog })),
    ];
    const keep = new Set<string>();
    for (const t of targets) {
      const pin = t.obj.progs[t.prog];
      if (!pin) throw invalidArgument(`object ${t.obj.name} has no program ${t.prog}`);
      const key = `${t.dev}@${t.ifindex ?? '?'}`;
      keep.add(key);
      if (t.ifindex !== undefined && this.attached.get(key) === pin) continue;
      const a = await attachTc({ netns: this.opts.netns, dev: t.dev, direction: 'ingress', pin });
      this.attached.set(key, pin);
      report.attached.push({ dev: t.dev, hook: 'tc/ingress', prog: a.progName, progId: a.progId });
    }
    for (const k of [...this.attached.keys()]) if (!keep.has(k)) this.attached.delete(k);
    // Older versions are no longer attached anywhere we manage: unpin them
    // (once per process: versions only change when the agent is upgraded).
    if (!this.pruned) {
      await pruneVersions(this.opts.root, uplink.name, uplink.hash);
      await pruneVersions(this.opts.root, endpoint.name, endpoint.hash);
      this.pruned = true;
    }
    return report;
  }

  async teardown(state: DesiredState): Promise<void> {
    const devs = [...state.uplinks, ...state.endpoints.map((e) => e.hostDev)];
    for (const dev of devs) {
      await detachTc({ netns: this.opts.netns, dev, direction: 'ingress' }).catch(() => undefined);
    }
    await removeRoot(this.opts.root);
  }
}

/** NET_F_* in bpf/lib/maps.h. */
export const NET_F_INTERNAL = 0x1;
export const NET_F_NO_ICC = 0x2;
export const NET_F_NO_MASQ = 0x4;
export const NET_F_DIRECT = 0x8;

export function netEntries(networks: DataplaneNetwork[]): [NetKey, NetValue][] {
  return networks.map((n) => {
    const [addr, len] = n.subnet.split('/');
    const prefixlen = Number(len);
    if (!addr || !isIPv4(addr) || !Number.isInteger(prefixlen) || prefixlen < 0 || prefixlen > 32) {
      throw invalidArgument(`network subnet must be a.b.c.d/n, got "${n.subnet}"`);
    }
    if (!Number.isInteger(n.id) || n.id <= 0 || n.id > 0xffffffff) throw invalidArgument(`network id must be a non-zero u32, got ${n.id}`);
    for (const [what, a] of [['gateway', n.gateway], ['SNAT address', n.snatIp]] as const) {
      if (a !== undefined && a !== '' && !isIPv4(a)) throw invalidArgument(`network ${n.subnet} ${what} must be IPv4, got "${a}"`);
    }
    const mode = n.gatewayMode;
    const flags =
      (n.internal || mode === 'isolated' ? NET_F_INTERNAL : 0) |
      (n.icc ? 0 : NET_F_NO_ICC) |
      (!n.masquerade || mode === 'routed' ? NET_F_NO_MASQ : 0) |
      (mode === 'routed' || mode === 'nat-unprotected' ? NET_F_DIRECT : 0);
    return [{ prefixlen, addr }, { net_id: n.id, flags, gateway: n.gateway || '0.0.0.0', snat_addr: n.snatIp || '0.0.0.0' }];
  });
}
