/**
 * Docker's -p / -P / --expose grammar and host-port allocation. Pure: the
 * ports already taken come in through a callback.
 *
 *   -p [hostIP:][hostPort:]containerPort[/tcp|udp|sctp]
 *
 * Parsing follows docker/cli (go-connections nat.ParsePortSpec): split on
 * ':' (the last part is the container port, the one before it the host port,
 * everything before that the host IP, so unbracketed IPv6 parses too), ranges
 * "a-b" on either side of equal length, or a host range with a single
 * container port meaning "any free port in this range", no host port (or
 * host port 0) meaning an ephemeral port.
 */
import { BpfnetError } from '../util/errors.js';
import type { PortMapping } from './types.js';
import { formatIpv4, looksLikeIpv6, tryParseIpv4 } from './ipv4.js';

export type PortProto = 'tcp' | 'udp';

/** One container port to publish, before a host port is chosen. */
export interface PortRequest {
  /** undefined = the network's default host IP (normally 0.0.0.0). */
  hostIp?: string;
  /**
   * Host ports to choose from: undefined = ephemeral; start === end = exactly
   * that port; start < end = the first free port in the range.
   */
  hostPortStart?: number;
  hostPortEnd?: number;
  containerPort: number;
  proto: PortProto;
  /** The spec this came from, for messages. */
  spec: string;
}

export type IsTaken = (hostIp: string, proto: PortProto, port: number) => boolean;

export interface AllocateContext {
  /** Host IP when the spec has none (the network's host_binding_ipv4, usually 0.0.0.0). */
  defaultHostIp: string;
  /** Ephemeral range, inclusive (ip_local_port_range; Docker's fallback 49153-65535). */
  ephemeral: [number, number];
  /**
   * True when a host port is already taken (other mappings, listening
   * sockets). Use takenBy() to get wildcard semantics right.
   */
  isTaken: IsTaken;
}

/** Docker's fallback when /proc/sys/net/ipv4/ip_local_port_range cannot be read. */
export const DEFAULT_EPHEMERAL: [number, number] = [49153, 65535];

function invalid(message: string, details: Record<string, unknown> = {}): BpfnetError {
  return new BpfnetError('E_INVALID_ARGUMENT', message, details);
}

const GRAMMAR = '[hostIP:][hostPort:]containerPort[/tcp|udp], e.g. 8080:80, 127.0.0.1:8080:80/udp or 8000-8010:80-90';

function splitParts(raw: string): [string, string, string] {
  const parts = raw.split(':');
  const n = parts.length;
  const last = parts[n - 1] ?? '';
  if (n === 1) return ['', '', last];
  if (n === 2) return ['', parts[0] ?? '', last];
  return [parts.slice(0, n - 2).join(':'), parts[n - 2] ?? '', last];
}

function splitProto(raw: string, spec: string): [string, PortProto] {
  const slash = raw.indexOf('/');
  const port = slash < 0 ? raw : raw.slice(0, slash);
  const proto = slash < 0 ? '' : raw.slice(slash + 1).toLowerCase();
  if (port === '') throw invalid(`no port specified in "${spec}"; the container port is required: ${GRAMMAR}`, { spec });
  if (proto === '' || proto === 'tcp') return [port, 'tcp'];
  if (proto === 'udp') return [port, 'udp'];
  if (proto === 'sctp') {
    throw invalid(`"${spec}": sctp is not supported: bpfnet's dataplanes translate tcp and udp only; publish /tcp or /udp`, { spec, proto });
  }
  throw invalid(`"${spec}": invalid protocol "${proto}"; use /tcp (the default) or /udp`, { spec, proto });
}

interface Range {
  start: number;
  end: number;
}

function parsePort(s: string, what: string, spec: string, allowZero: boolean): number {
  if (!/^[0-9]+$/.test(s)) throw invalid(`"${spec}": invalid ${what} "${s}": must be a number ${allowZero ? '0' : '1'}-65535 (or a range like 8000-8010)`, { spec });
  const n = Number(s);
  if (n > 65535 || (n === 0 && !allowZero)) {
    throw invalid(`"${spec}": ${what} ${s} is out of range; ports are 1-65535`, { spec });
  }
  return n;
}

function parseRange(s: string, what: string, spec: string, allowZero: boolean): Range {
  const dash = s.indexOf('-');
  if (dash < 0) {
    const p = parsePort(s, what, spec, allowZero);
    return { start: p, end: p };
  }
  const start = parsePort(s.slice(0, dash), what, spec, false);
  const end = parsePort(s.slice(dash + 1), what, spec, false);
  if (end < start) throw invalid(`"${spec}": invalid ${what} range ${s}: the end is below the start; write it low-high, e.g. ${end}-${start}`, { spec });
  return { start, end };
}

