/**
 * The embedded DNS server's name table, pure: which names each sandbox has
 * on which network, and what a given sandbox may see. Follows moby's
 * libnetwork (Sandbox.ResolveName / ResolveIP, daemon buildEndpointDNSNames):
 *
 * - On every network it is attached to, a sandbox is known by its name, its
 *   --alias names on that network, its short id (first 12 hex digits) and
 *   its hostname when one is given (Docker 25+ DNSNames). Names are
 *   case-insensitive; a trailing dot is ignored.
 * - A sandbox sees only the networks it is attached to itself. For "a.b.c"
 *   the whole name is tried on all of them first, then "a.b" on the network
 *   named "c", then "a" on the network named "b.c" (Docker's
 *   "container.network" form).
 * - The first of the asker's networks (in the order its record lists them)
 *   that knows the name answers, with every address the name has there;
 *   networks are not merged.
 * - Reverse lookups answer "<name>.<network name>" (Docker's PTR form) from
 *   the first of the asker's networks that has the address.
 *
 * Only user-defined networks belong here: Docker's default bridge has no
 * embedded DNS names.
 */

export interface DnsEndpoint {
  networkId: string;
  /** The network's name: PTR answers are "<sandbox name>.<network name>", and "<name>.<network name>" resolves. */
  networkName: string;
  /** The sandbox's IPv4 address on that network. */
  ip: string;
  /** --alias / --network-alias names on this network. */
  aliases: readonly string[];
}

export interface DnsSandbox {
  sandboxId: string;
  name: string;
  /** The sandbox's hostname (Docker adds Config.Hostname to the DNS names of each endpoint). */
  hostname?: string;
  /** In the sandbox's own order (the first match wins, as in Docker's endpoint order). */
  networks: readonly DnsEndpoint[];
}

interface Holder {
  sandboxId: string;
  ip: string;
}

interface PtrHolder {
  sandboxId: string;
  name: string;
}

interface NetIndex {
  name: string;
  /** lowercased DNS name -> holders, in insertion order */
  names: Map<string, Holder[]>;
  ips: Map<string, PtrHolder[]>;
  /** How many sandboxes reference this network (drops the index at 0). */
  members: number;
}

/** Docker's short id: the first 12 characters of a 64-hex id (the id itself when shorter). */
export function shortId(id: string): string {
  return /^[0-9a-f]{64}$/i.test(id) ? id.slice(0, 12).toLowerCase() : id;
}

/** "Web." -> "web" (DNS names compare case-insensitively; a trailing dot is the root). */
export function normalizeName(name: string): string {
  return name.replace(/\.$/, '').toLowerCase();
}

/**
 * "4.3.2.1.in-addr.arpa." -> "1.2.3.4"; undefined for anything else
 * (other reverse zones, partial names, labels that are not octets).
 */
export function reverseToIpv4(qname: string): string | undefined {
  const n = normalizeName(qname);
  const suffix = '.in-addr.arpa';
  if (!n.endsWith(suffix)) return undefined;
  const parts = n.slice(0, -suffix.length).split('.');
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255)) return undefined;
  return parts.reverse().join('.');
}

/** The names a sandbox has on one network, deduplicated, in Docker's order (name, aliases, short id, hostname). */
export function dnsNames(sb: Pick<DnsSandbox, 'sandboxId' | 'name' | 'hostname'>, ep: Pick<DnsEndpoint, 'aliases'>): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const n of [sb.name, ...ep.aliases, shortId(sb.sandboxId), sb.hostname ?? '']) {
    const key = normalizeName(n);
    if (key === '' || seen.has(key)) continue;
    seen.add(key);
    out.push(n.replace(/\.$/, ''));
  }
  return out;
}

export class DnsRegistry {
  private readonly sandboxes = new Map<string, DnsSandbox>();
  private readonly nets = new Map<string, NetIndex>();

