/**
 * `bpfnet ports ls` (every published port, with the dataplane's per-port
 * counters) and `bpfnet port SANDBOX` (`docker port`: one line per mapping).
 * The formatting is pure and exported for the unit tests.
 */
import { Command } from 'commander';
import { call, json, out, parseFormat } from './api.js';
import { formatTable } from '../model/inspect.js';
import { formatPortMapping } from '../model/portspec.js';
import type { PublishedPort } from '../api/generated/types.js';
import { BpfnetError, invalidArgument } from '../util/errors.js';

/** "0.0.0.0:8080"; IPv6 host addresses in brackets like Go's net.JoinHostPort. */
export function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}


/**
 * Bytes as Docker's CLI prints sizes (go-units HumanSizeWithPrecision, 3
 * significant digits, decimal units): 0B, 512B, 1.23kB, 45.6MB.
 */
export function humanBytes(n: number | bigint): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  let v = Number(n);
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  // Rounding to 3 digits can reach 1000 (999.95 kB -> "1.00e+3"): next unit.
  if (Number(v.toPrecision(3)) >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${Number(v.toPrecision(3))}${units[u]}`;
}

/** One row of `ports ls --format json` (and `port --format json`). */
export interface PortRow {
  sandbox: string;
  sandboxId: string;
  network: string;
  hostIp: string;
  hostPort: number;
  proto: string;
  containerIp: string;
  containerPort: number;
  /** Programmed in the dataplane (false: see reason). */
  active: boolean;
  reason?: string;
  /** null when the dataplane does not count this port. */
  packets: number | null;
  bytes: number | null;
}

export function portRow(p: PublishedPort): PortRow {
  return {
    sandbox: p.sandboxName,
    sandboxId: p.sandboxId,
    network: p.networkName,
    hostIp: p.hostIp,
    hostPort: p.hostPort,
    proto: p.proto,
    containerIp: p.containerIp,
    containerPort: p.containerPort,
    active: p.active,
    ...(p.active ? {} : { reason: p.inactiveReason }),
    packets: p.counted ? p.packets : null,
    bytes: p.counted ? p.bytes : null,
  };
}

export const PORTS_LS_HEADERS: readonly string[] = ['SANDBOX', 'NETWORK', 'PORT', 'BACKEND', 'PACKETS', 'BYTES'];

/**
 * The `ports ls` table: one line per published port, Docker's mapping
 * notation, the container address it goes to, and counters ("-" where the
 * dataplane does not count; an unprogrammed port says why instead of a
 * backend).
 */
export function formatPortsTable(ports: readonly PublishedPort[]): string {
  const rows = ports.map((p) => [
    p.sandboxName,
    p.networkName || '-',
    formatPortMapping(p),
    p.active ? hostPort(p.containerIp, p.containerPort) : `(inactive: ${p.inactiveReason})`,
    p.counted ? String(p.packets) : '-',
    p.counted ? humanBytes(p.bytes) : '-',
  ]);
  return formatTable(PORTS_LS_HEADERS, rows);
}

/** PRIVATE_PORT[/PROTO] of `docker port`: "80", "80/udp". */
export function parsePrivatePort(spec: string): { port: number; proto: 'tcp' | 'udp' } {
  const m = /^([0-9]+)(?:\/([a-z]+))?$/i.exec(spec.trim());
  const port = m ? Number(m[1]) : NaN;
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalidArgument(`invalid port "${spec}": use PRIVATE_PORT[/PROTO], e.g. 80 or 53/udp`);
  }
  const proto = (m[2] ?? 'tcp').toLowerCase();
  if (proto !== 'tcp' && proto !== 'udp') throw invalidArgument(`invalid protocol "${m[2]}" in "${spec}": use /tcp or /udp`);
  return { port, proto };
}

/**
 * `docker port SANDBOX [PRIVATE_PORT[/PROTO]]`: without a port, one
 * "80/tcp -> 0.0.0.0:8080" line per mapping; with one, just the host
 * addresses ("0.0.0.0:8080"), as Docker prints them. counters appends
 * "  N packets, X" (or why the port is not programmed). No mapping for the
 * given port is an error, like Docker's.
 */
export function formatDockerPort(ports: readonly PublishedPort[], opts: { privatePort?: string; sandbox?: string; counters?: boolean } = {}): string {
  const want = opts.privatePort ? parsePrivatePort(opts.privatePort) : undefined;
  const sel = want ? ports.filter((p) => p.containerPort === want.port && p.proto === want.proto) : ports;
  if (want && sel.length === 0) {
    throw new BpfnetError('E_NOT_FOUND', `No public port '${want.port}/${want.proto}' published for ${opts.sandbox ?? 'this sandbox'}`);
  }
  const suffix = (p: PublishedPort): string => {
    if (!opts.counters) return '';
    if (!p.active) return `  (inactive: ${p.inactiveReason})`;
    return p.counted ? `  ${p.packets} packets, ${humanBytes(p.bytes)}` : '  (not counted)';
  };
  return sel.map((p) => `${want ? '' : `${p.containerPort}/${p.proto} -> `}${hostPort(p.hostIp, p.hostPort)}${suffix(p)}\n`).join('');
}

/** bpfnet's extra key for `sandbox inspect`: each published port with its backend and counters. */
export interface InspectPortJson {
  HostIp: string;
  HostPort: string;
  ContainerPort: string;
  Backend: string;
  Active: boolean;
  Packets: number | null;
  Bytes: number | null;
}

/** The value of the `Bpfnet` key `sandbox inspect` adds next to Docker's shape. */
export function inspectPorts(ports: readonly PublishedPort[]): { Ports: InspectPortJson[] } {
  return {
    Ports: ports.map((p) => ({
      HostIp: p.hostIp,
      HostPort: String(p.hostPort),
      ContainerPort: `${p.containerPort}/${p.proto}`,
      Backend: p.active ? hostPort(p.containerIp, p.containerPort) : '',
      Active: p.active,
      Packets: p.counted ? p.packets : null,
      Bytes: p.counted ? p.bytes : null,
    })),
  };
}

export function portsCommand(): Command {
  const cmd = new Command('ports').description('published ports of every sandbox, with per-port packet and byte counters');

  cmd
    .command('ls')
    .alias('list')
    .description('list published ports: mapping, backend, packets and bytes toward the container since the port was published')
    .option('--sandbox <ref>', 'only this sandbox (name or id)')
    .option('--format <fmt>', 'table or json', 'table')
    .action(async (o: { sandbox?: string; format: string }, c: Command) => {
      const fmt = parseFormat(o.format);
      const r = await call(c, 'PortList', { sandbox: o.sandbox ?? '' });
      if (fmt === 'json') return out(json(r.ports.map(portRow)));
      out(formatPortsTable(r.ports));
    });

  // publish / unpublish: one call each, answered with the ports changed.
  const change = (name: 'publish' | 'unpublish', description: string, args: string, argHelp: string, call_: (ref: string, items: string[], c: Command) => Promise<{ ports: PublishedPort[] }>) =>
    cmd
      .command(name)
      .description(description)
      .argument('<sandbox>', 'name or id')
      .argument(args, argHelp)
      .option('--format <fmt>', 'table or json', 'table')
      .action(async (ref: string, items: string[], o: { format: string }, c: Command) => {
        const fmt = parseFormat(o.format);
        const r = await call_(ref, items, c);
        if (fmt === 'json') return out(json(r.ports.map(portRow)));
        out(formatPortsTable(r.ports));
      });
  change('publish', 'publish more ports on an existing sandbox (Docker cannot; the remote driver and benchmarks use it)', '<spec...>',
    "-p specs in Docker's grammar: [HOSTIP:][HOSTPORT[-END]:]CONTAINERPORT[-END][/tcp|udp]",
    (ref, specs, c) => call(c, 'PortPublish', { sandbox: ref, publish: specs }));
  change('unpublish', 'withdraw published ports of a sandbox', '<port...>', '[HOSTIP:]HOSTPORT[-END][/tcp|udp]; without HOSTIP every host address of that port',
    (ref, ports, c) => call(c, 'PortUnpublish', { sandbox: ref, ports }));

  return cmd;
}

export function portCommand(): Command {
  return new Command('port')
    .description("list a sandbox's port mappings, like `docker port` (one line per mapping)")
    .argument('<sandbox>', 'name or id')
    .argument('[private-port]', 'only this container port: PORT[/tcp|udp]; prints just its host addresses')
    .option('-c, --counters', 'append packets and bytes toward the container to each line')
    .option('--format <fmt>', 'text (Docker\'s lines) or json', 'text')
    .action(async (ref: string, privatePort: string | undefined, o: { counters?: boolean; format: string }, c: Command) => {
      if (o.format !== 'text' && o.format !== 'json') throw invalidArgument(`unknown --format "${o.format}": use text or json`);
      if (privatePort !== undefined) parsePrivatePort(privatePort); // bad input fails before the call
      const r = await call(c, 'PortList', { sandbox: ref });
      if (o.format === 'json') {
        const want = privatePort ? parsePrivatePort(privatePort) : undefined;
        return out(json(r.ports.filter((p) => !want || (p.containerPort === want.port && p.proto === want.proto)).map(portRow)));
      }
      out(formatDockerPort(r.ports, { ...(privatePort ? { privatePort } : {}), sandbox: ref, counters: !!o.counters }));
    });
}
