/** `bpfnet agent` (the daemon) and `bpfnet info`. */
import { Command } from 'commander';
import { startAgent } from '../agent/agent.js';
import { defaultConfig, type AgentConfig } from '../agent/config.js';
import { socketPath, resolveHost } from '../api/client.js';
import { call, collect, json, out } from './api.js';
import { formatInfoCounters } from './stats.js';
import { parseDataplaneChoice } from '../dataplane/select.js';
import { invalidArgument } from '../util/errors.js';
import { maps as mapLayouts } from '../maps/generated/abi.js';
import { DEFAULT_PLUGIN_SOCKET } from '../docker/protocol.js';

export function agentCommand(): Command {
  const d = defaultConfig();
  return new Command('agent')
    .description('run the node agent: owns the state, plumbs namespaces and programs the dataplane; serves the API on --host')
    .option('--state-dir <dir>', 'state database and sandbox files', d.stateDir)
    .option('--run-dir <dir>', 'runtime files (sandbox namespaces)', d.runDir)
    .option('--bpffs-root <dir>', "this agent's pins", d.bpffsRoot)
    .option('--uplink <dev>', 'device external traffic arrives on (repeatable; default: the default route\'s)', collect, [])
    .option('--dataplane <mode>', 'ebpf, iptables, nftables, or auto (eBPF when `bpfnet doctor` says the kernel can); a restart in another mode removes the old one', d.dataplane)
    .option('--default-bridge <dev>', 'device of the default "bridge" network', d.defaultBridge)
    .option('--default-subnet <cidr>', 'subnet of the default network (default: first free Docker pool)')
    .option('--resolv-conf <file>', "the node's resolv.conf, source of the sandboxes'", d.resolvConf)
    .option('--log-level <level>', 'trace, debug, info, warn, error', d.logLevel)
    .option('--map-size <map=entries>', 'max entries of a BPF map, e.g. bpfnet_ports=131072 (repeatable; a pinned map is migrated)', collect, [])
    .option('--xdp <mode>', 'also translate published ports in XDP on the uplinks: off, auto, native or generic (off: measured no faster than tc on veth)', 'off')
    .option('--snat-ports <min-max>', 'source ports masquerade allocates from', `${d.snatPorts[0]}-${d.snatPorts[1]}`)
    .option('--embedded-dns', 'serve names at 127.0.0.11:53 inside sandboxes on user-defined networks (the default)')
    .option('--docker-plugin [socket]', `also serve Docker's remote network driver and IPAM plugin protocols on this socket (default ${DEFAULT_PLUGIN_SOCKET}; Docker knows the plugin by the socket's name: -d bpfnet)`)
    .option('--no-embedded-dns', 'no embedded DNS: sandboxes on user-defined networks get the node\'s resolv.conf, as on the default bridge')
    .action(async (o: { stateDir: string; runDir: string; bpffsRoot: string; uplink: string[]; dataplane: string; defaultBridge: string; defaultSubnet?: string; resolvConf: string; logLevel: string; embeddedDns?: boolean; mapSize: string[]; snatPorts: string; xdp: string; dockerPlugin?: string | boolean }, c: Command) => {
      const host = (c.optsWithGlobals() as { host?: string }).host ?? process.env['BPFNET_HOST'];
      const cfg: AgentConfig = {
        stateDir: o.stateDir,
        runDir: o.runDir,
        socket: host ? socketPath(resolveHost(host)) : `${o.runDir}/bpfnet.sock`,
        bpffsRoot: o.bpffsRoot,
        uplinks: o.uplink,
        dataplane: parseDataplaneChoice(o.dataplane),
        defaultBridge: o.defaultBridge,
        defaultSubnet: o.defaultSubnet,
        resolvConf: o.resolvConf,
        logLevel: o.logLevel,
        embeddedDns: o.embeddedDns ?? d.embeddedDns,
        mapSizes: parseMapSizes(o.mapSize),
        snatPorts: parsePortRange(o.snatPorts, '--snat-ports'),
        xdp: parseXdp(o.xdp),
        dockerPlugin: o.dockerPlugin === true ? DEFAULT_PLUGIN_SOCKET : o.dockerPlugin || undefined,
      };
      const agent = await startAgent(cfg);
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await agent.stop();
    });
}

export function infoCommand(): Command {
  return new Command('info')
    .description("the agent's version, dataplane, paths and counts")
    .option('--format <fmt>', 'table or json', 'table')
    .action(async (o: { format: string }, c: Command) => {
      const i = await call(c, 'Info');
      if (o.format === 'json') return out(json(i));
      out(
        [
          `Version:        ${i.version}`,
          `Dataplane:      ${i.dataplane}`,
          `PID:            ${i.pid}`,
          `Started:        ${i.started}`,
          `Networks:       ${i.networks}`,
          `Sandboxes:      ${i.sandboxes}`,
          ...formatInfoCounters(i.counters),
          `Uplinks:        ${i.uplinks.join(', ') || '(none)'}`,
          `Node addresses: ${i.nodeAddresses.join(', ') || '(none)'}`,
          `State dir:      ${i.stateDir}`,
          `Run dir:        ${i.runDir}`,
          `bpffs root:     ${i.bpffsRoot}`,
          '',
        ].join('\n'),
      );
    });
}

/** --map-size NAME=N (repeatable) -> { NAME: N }, checked against the map ABI. */
export function parseMapSizes(specs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const spec of specs) {
    const m = /^([a-z0-9_]+)=([0-9]+)$/.exec(spec);
    if (!m) throw invalidArgument(`--map-size takes MAP=ENTRIES (e.g. bpfnet_ports=131072), got "${spec}"`);
    const [, name, n] = m as unknown as [string, string, string];
    if (!Object.hasOwn(mapLayouts, name)) throw invalidArgument(`--map-size: no map named ${name}; maps: ${Object.keys(mapLayouts).join(', ')}`);
    if (FIXED_SIZE_MAPS.has(name)) throw invalidArgument(`--map-size: ${name} has a fixed size`);
    const entries = Number(n);
    if (!Number.isSafeInteger(entries) || entries < 1 || entries > 1 << 26) throw invalidArgument(`--map-size ${name}: entries must be 1..${1 << 26}, got ${n}`);
    out[name] = entries;
  }
  return out;
}

/** Arrays indexed by ABI enums: their size is part of the ABI. */
const FIXED_SIZE_MAPS = new Set(['bpfnet_metrics', 'bpfnet_config']);

export function parsePortRange(spec: string, flag: string): [number, number] {
  const m = /^([0-9]+)-([0-9]+)$/.exec(spec);
  const lo = Number(m?.[1]);
  const hi = Number(m?.[2]);
  if (!m || lo < 1 || hi > 65535 || lo > hi) throw invalidArgument(`${flag} takes MIN-MAX within 1-65535 (e.g. 61000-65535), got "${spec}"`);
  return [lo, hi];
}

export function parseXdp(v: string): AgentConfig['xdp'] {
  if (v === 'off') return undefined;
  if (v === 'auto' || v === 'native' || v === 'generic') return v;
  throw invalidArgument(`--xdp takes off, auto, native or generic, got "${v}"`);
}
