/**
 * The CNI commands over the agent API. Everything the runtime sent is
 * validated before the first call that changes anything; a failing ADD undoes
 * what it made (a network it created on first use), so an error leaves the
 * agent's state as it was.
 *
 * Without a reachable agent: ADD and CHECK fail with code 11 (try again
 * later), STATUS with code 50, and DEL succeeds: a runtime must always be able
 * to tear a container down, and whatever the agent still holds for it goes
 * with a later DEL or GC.
 */
import { isIpv4 } from '../model/ipv4.js';
import type { Messages } from '../api/generated/types.js';
import { BpfnetError } from '../util/errors.js';
import { isNotFound, isUnavailable, type AgentApi, type Connect } from './agent.js';
import { checkInside, checkRecord, namespaceBefore } from './check.js';
import { CniError, CNI_ERR, fromAgentError } from './errors.js';
import { candidateAddresses, checkRanges, exhausted } from './ipranges.js';
import { attachmentOf, sandboxLabels, sandboxName } from './naming.js';
import { ipv4RangeSet, parseMac, publishSpecs } from './netconf.js';
import { buildResult } from './result.js';
import type { BpfnetNetConf, CniEnv, CniResult } from './types.js';
import { convertResult } from './version.js';

type Network = Messages['Network'];
type SandboxDetail = Messages['SandboxDetail'];

export interface CommandContext {
  env: CniEnv;
  conf: BpfnetNetConf;
  connect: Connect;
}

/** A command's stdout: a result object, or nothing (DEL, GC, STATUS). */
export type CommandOutput = CniResult | undefined;

async function withAgent<T>(ctx: CommandContext, what: string, fn: (a: AgentApi) => Promise<T>, unavailable?: () => T): Promise<T> {
  let agent: AgentApi;
  try {
    agent = await ctx.connect(ctx.conf.agentSocket);
  } catch (e) {
    if (unavailable && isUnavailable(e)) return unavailable();
    if (isUnavailable(e)) {
      throw new CniError(CNI_ERR.TRY_AGAIN_LATER, `${what}: the bpfnet agent is not reachable at ${ctx.conf.agentSocket}: the bpfnet CNI plugin needs a running \`bpfnet agent\` (start it, or set "agentSocket" in the network config)`, (e as Error).message);
    }
    throw fromAgentError(e, what);
  }
  try {
    return await fn(agent);
  } finally {
    agent.close();
  }
}

/** undefined when the agent has no such object. */
async function maybe<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

function nameOf(ctx: CommandContext): string {
  return sandboxName(ctx.env.containerId, ctx.env.ifName, ctx.conf.name);
}

// ---- ADD ---------------------------------------------------------------------

/** The bpfnet network; created from the config's subnet (or the ipRanges' one) on first use. */
async function ensureNetwork(a: AgentApi, conf: BpfnetNetConf): Promise<{ net: Network; created: boolean }> {
  const found = await maybe(a.call('NetworkInspect', { ref: conf.network }));
  if (found?.network) {
    const net = found.network;
    if (net.driver !== 'bridge' && net.driver !== 'routed') {
      throw new CniError(CNI_ERR.INVALID_NETCONF, `bpfnet network "${conf.network}" has driver ${net.driver}: CNI attachments need a bridge or routed network`);
    }
    if (conf.subnet && net.ipam?.subnet !== conf.subnet) {
      throw new CniError(CNI_ERR.INVALID_NETCONF, `bpfnet network "${conf.network}" exists with subnet ${net.ipam?.subnet ?? 'none'}, but the config says ${conf.subnet}; fix "subnet" or use another "network"`);
    }
    if (conf.gateway && net.ipam?.gateway !== conf.gateway) {
      throw new CniError(CNI_ERR.INVALID_NETCONF, `bpfnet network "${conf.network}" exists with gateway ${net.ipam?.gateway ?? 'none'}, but the config says ${conf.gateway}`);
    }
    return { net, created: false };
  }
  const rangeSubnet = ipv4RangeSet(conf.runtimeConfig.ipRanges)[0]?.subnet;
  const subnet = conf.subnet ?? rangeSubnet;
  if (!subnet) {
    throw new CniError(
      CNI_ERR.INVALID_NETCONF,
      `unknown bpfnet network "${conf.network}": create it first (bpfnet network create --subnet 10.x.0.0/24 ${conf.network}), or give "subnet" in the network config so the plugin creates it on first use`,
    );
  }
  try {
    const net = await a.call('NetworkCreate', {
      name: conf.network,
      driver: 'bridge',
      subnet,
      ...(conf.gateway ? { gateway: conf.gateway } : {}),
      options: conf.options,
      labels: { 'cni.network': conf.name },
    });
    return { net, created: true };
  } catch (e) {
    // Another ADD created it meanwhile: use theirs (and check it as above).
    if (e instanceof BpfnetError && e.code === 'E_CONFLICT' && /already exists/.test(e.message)) return ensureNetwork(a, conf);
    throw e;
  }
}

