/**
 * Coexistence with Docker's iptables (issue 5). When dockerd enables IP
 * forwarding itself it sets the filter FORWARD policy to DROP. bpfnet's
 * iptables mode accepts its traffic inside that same chain, so it is
 * unaffected; but nftables mode accepts in its own `table ip bpfnet`, and eBPF
 * mode lets containers' outbound packets through the stack's FORWARD hook,
 * and in netfilter an accept in one base chain does not stop another base
 * chain (iptables-nft's `ip filter FORWARD`, or the legacy one) from dropping
 * the packet. Docker's documented answer for other firewalls is the
 * DOCKER-USER chain, which it never flushes: so, when that chain exists, its
 * top gets one ACCEPT per direction per bpfnet network, tagged with a comment
 * so only these are ever removed. The accept only takes Docker's chain out
 * of the decision: bpfnet's own rules (ICC, internal, isolation, published
 * ports) still judge the packet.
 */
import { run } from '../../util/exec.js';
import { CommandError } from '../../util/errors.js';
import type { DataplaneNetwork } from '../types.js';

export const DOCKER_USER = 'DOCKER-USER';
/** Marks bpfnet's rules in Docker's chain (the only ones bpfnet touches there). */
export const DOCKER_USER_COMMENT = 'bpfnet: judged by bpfnet';

/** The rules (iptables -S form, without "-A DOCKER-USER") for these networks. Pure. */
export function dockerUserRules(nets: readonly Pick<DataplaneNetwork, 'bridge' | 'subnet'>[]): string[] {
  const tag = `-m comment --comment "${DOCKER_USER_COMMENT}" -j ACCEPT`;
  const out: string[] = [];
  for (const n of nets) {
    if (n.bridge) out.push(`-i ${n.bridge} ${tag}`, `-o ${n.bridge} ${tag}`);
    else out.push(`-s ${n.subnet} ${tag}`, `-d ${n.subnet} ${tag}`);
  }
  return [...new Set(out)];
}

/** Our rules now in DOCKER-USER (normalised as above), or null when the chain (or iptables) is absent. */
async function ours(netns: string | undefined): Promise<string[] | null> {
  try {
    const { stdout } = await run('iptables', ['-w', '-t', 'filter', '-S', DOCKER_USER], { netns });
    return stdout
      .split('\n')
      .filter((l) => l.startsWith(`-A ${DOCKER_USER} `) && l.includes(DOCKER_USER_COMMENT))
      .map((l) => l.slice(`-A ${DOCKER_USER} `.length));
  } catch (e) {
    if (e instanceof CommandError && (e.code === 'E_COMMAND_FAILED' || e.code === 'E_TOOL_MISSING')) return null;
    throw e;
  }
}

const argv = (rule: string) => rule.match(/"[^"]*"|\S+/g)!.map((a) => a.replace(/^"|"$/g, ''));

/** What is missing or stale in DOCKER-USER; empty when Docker's chain is absent or all is in place. */
export async function dockerUserDrift(netns: string | undefined, want: string[]): Promise<string[]> {
  const have = await ours(netns);
  if (have === null) return [];
  const missing = want.filter((r) => !have.includes(r)).map((r) => `${DOCKER_USER}: missing ${r}`);
  const stale = have.filter((r) => !want.includes(r)).map((r) => `${DOCKER_USER}: stale ${r}`);
  return [...missing, ...stale];
}

/** Make bpfnet's rules in DOCKER-USER exactly `want` (a no-op without Docker's chain). */
export async function syncDockerUser(netns: string | undefined, want: string[]): Promise<{ added: number; removed: number }> {
  const have = await ours(netns);
  if (have === null) return { added: 0, removed: 0 };
  let added = 0;
  let removed = 0;
  for (const r of have.filter((x) => !want.includes(x))) {
    await run('iptables', ['-w', '-t', 'filter', '-D', DOCKER_USER, ...argv(r)], { netns });
    removed++;
  }
  for (const r of want.filter((x) => !have.includes(x))) {
    // At the top: before Docker's RETURN and before any user rule that would drop.
    await run('iptables', ['-w', '-t', 'filter', '-I', DOCKER_USER, '1', ...argv(r)], { netns });
    added++;
  }
  return { added, removed };
}

export function removeDockerUser(netns: string | undefined): Promise<{ added: number; removed: number }> {
  return syncDockerUser(netns, []);
}
