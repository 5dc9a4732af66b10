/**
 * src/util/exec.ts: typed errors for missing tools and failing commands,
 * bpftool's JSON error text, and running inside a network namespace.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandLine, run, tryRun, wrapNetns } from '../../src/util/exec.js';
import { BpfnetError, CommandError } from '../../src/util/errors.js';
import { Netns } from '../../src/lab/netns.js';

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected the promise to reject');
}

describe('run: typed errors', () => {
  it('a missing binary is E_TOOL_MISSING with an install hint', async () => {
    const e = await caught(run('bpfnet-no-such-tool-xyz', ['--version']));
    expect(e).toBeInstanceOf(CommandError);
    expect(e).toBeInstanceOf(BpfnetError);
    const ce = e as CommandError;
    expect(ce.code).toBe('E_TOOL_MISSING');
    expect(ce.message).toContain('not found: install');
    expect(ce.message).toContain('bpfnet-no-such-tool-xyz');
    expect(ce.command).toBe('bpfnet-no-such-tool-xyz --version');
    expect(ce.exitCode).toBeUndefined();
  });

  it('a missing known tool names its Debian package', async () => {
    // Known tools map to their package; simulate absence with an empty PATH.
    const e = (await caught(run('bpftool', ['version'], { env: { PATH: '/nonexistent' } }))) as CommandError;
    expect(e).toBeInstanceOf(CommandError);
    expect(e.code).toBe('E_TOOL_MISSING');
    expect(e.message).toContain('bpftool not found: install the bpftool package');
  });

  it('a failing command is E_COMMAND_FAILED with exit code and stderr', async () => {
    const e = (await caught(run('sh', ['-c', 'echo "boom: something broke" >&2; exit 3']))) as CommandError;
    expect(e).toBeInstanceOf(CommandError);
    expect(e.code).toBe('E_COMMAND_FAILED');
    expect(e.exitCode).toBe(3);
    expect(e.stderr).toContain('boom: something broke');
    expect(e.message).toContain('failed: boom: something broke');
    expect(e.command).toMatch(/^sh -c /);
    expect(e.toJSON()).toMatchObject({ code: 'E_COMMAND_FAILED', exitCode: 3 });
  });

  it('a failing command without output reports its exit code', async () => {
    const e = (await caught(run('false', []))) as CommandError;
    expect(e.code).toBe('E_COMMAND_FAILED');
    expect(e.exitCode).toBe(1);
    expect(e.message).toContain('exit code 1');
  });

  it('bpftool -j errors surface the JSON error text', async () => {
    const e = (await caught(run('bpftool', ['-j', 'map', 'show', 'pinned', '/sys/fs/bpf/does-not-exist']))) as CommandError;
    expect(e).toBeInstanceOf(CommandError);
    expect(e.code).toBe('E_COMMAND_FAILED');
    expect(e.message).toMatch(/failed: bpf obj get \(\/sys\/fs\/bpf\/does-not-exist\): No such file or directory$/);
    expect(e.message).not.toContain('{"error"');
    // The raw JSON is kept for callers that want it.
    expect(e.stderr).toContain('"error"');
    expect(e.exitCode).not.toBe(0);
  });

  it('returns stdout without the final newline', async () => {
    const r = await run('sh', ['-c', 'printf "a\\nb\\n"; printf "warn\\n" >&2']);
    expect(r.stdout).toBe('a\nb');
    expect(r.stderr).toBe('warn');
  });

  it('passes input on stdin', async () => {
    const r = await run('cat', [], { input: 'hello' });
    expect(r.stdout).toBe('hello');
  });

  it('a timeout is E_TIMEOUT', async () => {
    const e = (await caught(run('sleep', ['5'], { timeout: 200 }))) as CommandError;
    expect(e).toBeInstanceOf(CommandError);
    expect(e.code).toBe('E_TIMEOUT');
    expect(e.message).toContain('timed out after 200 ms');
  });

  it('tryRun returns null on failure and on a missing tool', async () => {
    expect(await tryRun('false', [])).toBeNull();
    expect(await tryRun('bpfnet-no-such-tool-xyz', [])).toBeNull();
    expect((await tryRun('echo', ['ok']))?.stdout).toBe('ok');
  });

  it('commandLine quotes arguments that need it', () => {
    expect(commandLine('tc', ['filter', 'show', 'dev', 'eth0'])).toBe('tc filter show dev eth0');
    expect(commandLine('sh', ['-c', 'a b'])).toBe('sh -c "a b"');
  });

  it('wrapNetns uses nsenter --net, never ip netns exec', () => {
    expect(wrapNetns('ip', ['link'], undefined)).toEqual(['ip', ['link']]);
    expect(wrapNetns('ip', ['link'], '/run/netns/x')).toEqual(['nsenter', ['--net=/run/netns/x', '--', 'ip', 'link']]);
  });
});

describe('run: netns option', () => {
  let ns: Netns | undefined;
  const name = `bnt-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    ns = await Netns.create(name);
  });

  afterAll(async () => {
    await ns?.destroy();
  });

  it('runs the command inside the namespace', async () => {
    const { stdout } = await run('ip', ['-j', 'link'], { netns: ns!.path });
    const links = JSON.parse(stdout) as { ifname: string; operstate?: string }[];
    expect(links.map((l) => l.ifname)).toEqual(['lo']);
    // The host namespace has more than lo, so this really ran elsewhere.
    const host = JSON.parse((await run('ip', ['-j', 'link'])).stdout) as { ifname: string }[];
    expect(host.length).toBeGreaterThanOrEqual(1);
  });

  it('Netns.exec is run() with the namespace', async () => {
    await ns!.ip('link', 'add', 'x0', 'type', 'veth', 'peer', 'name', 'x1');
    try {
      const { stdout } = await ns!.exec('ip', ['-j', 'link']);
      expect((JSON.parse(stdout) as { ifname: string }[]).map((l) => l.ifname).sort()).toEqual(['lo', 'x0', 'x1']);
      const host = JSON.parse((await run('ip', ['-j', 'link'])).stdout) as { ifname: string }[];
      expect(host.map((l) => l.ifname)).not.toContain('x0');
    } finally {
      await ns!.ip('link', 'del', 'x0').catch(() => undefined);
    }
  });

  it('a missing tool inside a namespace is still E_TOOL_MISSING', async () => {
    const e = (await caught(run('bpfnet-no-such-tool-xyz', [], { netns: ns!.path }))) as CommandError;
    expect(e).toBeInstanceOf(CommandError);
    expect(e.code).toBe('E_TOOL_MISSING');
    expect(e.message).toContain('not found: install');
  });

  it('a failure inside a namespace names it in the command', async () => {
    const e = (await caught(run('ip', ['link', 'show', 'nope0'], { netns: ns!.path }))) as CommandError;
    expect(e.code).toBe('E_COMMAND_FAILED');
    expect(e.command).toContain(`(in netns ${ns!.path})`);
    expect(e.stderr).toMatch(/does not exist/);
  });

  it('a missing namespace fails (nsenter), not E_TOOL_MISSING', async () => {
    const e = (await caught(run('ip', ['link'], { netns: '/run/netns/bpfnet-does-not-exist' }))) as CommandError;
    expect(e).toBeInstanceOf(CommandError);
    expect(e.code).toBe('E_COMMAND_FAILED');
  });
});
