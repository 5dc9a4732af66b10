/** `bpfnet agent` (the daemon) and `bpfnet info`. */
import { Command } from 'commander';
import { startAgent } from '../agent/agent.js';
import { defaultConfig, type AgentConfig } from '../agent/config.js';
import { socketPath, resolveHost } from '../api/client.js';
import { call, collect, json, out } from './api.js';
import { invalidArgument } from '../util/errors.js';

export function agentCommand(): Command {
  const d = defaultConfig();
  return new Command('agent')
    .description('run the node agent: owns the state, plumbs namespaces and programs the dataplane; serves the API on --host')
    .option('--state-dir <dir>', 'state database and sandbox files', d.stateDir)
    .option('--run-dir <dir>', 'runtime files (sandbox namespaces)', d.runDir)
    .option('--bpffs-root <dir>', "this agent's pins", d.bpffsRoot)
    .option('--uplink <dev>', 'device external traffic arrives on (repeatable; default: the default route\'s)', collect, [])
    .option('--dataplane <mode>', 'ebpf (iptables and nftables arrive with the fallback dataplanes)', d.dataplane)
    .option('--default-bridge <dev>', 'device of the default "bridge" network', d.defaultBridge)
    .option('--default-subnet <cidr>', 'subnet of the default network (default: first free Docker pool)')
    .option('--resolv-conf <file>', "the node's resolv.conf, source of the sandboxes'", d.resolvConf)
    .option('--log-level <level>', 'trace, debug, info, warn, error', d.logLevel)
    .option('--embedded-dns', 'serve names at 127.0.0.11:53 inside sandboxes on user-defined networks (experimental: takes port 53 there)')
    .action(async (o: { stateDir: string; runDir: string; bpffsRoot: string; uplink: string[]; dataplane: string; defaultBridge: string; defaultSubnet?: string; resolvConf: string; logLevel: string; embeddedDns?: boolean }, c: Command) => {
      if (o.dataplane !== 'ebpf') throw invalidArgument(`--dataplane ${o.dataplane} is not available yet; this build has: ebpf`);
      const host = (c.optsWithGlobals() as { host?: string }).host ?? process.env['BPFNET_HOST'];
      const cfg: AgentConfig = {
        stateDir: o.stateDir,
        runDir: o.runDir,
        socket: host ? socketPath(resolveHost(host)) : `${o.runDir}/bpfnet.sock`,
        bpffsRoot: o.bpffsRoot,
        uplinks: o.uplink,
        dataplane: 'ebpf',
        defaultBridge: o.defaultBridge,
        defaultSubnet: o.defaultSubnet,
        resolvConf: o.resolvConf,
        logLevel: o.logLevel,
        embeddedDns: !!o.embeddedDns,
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