function parseHostIp(raw: string, spec: string): string | undefined {
  if (raw === '') return undefined;
  let ip = raw;
  if (ip.startsWith('[')) {
    if (!ip.endsWith(']')) throw invalid(`"${spec}": invalid host IP "${raw}": unbalanced brackets; write IPv6 as [addr] (not supported yet) or use an IPv4 address`, { spec });
    ip = ip.slice(1, -1);
  }
  if (ip.includes(':') || looksLikeIpv6(ip)) {
    throw invalid(`"${spec}": IPv6 host addresses are not supported yet: bpfnet forwards IPv4 only; use an IPv4 address or omit the host IP`, { spec, hostIp: ip });
  }
  const v = tryParseIpv4(ip);
  if (v === undefined) throw invalid(`"${spec}": invalid host IP "${raw}"; give an IPv4 address such as 127.0.0.1, or omit it to publish on every address`, { spec });
  return formatIpv4(v);
}

/** Parse one -p value into one request per container port. */
export function parsePortSpec(spec: string): PortRequest[] {
  const raw = spec.trim();
  if (raw === '') throw invalid(`empty port specification; expected ${GRAMMAR}`);
  const [ipPart, hostPart, ctrPart] = splitParts(raw);
  const [ctrPortStr, proto] = splitProto(ctrPart, spec);
  const hostIp = parseHostIp(ipPart, spec);
  const ctr = parseRange(ctrPortStr, 'container port', spec, false);
  let host: Range | undefined;
  if (hostPart !== '') {
    host = parseRange(hostPart, 'host port', spec, true);
    if (host.start === 0) host = undefined; // host port 0 = pick one, as in Docker
  }
  // No host port ("80", "127.0.0.1::80"): ephemeral.
  const n = ctr.end - ctr.start;
  if (host && host.end - host.start !== n && n !== 0) {
    throw invalid(
      `"${spec}": invalid ranges: host ports ${hostPart} (${host.end - host.start + 1}) and container ports ${ctrPortStr} (${n + 1}) differ in length; give ranges of equal length (e.g. ${host.start}-${host.start + n}:${ctrPortStr}) or one container port with a host range to pick from`,
      { spec },
    );
  }
  const out: PortRequest[] = [];
  for (let i = 0; i <= n; i++) {
    const r: PortRequest = { containerPort: ctr.start + i, proto, spec };
    if (hostIp !== undefined) r.hostIp = hostIp;
    if (host) {
      if (n === 0) {
        r.hostPortStart = host.start;
        r.hostPortEnd = host.end;
      } else {
        r.hostPortStart = host.start + i;
        r.hostPortEnd = host.start + i;
      }
    }
    out.push(r);
  }
  return out;
}

/** A published port to withdraw: host IP (any when absent), host port range, protocol. */
export interface UnpublishSpec {
  spec: string;
  hostIp?: string;
  start: number;
  end: number;
  proto: PortProto;
}

/** Parse "8080", "8080/udp", "8080-8090/tcp" or "127.0.0.1:8080/tcp" (host side of a -p spec). */
export function parseUnpublishSpec(spec: string): UnpublishSpec {
  const raw = spec.trim();
  const colon = raw.lastIndexOf(':');
  if (raw === '' || raw.split(':').length > 2) throw invalid(`invalid port "${spec}" to unpublish; expected [HOSTIP:]HOSTPORT[-END][/tcp|udp], e.g. 8080/tcp or 127.0.0.1:8080`, { spec });
  const [portStr, proto] = splitProto(colon < 0 ? raw : raw.slice(colon + 1), spec);
  const hostIp = colon < 0 ? undefined : parseHostIp(raw.slice(0, colon), spec);
  const r = parseRange(portStr, 'host port', spec, false);
  return { spec: raw, ...(hostIp !== undefined ? { hostIp } : {}), start: r.start, end: r.end, proto };
}

/** Parse several -p values. */
export function parsePortSpecs(specs: string[]): PortRequest[] {
  return specs.flatMap(parsePortSpec);
}

