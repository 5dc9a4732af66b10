/** `bpfnet bpf ...`: look at what the loader attached and what the maps hold. */
import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { listTc } from '../loader/tc.js';
import { getXdp } from '../loader/xdp.js';
import { mapsDir } from '../loader/load.js';
import { TypedMap, readPerCpu } from '../maps/map.js';
import { maps, type MapName } from '../maps/generated/abi.js';
import { PER_CPU_TYPES, mapTypeName } from '../maps/types.js';
import { BpfnetError } from '../util/errors.js';
import { json } from './api.js';
import { DEFAULT_BPFFS_ROOT } from '../util/paths.js';


export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

export function bpfCommand(): Command {
  const cmd = new Command('bpf').description('inspect attached BPF programs and pinned maps');

  cmd
    .command('ls')
    .description('list BPF programs attached to devices (tc ingress/egress and XDP)')
    .requiredOption('--dev <names...>', 'devices to look at')
    .option('--netns <path>', 'network namespace (e.g. /run/netns/NAME)')
    .option('--json', 'print JSON')
    .action(async (o: { dev: string[]; netns?: string; json?: boolean }) => {
      const rows: { dev: string; hook: string; prog: string; id: number; pref?: number; handle?: string }[] = [];
      for (const dev of o.dev) {
        for (const direction of ['ingress', 'egress'] as const) {
          for (const a of await listTc({ netns: o.netns, dev, direction })) {
            rows.push({ dev, hook: `tc/${direction}`, prog: a.progName, id: a.progId, pref: a.pref, handle: `0x${a.handle.toString(16)}` });
          }
        }
        const x = await getXdp({ netns: o.netns, dev });
        if (x) rows.push({ dev, hook: `xdp/${x.mode}`, prog: '', id: x.progId });
      }
      if (o.json) return void process.stdout.write(json(rows));
      process.stdout.write(table([['DEVICE', 'HOOK', 'PROGRAM', 'ID', 'PREF', 'HANDLE'],
        ...rows.map((r) => [r.dev, r.hook, r.prog, String(r.id), String(r.pref ?? ''), r.handle ?? ''])]));
    });

  cmd
    .command('maps')
    .description("list bpfnet's pinned maps with their sizes and entry counts")
    .option('--root <path>', 'bpffs root', DEFAULT_BPFFS_ROOT)
    .option('--json', 'print JSON')
    .action(async (o: { root: string; json?: boolean }) => {
      const rows = [];
      for (const m of Object.values(maps)) {
        const pinned = existsSync(`${mapsDir(o.root)}/${m.name}`);
        const entries = pinned ? (await dumpMap(o.root, m.name)).length : null;
        rows.push({ name: m.name, type: mapTypeName(m.type), key: m.key, value: m.value, maxEntries: m.maxEntries, pinned, entries });
      }
      if (o.json) return void process.stdout.write(json(rows));
      process.stdout.write(table([['MAP', 'TYPE', 'KEY', 'VALUE', 'ENTRIES'],
        ...rows.map((r) => [r.name, r.type, r.key, r.value, r.pinned ? String(r.entries) : 'not pinned'])]));
    });

  cmd
    .command('dump <map>')
    .description(`print a map's entries as objects (maps: ${Object.keys(maps).join(', ')})`)
    .option('--root <path>', 'bpffs root', DEFAULT_BPFFS_ROOT)
    .action(async (name: string, o: { root: string }) => {
      if (!(name in maps)) throw new BpfnetError('E_INVALID_ARGUMENT', `unknown map "${name}": one of ${Object.keys(maps).join(', ')}`);
      const rows = (await dumpMap(o.root, name as MapName)).map(([key, value]) => ({ key, value }));
      process.stdout.write(json(rows));
    });
  return cmd;
}

async function dumpMap(root: string, name: MapName): Promise<[unknown, unknown][]> {
  if (PER_CPU_TYPES.has(maps[name].type)) return readPerCpu(mapsDir(root), name);
  const m = TypedMap.open(mapsDir(root), name);
  try {
    return await m.toArray();
  } finally {
    m.close();
  }
}
