/** `bpfnet network ...`: Docker's `docker network` commands, same flags and JSON. */
import { Command } from 'commander';
import { call, collect, eachRef, json, out, parseFormat } from './api.js';
import { networkRec, sandboxRec, endpointRec } from '../agent/handlers.js';
import { networkInspect, networkSummary, formatTable } from '../model/inspect.js';
import { parseKeyValues } from '../model/names.js';
import type { SandboxRecord } from '../model/types.js';

export function networkCommand(): Command {
  const cmd = new Command('network').description('manage networks (bridge, routed; host and none are predefined)');

  cmd
    .command('create')
    .description('create a network')
    .argument('<name>', 'network name')
    .option('-d, --driver <driver>', 'bridge (a Linux bridge per network) or routed (L3: /32 routes, proxy ARP)', 'bridge')
    .option('--subnet <cidr>', 'subnet, e.g. 10.10.0.0/24 (default: the first free Docker default pool)')
    .option('--gateway <ip>', 'gateway address inside the subnet (default: the first address)')
    .option('--ip-range <cidr>', 'allocate container addresses from this part of the subnet')
    .option('--aux-address <name=ip>', 'reserve an address (repeatable)', collect, [])
    .option('--internal', 'no traffic in or out of the subnet')
    .option('--attachable', 'accepted for Docker compatibility')
    .option('--label <k=v>', 'set metadata (repeatable)', collect, [])
    .option('-o, --opt <k=v>', 'driver option, e.g. com.docker.network.bridge.name=br0 (repeatable)', collect, [])
    .action(async (name: string, o: { driver: string; subnet?: string; gateway?: string; ipRange?: string; auxAddress: string[]; internal?: boolean; attachable?: boolean; label: string[]; opt: string[] }, c: Command) => {
      const n = await call(c, 'NetworkCreate', {
        name,
        driver: o.driver,
        ...(o.subnet ? { subnet: o.subnet } : {}),
        ...(o.gateway ? { gateway: o.gateway } : {}),
        ...(o.ipRange ? { ipRange: o.ipRange } : {}),
        auxAddresses: parseKeyValues(o.auxAddress, 'aux-address'),
        internal: !!o.internal,
        attachable: !!o.attachable,
        labels: parseKeyValues(o.label, 'label'),
        options: parseKeyValues(o.opt, 'option'),
      });
      out(`${n.id}\n`);
    });

  cmd
    .command('ls')
    .alias('list')
    .description('list networks')
    .option('--format <fmt>', 'table or json', 'table')
    .option('-q, --quiet', 'only ids')
    .action(async (o: { format: string; quiet?: boolean }, c: Command) => {
      const fmt = parseFormat(o.format);
      const nets = (await call(c, 'NetworkList')).networks.map(networkRec);
      if (o.quiet) return out(nets.map((n) => `${n.id.slice(0, 12)}\n`).join(''));
      const rows = nets.map(networkSummary);
      if (fmt === 'json') return out(json(rows));
      out(formatTable(['NETWORK ID', 'NAME', 'DRIVER', 'SCOPE'], rows.map((r) => [r.ID, r.Name, r.Driver, r.Scope])));
    });

  cmd
    .command('inspect')
    .description("show networks as Docker's JSON")
    .argument('<network...>', 'names or ids')
    .action(async (refs: string[], _o: unknown, c: Command) => {
      const docs = [];
      for (const ref of refs) {
        const d = await call(c, 'NetworkInspect', { ref });
        const sbs = new Map<string, SandboxRecord>(d.sandboxes.map((s) => [s.id, sandboxRec(s)]));
        docs.push(networkInspect(networkRec(d.network!), d.endpoints.map(endpointRec), sbs));
      }
      out(json(docs));
    });

  cmd
    .command('rm')
    .alias('remove')
    .description('remove networks (refused while sandboxes are attached)')
    .argument('<network...>', 'names or ids')
    .action(async (refs: string[], _o: unknown, c: Command) => {
      await eachRef(refs, async (ref) => {
        await call(c, 'NetworkRemove', { ref });
        out(`${ref}\n`);
      });
    });

  cmd
    .command('prune')
    .description('remove every network without endpoints (predefined ones stay)')
    .option('-f, --force', 'do not ask (bpfnet never asks; accepted for Docker compatibility)')
    .action(async (_o: unknown, c: Command) => {
      const r = await call(c, 'NetworkPrune');
      if (r.names.length) out(`Deleted Networks:\n${r.names.map((n) => `${n}\n`).join('')}`);
    });

  cmd
    .command('connect')
    .description('connect a sandbox to a network')
    .argument('<network>')
    .argument('<sandbox>')
    .option('--ip <ip>', 'static IPv4 address')
    .option('--alias <name>', 'network-scoped alias (repeatable)', collect, [])
    .action(async (network: string, sandbox: string, o: { ip?: string; alias: string[] }, c: Command) => {
      await call(c, 'NetworkConnect', { network, sandbox, ...(o.ip ? { ipv4: o.ip } : {}), aliases: o.alias });
    });

  cmd
    .command('disconnect')
    .description('disconnect a sandbox from a network')
    .argument('<network>')
    .argument('<sandbox>')
    .option('-f, --force', 'accepted for Docker compatibility')
    .action(async (network: string, sandbox: string, o: { force?: boolean }, c: Command) => {
      await call(c, 'NetworkDisconnect', { network, sandbox, force: !!o.force });
    });

  return cmd;
}