/** Parse an exposed port ("80", "80/udp", "8000-8002/tcp") into {port, proto} items. */
export function parseExposed(spec: string): { containerPort: number; proto: PortProto }[] {
  const raw = spec.trim();
  if (raw === '' || raw.includes(':')) {
    throw invalid(`invalid exposed port "${spec}"; expected PORT[/tcp|udp] or a range START-END[/tcp|udp], e.g. 80 or 8000-8002/udp`, { spec });
  }
  const [p, proto] = splitProto(raw, spec);
  const r = parseRange(p, 'exposed port', spec, false);
  const out: { containerPort: number; proto: PortProto }[] = [];
  for (let q = r.start; q <= r.end; q++) out.push({ containerPort: q, proto });
  return out;
}

/**
 * Do two bindings collide? Same protocol and port, and the same host IP or
 * either one on the wildcard 0.0.0.0 (which binds every address).
 */
export function bindingsConflict(a: { hostIp: string; proto: string; hostPort: number }, b: { hostIp: string; proto: string; hostPort: number }): boolean {
  return a.proto === b.proto && a.hostPort === b.hostPort && (a.hostIp === b.hostIp || a.hostIp === '0.0.0.0' || b.hostIp === '0.0.0.0');
}

type Binding = Pick<PortMapping, 'hostIp' | 'hostPort' | 'proto'>;

/**
 * Bindings indexed by protocol and port, so a conflict check (bindingsConflict's
 * rules) costs O(1) however many ports are published: allocating a range of
 * 50k ports must not be quadratic.
 */
export class PortIndex {
  private readonly ips = new Map<string, string[]>();

  constructor(bindings: Iterable<Binding> = []) {
    for (const b of bindings) this.add(b);
  }

  add(b: Binding): void {
    const k = `${b.proto}/${b.hostPort}`;
    const l = this.ips.get(k);
    if (l) l.push(b.hostIp);
    else this.ips.set(k, [b.hostIp]);
  }

  delete(b: Binding): void {
    const k = `${b.proto}/${b.hostPort}`;
    const l = this.ips.get(k);
    const i = l ? l.indexOf(b.hostIp) : -1;
    if (!l || i < 0) return;
    l.splice(i, 1);
    if (!l.length) this.ips.delete(k);
  }

  conflicts(hostIp: string, proto: string, hostPort: number): boolean {
    const l = this.ips.get(`${proto}/${hostPort}`);
    if (!l) return false;
    return hostIp === '0.0.0.0' || l.some((ip) => ip === hostIp || ip === '0.0.0.0');
  }
}

/** An isTaken callback over existing mappings, with wildcard semantics. */
export function takenBy(existing: Iterable<Binding>): IsTaken {
  const idx = new PortIndex(existing);
  return (hostIp, proto, port) => idx.conflicts(hostIp, proto, port);
}

function nextFree(isFree: (p: number) => boolean, from: number): number | undefined {
  for (let p = from; p <= 65535; p++) if (isFree(p)) return p;
  return undefined;
}

/**
 * Choose host ports. Requests are handled in order; ports chosen earlier in
 * the same call count as taken. Ephemeral and "pick from a range" choose the
 * lowest free port. A fixed host port that is taken is E_CONFLICT; a range
 * (or the ephemeral range) with nothing free is E_EXHAUSTED.
 */