/** A static address from the runtime: the ips capability, else CNI_ARGS IP= (host-local's convention). */
function staticAddress(ctx: CommandContext): string | undefined {
  const fromCap = ctx.conf.runtimeConfig.ips.map((s) => s.split('/')[0]!).find((s) => isIpv4(s));
  if (fromCap) return fromCap;
  const arg = ctx.env.args['IP'];
  if (arg === undefined || arg === '') return undefined;
  const ip = arg.split('/')[0]!;
  if (!isIpv4(ip)) throw new CniError(CNI_ERR.INVALID_ENV, `CNI_ARGS IP=${arg} is not an IPv4 address`);
  return ip;
}

/** The mac capability, else CNI_ARGS MAC= (the convention of the reference plugins). */
function staticMac(ctx: CommandContext): string | undefined {
  if (ctx.conf.runtimeConfig.mac) return ctx.conf.runtimeConfig.mac;
  const arg = ctx.env.args['MAC'];
  if (arg === undefined || arg === '') return undefined;
  try {
    return parseMac(arg, 'CNI_ARGS MAC');
  } catch (e) {
    throw new CniError(CNI_ERR.INVALID_ENV, (e as Error).message);
  }
}

/** Addresses to try in order: one static, candidates from ipRanges, or [undefined] (the agent picks). */
async function addressPlan(a: AgentApi, ctx: CommandContext, net: Network, fixed: string | undefined): Promise<(string | undefined)[]> {
  if (fixed) return [fixed];
  const ranges = ipv4RangeSet(ctx.conf.runtimeConfig.ipRanges);
  if (!ranges.length) return [undefined];
  if (!net.ipam) throw new CniError(CNI_ERR.INVALID_NETCONF, `bpfnet network "${net.name}" has no IPAM config`);
  checkRanges(ranges, net.ipam, net.name);
  const d = await a.call('NetworkInspect', { ref: net.id });
  const inUse = new Set(d.endpoints.map((e) => e.ipv4));
  const c = candidateAddresses(ranges, net.ipam, inUse);
  if (!c.length) throw exhausted(ranges, net.name);
  return c;
}

async function add(ctx: CommandContext): Promise<CommandOutput> {
  const { env, conf } = ctx;
  const name = nameOf(ctx);
  const fixedIp = staticAddress(ctx);
  const mac = staticMac(ctx);
  return withAgent(ctx, 'ADD', async (a) => {
    let before: { ifExists: boolean; otherDefault: boolean };
    try {
      before = namespaceBefore(env.netns, env.ifName);
    } catch (e) {
      throw new CniError(CNI_ERR.INVALID_ENV, `CNI_NETNS ${env.netns} is not a usable network namespace: ${(e as Error).message}`);
    }
    const opts = { defaultRoute: !before.otherDefault };
    const existing = await maybe(a.call('SandboxInspect', { ref: name }));
    if (existing?.sandbox) {
      // The runtime repeated ADD for a live attachment: the same answer again.
      if (existing.sandbox.netnsPath === env.netns) return convertResult(buildResult(existing, env, conf, opts), conf.cniVersion);
      // A leftover of an earlier namespace of this container: replace it.
      await a.call('SandboxRemove', { ref: existing.sandbox.id, force: true });
    }
    if (before.ifExists) {
      throw new CniError(CNI_ERR.CONFLICT, `interface ${env.ifName} already exists in ${env.netns}; choose another CNI_IFNAME or remove it`);
    }
    const { net, created } = await ensureNetwork(a, conf);
    try {
      const plan = await addressPlan(a, ctx, net, fixedIp);
      const dns = (conf.runtimeConfig.dns ?? conf.dns)?.nameservers?.filter(isIpv4) ?? [];
      let detail: SandboxDetail | undefined;
      for (const [i, ip] of plan.entries()) {
        try {
          detail = await a.call('SandboxCreate', {
            name,
            network: net.name,
            netnsPath: env.netns,
            ifName: env.ifName,
            publish: publishSpecs(conf.runtimeConfig.portMappings),
            labels: sandboxLabels(env.containerId, env.ifName, conf.name),
            dns,
            ...(ip ? { ipv4: ip } : {}),
            ...(mac ? { mac } : {}),
          });
          break;
        } catch (e) {
          // ipRanges: another ADD took this address meanwhile; try the next one.
          const raced = e instanceof BpfnetError && e.code === 'E_CONFLICT' && e.details['requested'] === ip && ip !== undefined;
          if (!raced || i === plan.length - 1) throw e;
        }
      }
      if (!detail) throw new CniError(CNI_ERR.AGENT_FAILED, 'ADD: the agent returned no sandbox');
      return convertResult(buildResult(detail, env, conf, opts), conf.cniVersion);
    } catch (e) {
      if (created) await a.call('NetworkRemove', { ref: net.id }).catch(() => undefined);
      throw e;
    }
  });
}

