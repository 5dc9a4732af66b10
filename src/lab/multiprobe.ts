/**
 * Many requests at once from one namespace, for the behaviour suite:
 *   node multiprobe.js '<json Probe[]>'
 * Prints one JSON array of results, in order. Every probe runs concurrently
 * with its own deadline, so a matrix where half the cells must fail costs one
 * timeout, not one per cell.
 */
import { connect } from 'node:net';
import { createSocket } from 'node:dgram';
import { pathToFileURL } from 'node:url';

export interface Probe {
  proto: 'tcp' | 'udp';
  host: string;
  port: number;
  msg?: string;
  /** Source address to bind (spoofing tests: an address the sender is not allowed to use). */
  bind?: string;
  /** ms (default 1500). */
  timeout?: number;
}

export interface ProbeResult {
  ok: boolean;
  reply?: string;
  error?: string;
}

/** One request; resolves with the reply or why there was none (never rejects). */
export function probeOnce(p: Probe): Promise<ProbeResult> {
  const ms = p.timeout ?? 1500;
  const msg = p.msg ?? 'ping';
  return new Promise((resolve) => {
    let settled = false;
    const finish = (r: ProbeResult, close: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      close();
      resolve(r);
    };
    let closer = () => undefined as void;
    const timer = setTimeout(() => finish({ ok: false, error: 'timeout' }, closer), ms);
    if (p.proto === 'tcp') {
      const chunks: Buffer[] = [];
      const s = connect({ port: p.port, host: p.host, ...(p.bind ? { localAddress: p.bind } : {}) }, () => s.write(msg));
      closer = () => s.destroy();
      s.on('data', (d) => chunks.push(d));
      s.on('end', () => finish({ ok: true, reply: Buffer.concat(chunks).toString().trim() }, closer));
      s.on('error', (e: NodeJS.ErrnoException) => finish({ ok: false, error: e.code ?? e.message }, closer));
    } else {
      // Connected: the kernel drops replies from any other address or port,
      // so a reply that escaped reverse translation counts as no reply.
      const s = createSocket('udp4');
      closer = () => s.close();
      s.on('message', (d) => finish({ ok: true, reply: d.toString().trim() }, closer));
      s.on('error', (e: NodeJS.ErrnoException) => finish({ ok: false, error: e.code ?? e.message }, closer));
      const go = () =>
        s.connect(p.port, p.host, (err?: Error) => {
          if (err) finish({ ok: false, error: (err as NodeJS.ErrnoException).code ?? err.message }, closer);
          else s.send(msg, (e) => e && finish({ ok: false, error: (e as NodeJS.ErrnoException).code ?? e.message }, closer));
        });
      if (p.bind) s.bind(0, p.bind, go);
      else go();
    }
  });
}

/** A probe that throws (no route, bad address) is a failed probe, not a crashed run. */
function safe(p: Probe): Promise<ProbeResult> {
  try {
    return probeOnce(p).catch((e: Error) => ({ ok: false, error: e.message }));
  } catch (e) {
    return Promise.resolve({ ok: false, error: (e as Error).message });
  }
}

async function main(): Promise<void> {
  const probes = JSON.parse(process.argv[2] ?? '[]') as Probe[];
  const results = await Promise.all(probes.map(safe));
  process.stdout.write(`${JSON.stringify(results)}\n`);
}

// Run only as the script itself (probe.js imports probeOnce from here).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