  /** Adds or replaces a sandbox's names (call again after connect/disconnect/rename). */
  setSandbox(sb: DnsSandbox): void {
    this.removeSandbox(sb.sandboxId);
    const copy: DnsSandbox = {
      sandboxId: sb.sandboxId,
      name: sb.name,
      ...(sb.hostname !== undefined ? { hostname: sb.hostname } : {}),
      networks: sb.networks.map((n) => ({ ...n, aliases: [...n.aliases] })),
    };
    this.sandboxes.set(sb.sandboxId, copy);
    const done = new Set<string>();
    for (const ep of copy.networks) {
      if (done.has(ep.networkId)) continue; // one endpoint per network
      done.add(ep.networkId);
      let idx = this.nets.get(ep.networkId);
      if (!idx) {
        idx = { name: ep.networkName, names: new Map(), ips: new Map(), members: 0 };
        this.nets.set(ep.networkId, idx);
      }
      idx.name = ep.networkName;
      idx.members++;
      for (const n of dnsNames(copy, ep)) push(idx.names, normalizeName(n), { sandboxId: copy.sandboxId, ip: ep.ip });
      push(idx.ips, ep.ip, { sandboxId: copy.sandboxId, name: copy.name });
    }
  }

  /** Forgets a sandbox; false when it was not there. */
  removeSandbox(sandboxId: string): boolean {
    const old = this.sandboxes.get(sandboxId);
    if (!old) return false;
    this.sandboxes.delete(sandboxId);
    const done = new Set<string>();
    for (const ep of old.networks) {
      if (done.has(ep.networkId)) continue;
      done.add(ep.networkId);
      const idx = this.nets.get(ep.networkId);
      if (!idx) continue;
      for (const n of dnsNames(old, ep)) pull(idx.names, normalizeName(n), (h) => h.sandboxId === sandboxId);
      pull(idx.ips, ep.ip, (h) => h.sandboxId === sandboxId);
      if (--idx.members <= 0) this.nets.delete(ep.networkId);
    }
    return true;
  }

  has(sandboxId: string): boolean {
    return this.sandboxes.has(sandboxId);
  }

  get(sandboxId: string): DnsSandbox | undefined {
    return this.sandboxes.get(sandboxId);
  }

  /** Network ids of a sandbox, in its order ([] when unknown). */
  networksOf(sandboxId: string): string[] {
    return [...new Set(this.sandboxes.get(sandboxId)?.networks.map((n) => n.networkId) ?? [])];
  }

  get size(): number {
    return this.sandboxes.size;
  }

  /**
   * IPv4 addresses of qname as the asker sees it ([] when it does not know
   * the name: the server then forwards the query). Unique addresses, in
   * registration order (the server shuffles them).
   */
  lookupA(askerSandboxId: string, qname: string): string[] {
    const asker = this.sandboxes.get(askerSandboxId);
    if (!asker) return [];
    const name = normalizeName(qname);
    if (name === '') return [];
    // Docker: {a.b.c on any network}, {a.b in network c}, {a in network b.c}.
    const candidates: [string, string | undefined][] = [[name, undefined]];
    for (let i = name.lastIndexOf('.'); i > 0; i = name.lastIndexOf('.', i - 1)) {
      candidates.push([name.slice(0, i), name.slice(i + 1)]);
    }
    for (const [req, net] of candidates) {
      for (const ep of asker.networks) {
        const idx = this.nets.get(ep.networkId);
        if (!idx) continue;
        if (net !== undefined && idx.name.toLowerCase() !== net) continue;
        const holders = idx.names.get(req);
        if (holders && holders.length > 0) return [...new Set(holders.map((h) => h.ip))];
      }
    }
    return [];
  }

  /**
   * The PTR name ("<sandbox name>.<network name>", no trailing dot) of ip
   * on the first of the asker's networks that has it; undefined otherwise.
   */
  lookupPtr(askerSandboxId: string, ip: string): string | undefined {
    const asker = this.sandboxes.get(askerSandboxId);
    if (!asker) return undefined;
    for (const ep of asker.networks) {
      const idx = this.nets.get(ep.networkId);
      const holder = idx?.ips.get(ip)?.[0];
      if (idx && holder) return `${holder.name}.${idx.name}`;
    }
    return undefined;
  }
}

function push<T>(m: Map<string, T[]>, key: string, v: T): void {
  const list = m.get(key);
  if (list) list.push(v);
  else m.set(key, [v]);
}

function pull<T>(m: Map<string, T[]>, key: string, match: (v: T) => boolean): void {
  const list = m.get(key);
  if (!list) return;
  const rest = list.filter((v) => !match(v));
  if (rest.length > 0) m.set(key, rest);
  else m.delete(key);
}
