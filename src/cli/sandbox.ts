/**
 * `bpfnet sandbox ...`, `bpfnet run` and `bpfnet exec`: sandboxes are
 * Docker's containers minus the image; `run` starts a process inside one
 * the way `docker run` does (output passes through, exit code and signals
 * are the process's).
 */
import { inspectPorts } from './ports.js';
import { Command } from 'commander';
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { call, collect, eachRef, json, out, parseFormat } from './api.js';
import { networkRec, sandboxRec, endpointRec } from '../agent/handlers.js';
import { sandboxInspect, formatTable } from '../model/inspect.js';
import { formatPortList } from '../model/portspec.js';
import { parseKeyValues } from '../model/names.js';
import type { Messages } from '../api/generated/types.js';
import { BpfnetError } from '../util/errors.js';

interface CreateOpts {
  name?: string;
  network?: string;
  publish: string[];
  publishAll?: boolean;
  expose: string[];
  hostname?: string;
  dns: string[];
  label: string[];
  ip?: string;
  networkAlias: string[];
}

function createOptions(c: Command): Command {
  return c
    .helpOption('--help', 'display help for command') // -h is --hostname, as in docker run
    .option('--name <name>', 'sandbox name (default: generated)')
    .option('--network <net>', 'NETWORK | host | none | container:NAME', 'bridge')
    .option('-p, --publish <spec>', 'publish a port: [hostIP:][hostPort:]containerPort[/tcp|udp] (repeatable)', collect, [])
    .option('-P, --publish-all', 'publish every --expose port on an ephemeral host port')
    .option('--expose <port>', 'expose a port or range, e.g. 80 or 8000-8010/udp (repeatable)', collect, [])
    .option('-h, --hostname <name>', 'hostname inside the sandbox (default: the short id)')
    .option('--dns <ip>', 'DNS server for resolv.conf (repeatable)', collect, [])
    .option('--label <k=v>', 'metadata (repeatable)', collect, [])
    .option('--ip <ip>', 'static IPv4 address on the network')
    .option('--network-alias <name>', 'alias on the network (repeatable)', collect, []);
}

function createRequest(o: CreateOpts): Partial<Messages['SandboxCreateRequest']> {
  return {
    name: o.name ?? '',
    network: o.network ?? 'bridge',
    publish: o.publish,
    publishAll: !!o.publishAll,
    expose: o.expose,
    hostname: o.hostname ?? '',
    dns: o.dns,
    labels: parseKeyValues(o.label, 'label'),
    ...(o.ip ? { ipv4: o.ip } : {}),
    aliases: o.networkAlias,
  };
}

function inspectDoc(d: Messages['SandboxDetail']): unknown {
  const nets = new Map(d.networks.map((n) => [n.id, networkRec(n)]));
  const links = new Map(d.links.map((l) => [l.endpointId, { hostIfIndex: l.hostIfindex, peerIfIndex: l.peerIfindex, present: l.present }]));
  // Docker's shape, plus bpfnet's per-port view (backend, active, counters) under its own key.
  return { ...sandboxInspect(sandboxRec(d.sandbox!), d.endpoints.map(endpointRec), nets, links), Bpfnet: inspectPorts(d.published) };
}

/**
 * The argv that runs CMD inside a sandbox: its network namespace, plus a
 * private mount and UTS namespace where its hosts/hostname/resolv.conf are
 * bind-mounted over /etc and the hostname is set, as Docker's container sees.
 * Every step execs, so the spawned pid is CMD itself (signals reach it).
 */
export function sandboxArgv(d: Messages['SandboxDetail'], argv: string[]): { file: string; args: string[] } {
  const sb = d.sandbox!;
  const cmd = argv[0] === '--' ? argv.slice(1) : argv;
  if (!cmd.length) throw new BpfnetError('E_INVALID_ARGUMENT', 'no command given: put it after --, e.g. bpfnet run -- sh');
  // Host mode: the agent's (node's) own stack and files.
  if (sb.mode?.kind === 'host') return { file: 'nsenter', args: [`--net=${sb.netnsPath}`, '--', ...cmd] };
  const script = [
    'set -e',
    'd="$1"; h="$2"; shift 2',
    'if [ -n "$d" ]; then for f in hosts hostname resolv.conf; do [ -e "/etc/$f" ] && mount --bind "$d/$f" "/etc/$f"; done; fi',
    'if [ -n "$h" ]; then hostname "$h"; fi',
    'exec "$@"',
  ].join('\n');
  return {
    file: 'nsenter',
    args: [`--net=${sb.netnsPath}`, '--', 'unshare', '--mount', '--uts', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', d.filesDir, sb.hostname, ...cmd],
  };
}

/** Runs argv with stdio passed through; resolves to the exit code Docker would report. */
export function runAttached(file: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: 'inherit' });
    const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
    const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];
    const handlers = sigs.map((s) => [s, forward(s)] as const);
    for (const [s, h] of handlers) process.on(s, h);
    const done = () => {
      for (const [s, h] of handlers) process.off(s, h);
    };
    child.once('error', (e) => {
      done();
      reject(e);
    });
    child.once('exit', (code, signal) => {
      done();
      resolve(code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : 1));
    });
  });
}