export function allocatePorts(requests: PortRequest[], ctx: AllocateContext): PortMapping[] {
  const [lo, hi] = ctx.ephemeral;
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi > 65535 || lo > hi) {
    throw invalid(`ephemeral port range ${lo}-${hi} is invalid; it must be within 1-65535 with start <= end (Docker's fallback is ${DEFAULT_EPHEMERAL[0]}-${DEFAULT_EPHEMERAL[1]})`);
  }
  const defaultIp = tryParseIpv4(ctx.defaultHostIp);
  if (defaultIp === undefined) {
    throw invalid(`default host IP "${ctx.defaultHostIp}" is not an IPv4 address; set com.docker.network.bridge.host_binding_ipv4 to an IPv4 address such as 0.0.0.0`);
  }
  const chosen: PortMapping[] = [];
  const chosenIdx = new PortIndex();
  const taken = (hostIp: string, proto: PortProto, port: number) => ctx.isTaken(hostIp, proto, port) || chosenIdx.conflicts(hostIp, proto, port);

  for (const r of requests) {
    const hostIp = r.hostIp ?? formatIpv4(defaultIp);
    const free = (p: number) => !taken(hostIp, r.proto, p);
    let hostPort: number | undefined;
    if (r.hostPortStart === undefined) {
      for (let p = lo; p <= hi && hostPort === undefined; p++) if (free(p)) hostPort = p;
      if (hostPort === undefined) {
        throw new BpfnetError('E_EXHAUSTED', `no free ephemeral ${r.proto} port left on ${hostIp} in ${lo}-${hi} for "${r.spec}"; give an explicit host port (e.g. -p 8080:${r.containerPort}) or unpublish something`, {
          spec: r.spec,
          hostIp,
          proto: r.proto,
        });
      }
    } else {
      const end = r.hostPortEnd ?? r.hostPortStart;
      if (end === r.hostPortStart) {
        if (!free(r.hostPortStart)) {
          const alt = nextFree(free, r.hostPortStart + 1);
          throw new BpfnetError(
            'E_CONFLICT',
            `host port ${r.hostPortStart}/${r.proto} on ${hostIp} is already allocated (bind for ${hostIp}:${r.hostPortStart} failed); publish on another host port${alt ? ` (e.g. -p ${alt}:${r.containerPort}/${r.proto})` : ''} or omit the host port to get a free one`,
            { spec: r.spec, hostIp, hostPort: r.hostPortStart, proto: r.proto },
          );
        }
        hostPort = r.hostPortStart;
      } else {
        for (let p = r.hostPortStart; p <= end && hostPort === undefined; p++) if (free(p)) hostPort = p;
        if (hostPort === undefined) {
          throw new BpfnetError('E_EXHAUSTED', `every host port in ${r.hostPortStart}-${end}/${r.proto} on ${hostIp} is already allocated; widen the range or omit the host port to get an ephemeral one`, {
            spec: r.spec,
            hostIp,
            proto: r.proto,
          });
        }
      }
    }
    const m: PortMapping = { hostIp, hostPort, containerPort: r.containerPort, proto: r.proto };
    chosen.push(m);
    chosenIdx.add(m);
  }
  return chosen;
}

/**
 * -P: every exposed port on an ephemeral host port, except container ports
 * that are already published (Docker merges -P with -p the same way).
 */
export function publishAll(exposed: string[], ctx: AllocateContext, alreadyPublished: readonly PortMapping[] = []): PortMapping[] {
  const seen = new Set(alreadyPublished.map((m) => `${m.containerPort}/${m.proto}`));
  const requests: PortRequest[] = [];
  for (const spec of exposed) {
    for (const e of parseExposed(spec)) {
      const key = `${e.containerPort}/${e.proto}`;
      if (seen.has(key)) continue;
      seen.add(key);
      requests.push({ containerPort: e.containerPort, proto: e.proto, spec });
    }
  }
  return allocatePorts(requests, { ...ctx, isTaken: (ip, proto, port) => ctx.isTaken(ip, proto, port) || takenBy(alreadyPublished)(ip, proto, port) });
}

/** "0.0.0.0:8080->80/tcp", as docker ps shows one binding. */
export function formatPortMapping(m: Pick<PortMapping, 'hostIp' | 'hostPort' | 'containerPort'> & { proto: string }): string {
  return `${m.hostIp}:${m.hostPort}->${m.containerPort}/${m.proto}`;
}

/**
 * The PORTS column of docker ps: bindings sorted, consecutive runs collapsed
 * ("0.0.0.0:8000-8002->80-82/tcp"), exposed-only ports as "80/tcp".
 */
export function formatPortList(mappings: readonly PortMapping[], exposed: readonly string[] = []): string {
  const sorted = [...mappings].sort((a, b) => a.hostIp.localeCompare(b.hostIp) || a.proto.localeCompare(b.proto) || a.containerPort - b.containerPort || a.hostPort - b.hostPort);
  const out: string[] = [];
  let run: PortMapping[] = [];
  const flush = () => {
    const first = run[0];
    const last = run[run.length - 1];
    if (!first || !last) return;
    out.push(
      run.length === 1
        ? formatPortMapping(first)
        : `${first.hostIp}:${first.hostPort}-${last.hostPort}->${first.containerPort}-${last.containerPort}/${first.proto}`,
    );
    run = [];
  };
  for (const m of sorted) {
    const prev = run[run.length - 1];
    if (prev && prev.hostIp === m.hostIp && prev.proto === m.proto && m.hostPort === prev.hostPort + 1 && m.containerPort === prev.containerPort + 1) run.push(m);
    else {
      flush();
      run = [m];
    }
  }
  flush();
  const published = new Set(mappings.map((m) => `${m.containerPort}/${m.proto}`));
  for (const e of exposed.flatMap(parseExposed)) {
    const key = `${e.containerPort}/${e.proto}`;
    if (published.has(key)) continue;
    published.add(key);
    out.push(key);
  }
  return out.join(', ');
}
