/**
 * A real bpfnet agent in one dataplane mode (AgentLab: its own throw-away
 * node netns, state dir and bpffs root), driven through its API as a client
 * would, with what the benchmarks read off it: the agent's RSS and, in eBPF
 * mode, the kernel memory of its maps.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '../../src/api/client.js';
import { AgentLab } from '../../src/lab/agentlab.js';
import { run } from '../../src/util/exec.js';
import { registerCleanup } from './env.js';
import { elapsedS, nowNs } from './stats.js';

export type AgentMode = 'ebpf' | 'nftables' | 'iptables';
export const AGENT_MODES: readonly AgentMode[] = ['ebpf', 'nftables', 'iptables'];

export interface AgentPeer {
  mode: AgentMode;
  lab: AgentLab;
  client: Client;
  /** The user bridge network sandboxes join. */
  network: string;
  /** One API call, timed in this process around the call (ms). */
  timed<T>(f: (c: Client) => Promise<T>): Promise<{ ms: number; value: T }>;
  /** VmRSS of the agent process (KiB). */
  rssKiB(): number;
  /** The phases the agent logged for a sandbox's creation ('sandbox created' line: record, plumb, dataplane ms). */
  createPhases(sandbox: string): Record<string, number> | undefined;
  /** eBPF: the sum of bytes_memlock over the maps pinned under the agent's root; undefined otherwise. */
  mapBytes(): Promise<number | undefined>;
  release(): Promise<void>;
}

/** VmRSS of a process in KiB (0 when it is gone). */
export function rssKiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Proportional set size of a process in KiB (shared pages divided among their users, so sums over processes add up); 0 when gone. */
export function pssKiB(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** bytes_memlock of every map pinned in a directory (the kernel's own accounting of the map's memory). */
export async function pinnedMapBytes(dir: string): Promise<number> {
  let total = 0;
  for (const f of readdirSync(dir)) {
    const j = JSON.parse((await run('bpftool', ['-j', 'map', 'show', 'pinned', join(dir, f)])).stdout) as { bytes_memlock?: number };
    total += j.bytes_memlock ?? 0;
  }
  return total;
}

export async function startAgentPeer(mode: AgentMode, subnet: string): Promise<AgentPeer> {
  // Log level info: the agent prints "agent ready" at info, which AgentLab waits for.
  const lab = await AgentLab.create({ defaultSubnet: '10.239.0.0/24', args: ['--dataplane', mode, '--log-level', 'info'] });
  let client: Client | undefined;
  const release = registerCleanup(async () => {
    client?.close();
    await lab.destroy();
  });
  try {
    await lab.start();
    client = await Client.connect(lab.host);
    const c = client;
    await c.call('NetworkCreate', { name: 'bench', subnet });
    const pid = lab.agent!.pid!; // nsenter execs node: the child's pid is the agent's
    return {
      mode,
      lab,
      client: c,
      network: 'bench',
      timed: async (f) => {
        const t = nowNs();
        const value = await f(c);
        return { ms: elapsedS(t) * 1000, value };
      },
      rssKiB: () => rssKiB(pid),
      createPhases: (name) => {
        for (const line of lab.agentLog.split('\n').reverse()) {
          if (!line.includes('"sandbox created"') || !line.includes(`"${name}"`)) continue;
          try {
            const j = JSON.parse(line) as { sandbox?: string; ms?: Record<string, number> };
            if (j.sandbox === name) return j.ms;
          } catch {
            /* not a JSON line */
          }
        }
        return undefined;
      },
      mapBytes: async () => (mode === 'ebpf' ? pinnedMapBytes(join(lab.bpffsRoot, 'maps')) : undefined),
      release,
    };
  } catch (e) {
    await release();
    throw e;
  }
}