export function sandboxCommand(): Command {
  const cmd = new Command('sandbox').description('manage sandboxes (network namespaces with endpoints, like containers without images)');

  createOptions(cmd.command('create').description('create a sandbox')).action(async (o: CreateOpts, c: Command) => {
    const d = await call(c, 'SandboxCreate', createRequest(o));
    out(`${d.sandbox!.id}\n`);
  });

  cmd
    .command('ls')
    .alias('list')
    .description('list sandboxes')
    .option('--format <fmt>', 'table or json', 'table')
    .option('-q, --quiet', 'only ids')
    .action(async (o: { format: string; quiet?: boolean }, c: Command) => {
      const fmt = parseFormat(o.format);
      const sbs = (await call(c, 'SandboxList')).sandboxes.map(sandboxRec);
      if (o.quiet) return out(sbs.map((s) => `${s.id.slice(0, 12)}\n`).join(''));
      if (fmt === 'json') return out(json(sbs));
      const nets = new Map((await call(c, 'NetworkList')).networks.map((n) => [n.id, n.name]));
      const mode = (s: (typeof sbs)[number]): string =>
        s.mode.kind === 'bridge' ? (nets.get(s.mode.network) ?? s.mode.network.slice(0, 12)) : s.mode.kind === 'container' ? `container:${s.mode.sandboxId.slice(0, 12)}` : s.mode.kind;
      out(formatTable(['SANDBOX ID', 'NAME', 'NETWORK', 'PORTS', 'CREATED'], sbs.map((s) => [s.id.slice(0, 12), s.name, mode(s), formatPortList(s.ports, s.exposed), s.created])));
    });

  cmd
    .command('inspect')
    .description('show sandboxes as JSON (docker inspect shape, plus each endpoint’s veth pairing)')
    .argument('<sandbox...>')
    .action(async (refs: string[], _o: unknown, c: Command) => {
      const docs = [];
      for (const ref of refs) docs.push(inspectDoc(await call(c, 'SandboxInspect', { ref })));
      out(json(docs));
    });

  cmd
    .command('rm')
    .alias('remove')
    .description('remove sandboxes, their endpoints, addresses and published ports')
    .argument('<sandbox...>')
    .option('-f, --force', 'also when other sandboxes share its namespace')
    .action(async (refs: string[], o: { force?: boolean }, c: Command) => {
      await eachRef(refs, async (ref) => {
        await call(c, 'SandboxRemove', { ref, force: !!o.force });
        out(`${ref}\n`);
      });
    });

  return cmd;
}

export function runCommand(): Command {
  return createOptions(
    new Command('run')
      .description('create a sandbox and run a command in it, like `docker run` (stdio, exit code and signals are the command\'s)')
      .usage('[options] -- CMD [ARGS...]')
      .option('--rm', 'remove the sandbox when the command exits')
      .argument('<cmd...>', 'command and arguments (put them after --)')
      .passThroughOptions(),
  ).action(async (argv: string[], o: CreateOpts & { rm?: boolean }, c: Command) => {
    const d = await call(c, 'SandboxCreate', createRequest(o));
    let code = 125;
    try {
      const { file, args } = sandboxArgv(d, argv);
      code = await runAttached(file, args).catch((e: NodeJS.ErrnoException) => {
        process.stderr.write(`bpfnet: cannot run ${argv[0]}: ${e.message}\n`);
        return e.code === 'ENOENT' ? 127 : 126;
      });
    } finally {
      if (o.rm) await call(c, 'SandboxRemove', { ref: d.sandbox!.id, force: true });
    }
    process.exitCode = code;
  });
}

export function execCommand(): Command {
  return new Command('exec')
    .description("run a command inside a sandbox's network namespace (and its hosts/resolv.conf/hostname)")
    .usage('[options] SANDBOX -- CMD [ARGS...]')
    .argument('<sandbox>')
    .argument('<cmd...>')
    .passThroughOptions()
    .action(async (ref: string, argv: string[], _o: unknown, c: Command) => {
      const d = await call(c, 'SandboxInspect', { ref });
      const { file, args } = sandboxArgv(d, argv);
      process.exitCode = await runAttached(file, args).catch((e: NodeJS.ErrnoException) => {
        process.stderr.write(`bpfnet: cannot run ${argv[0]}: ${e.message}\n`);
        return e.code === 'ENOENT' ? 127 : 126;
      });
    });
}