// ---- DEL ---------------------------------------------------------------------

async function del(ctx: CommandContext): Promise<CommandOutput> {
  const name = nameOf(ctx);
  return withAgent(
    ctx,
    'DEL',
    async (a) => {
      try {
        await a.call('SandboxRemove', { ref: name, force: true });
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      return undefined;
    },
    // No agent, no attachment to tear down that we could reach: DEL must not block the runtime.
    () => undefined,
  );
}

// ---- CHECK -------------------------------------------------------------------

async function check(ctx: CommandContext): Promise<CommandOutput> {
  const { env, conf } = ctx;
  if (!conf.prevResult) throw new CniError(CNI_ERR.INVALID_NETCONF, 'CHECK needs prevResult (the result of ADD) in the network config');
  const name = nameOf(ctx);
  return withAgent(ctx, 'CHECK', async (a) => {
    const d = await maybe(a.call('SandboxInspect', { ref: name }));
    if (!d?.sandbox) {
      throw new CniError(CNI_ERR.UNKNOWN_CONTAINER, `no bpfnet attachment for container ${env.containerId} interface ${env.ifName} on network "${conf.name}" (sandbox ${name} does not exist)`);
    }
    const { problems, expected } = checkRecord(d, env, conf.prevResult);
    problems.push(...checkInside(env.netns, expected));
    if (problems.length) {
      throw new CniError(CNI_ERR.CHECK_FAILED, `attachment ${name} is broken: ${problems.join('; ')}`, problems.join('\n'));
    }
    return undefined;
  });
}

// ---- GC ----------------------------------------------------------------------

async function gc(ctx: CommandContext): Promise<CommandOutput> {
  const { conf } = ctx;
  if (!conf.validAttachments) throw new CniError(CNI_ERR.INVALID_NETCONF, 'GC needs "cni.dev/valid-attachments" in the network config (the attachments to keep)');
  const keep = new Set(conf.validAttachments.map((v) => `${v.containerID}\0${v.ifname}`));
  return withAgent(ctx, 'GC', async (a) => {
    const { sandboxes } = await a.call('SandboxList', {});
    const failed: string[] = [];
    for (const s of sandboxes) {
      const att = attachmentOf(s.labels, conf.name);
      if (!att || keep.has(`${att.containerID}\0${att.ifname}`)) continue;
      try {
        await a.call('SandboxRemove', { ref: s.id, force: true });
      } catch (e) {
        if (!isNotFound(e)) failed.push(`${s.name}: ${(e as Error).message}`);
      }
    }
    if (failed.length) throw new CniError(CNI_ERR.AGENT_FAILED, `GC could not remove ${failed.length} stale attachment(s): ${failed.join('; ')}`);
    return undefined;
  });
}

// ---- STATUS ------------------------------------------------------------------

async function status(ctx: CommandContext): Promise<CommandOutput> {
  const { conf } = ctx;
  const notAvailable = (msg: string, details = ''): CniError => new CniError(CNI_ERR.NOT_AVAILABLE, msg, details);
  let agent: AgentApi;
  try {
    agent = await ctx.connect(conf.agentSocket);
  } catch (e) {
    throw notAvailable(`the bpfnet agent is not reachable at ${conf.agentSocket}: start \`bpfnet agent\` (the bpfnet CNI plugin needs it)`, (e as Error).message);
  }
  try {
    const found = await maybe(agent.call('NetworkInspect', { ref: conf.network }));
    const net = found?.network;
    if (net && net.driver !== 'bridge' && net.driver !== 'routed') throw notAvailable(`bpfnet network "${conf.network}" has driver ${net.driver}, not bridge or routed`);
    if (!net && !conf.subnet && !ipv4RangeSet(conf.runtimeConfig.ipRanges).length) {
      throw notAvailable(`bpfnet network "${conf.network}" does not exist and the config gives no "subnet" to create it`);
    }
    return undefined;
  } catch (e) {
    if (e instanceof CniError) throw e;
    throw notAvailable(`the bpfnet agent at ${conf.agentSocket} failed: ${(e as Error).message}`);
  } finally {
    agent.close();
  }
}

export const COMMANDS: Record<Exclude<CniEnv['command'], 'VERSION'>, (ctx: CommandContext) => Promise<CommandOutput>> = {
  ADD: add,
  DEL: del,
  CHECK: check,
  GC: gc,
  STATUS: status,
};
