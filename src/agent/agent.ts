/**
 * `bpfnet agent`: opens the store, reconciles the kernel with it, programs
 * the dataplane and serves the API until SIGINT/SIGTERM. Stopping leaves
 * everything in place (sandboxes keep their network; pinned maps and
 * attached programs keep forwarding); the next start reconciles.
 */
import { readFileSync } from 'node:fs';
import pino, { type Logger } from 'pino';
import { Store } from '../state/store.js';
import { NatGc } from '../dataplane/ebpf/gc.js';
import { createDataplane, removeOtherModes, resolveAutoMode } from '../dataplane/select.js';
import type { DataplaneMode } from '../dataplane/types.js';
import { EbpfDataplane } from '../dataplane/ebpf/dataplane.js';
import { ensureBpffs } from '../loader/bpffs.js';
import { Rtnl, sysctl } from '../netlink/index.js';
import { ModelService } from './service.js';
import { Plumbing } from './plumbing.js';
import { ApiServer } from './server.js';
import { handlers } from './handlers.js';
import { netnsDir, type AgentConfig } from './config.js';
import { VERSION } from '../util/version.js';
import { BpfnetError } from '../util/errors.js';
import { DnsRegistry, DnsServer, redirectForDataplane } from '../dns/index.js';
import { upstreamNameservers } from '../model/sandboxfiles.js';
import { DockerPluginServer } from '../docker/server.js';
import { join } from 'node:path';

export interface RunningAgent {
  service: ModelService;
  server: ApiServer;
  stop(): Promise<void>;
}

function readResolvConf(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function readEphemeral(): [number, number] {
  const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  if (!lo || !hi) throw new Error('unreadable ip_local_port_range');
  return [lo, hi];
}

/** How often a rule-based dataplane checks that its rules are still there. */
const RECHECK_MS = 30_000;

async function chooseMode(cfg: AgentConfig, log: Logger): Promise<DataplaneMode> {
  if (cfg.dataplane !== 'auto') return cfg.dataplane;
  const a = await resolveAutoMode({ bpffsRoot: cfg.bpffsRoot });
  log.info({ mode: a.mode, reason: a.reason }, 'dataplane auto: chose a mode');
  return a.mode;
}

export async function startAgent(cfg: AgentConfig, log: Logger = pino({ level: cfg.logLevel })): Promise<RunningAgent> {
  const started = new Date().toISOString();
  const t0 = performance.now();
  const store = Store.open(cfg.stateDir);
  await ensureBpffs(cfg.bpffsRoot);
  const rt = Rtnl.open();
  const uplinks = cfg.uplinks.length
    ? cfg.uplinks
    : rt
        .routes({})
        .flatMap((r) => (r.dst === 'default' && r.dev ? [r.dev] : []));
  for (const u of uplinks) {
    if (!rt.link(u)) {
      store.close();
      rt.close();
      throw new BpfnetError('E_NOT_FOUND', `uplink device ${u} does not exist in the agent's network namespace; pass --uplink with one of: ${rt.links().map((l) => l.name).join(', ')}`);
    }
  }
  // The agent owns forwarding in its namespace: containers are routed through it.
  sysctl(undefined, 'net.ipv4.ip_forward', '1');

  const plumbing = new Plumbing(netnsDir(cfg));
  await plumbing.bindHostNetns();
  const mode = await chooseMode(cfg, log);
  // A restart in another mode first removes everything the other modes left
  // (programs, pins, links, chains, tables; only bpfnet's), then programs
  // this one from the same state: networks, sandboxes and ports survive.
  const devices = [...uplinks, ...store.networks().flatMap((n) => (n.bridgeName ? [n.bridgeName] : [])), ...store.endpoints().flatMap((e) => (e.hostIfName ? [e.hostIfName] : []))];
  const removed = await removeOtherModes(mode, { root: cfg.bpffsRoot, devices });
  if (removed.ebpf?.detached.length || removed.iptables?.removed || removed.nftables?.removed) log.info({ removed }, 'removed what another dataplane mode left');
  const dataplane = createDataplane(mode, {
    root: cfg.bpffsRoot,
    mapSizes: cfg.mapSizes,
    snatPorts: cfg.snatPorts,
    xdp: cfg.xdp,
    onMigrate: (m) => log.warn(m, m.kept ? 'BPF map resized; entries kept' : 'BPF map recreated with a new layout; its entries were dropped'),
  });
  const ebpf = dataplane instanceof EbpfDataplane ? dataplane : undefined;
  await ebpf?.prepare();
  const registry = new DnsRegistry();
  const upstreams = upstreamNameservers(readResolvConf(cfg.resolvConf)).map((u) => ({ addr: u.addr }));
  const dns = cfg.embeddedDns ? new DnsServer({ registry, upstreams, logger: log.child({ component: 'dns' }), bpffsRoot: cfg.bpffsRoot, redirect: redirectForDataplane(mode) }) : undefined;
  const service = new ModelService(cfg, store, plumbing, dataplane, log, {
    uplinks,
    addrs: () => rt.addrs(),
    routes: () => rt.routes({}).map((r) => r.dst).filter((d) => d !== 'default'),
    ephemeral: readEphemeral,
  }, dns ? { registry, server: dns } : undefined);
  service.ensurePredefined();
  const rec = await service.reconcile();
  await dns?.pruneRedirects().catch((e: unknown) => log.warn({ err: e instanceof Error ? e.message : String(e) }, 'dns: pruning stale redirects failed'));
  log.info({ ...rec, ms: Math.round(performance.now() - t0) }, 'reconciled');

  // Expired NAT state goes in the background; the decision depends only on
  // what the maps hold, so a restart never drops live flows.
  const gc = ebpf
    ? new NatGc({
        mapDir: ebpf.mapDir,
        onRun: (r) => log.debug({ gc: r }, 'NAT garbage collection'),
        onError: (e) => log.warn({ err: e.message, code: e.code }, 'NAT garbage collection failed'),
      })
    : undefined;
  gc?.start();
  // Rule-based modes: someone may flush our chains (firewall reloads); put them back.
  const recheck = dataplane.reconcile
    ? setInterval(() => {
        void dataplane.reconcile!().then(
          (r) => r.reapplied && log.warn('dataplane rules were changed by someone else; re-applied'),
          (e: Error) => log.warn({ err: e.message }, 'dataplane re-check failed'),
        );
      }, RECHECK_MS)
    : undefined;
  recheck?.unref();

  const server = new ApiServer(cfg.socket, handlers(service, { started, uplinks, version: VERSION }), log);
  await server.listen();
  // Docker's plugin protocols, served by this process and driving it through its API socket.
  const plugin = cfg.dockerPlugin ? await DockerPluginServer.start({ socket: cfg.dockerPlugin, agentHost: `unix://${cfg.socket}`, stateFile: join(cfg.stateDir, 'docker-plugin.json'), log }) : undefined;
  log.info({ socket: cfg.socket, state: store.path, bpffs: cfg.bpffsRoot, uplinks, dataplane: mode, embeddedDns: cfg.embeddedDns, dnsUpstreams: upstreams.map((u) => u.addr), version: VERSION }, 'agent ready');

  return {
    service,
    server,
    async stop() {
      await plugin?.close();
      await server.close();
      await gc?.stop();
      if (recheck) clearInterval(recheck);
      await dns?.close({ leaveRedirects: true });
      plumbing.close();
      rt.close();
      store.close();
      log.info('agent stopped (kernel state left in place)');
    },
  };
}
