/**
 * `make gen`: TypeScript interfaces for every message of proto/bpfnet.proto,
 * as decode() returns them (defaults filled in, maps as records).
 * `--check` exits non-zero when the committed file is stale.
 */
import protobuf from 'protobufjs';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../util/paths.js';
import { PROTO_FILE, PACKAGE } from './schema.js';

export const GENERATED = join(PACKAGE_ROOT, 'src', 'api', 'generated', 'types.ts');

const SCALARS: Record<string, string> = {
  string: 'string', bool: 'boolean', bytes: 'Uint8Array',
  uint32: 'number', int32: 'number', sint32: 'number', fixed32: 'number', sfixed32: 'number',
  uint64: 'number', int64: 'number', sint64: 'number', fixed64: 'number', sfixed64: 'number',
  double: 'number', float: 'number',
};

function tsType(f: protobuf.Field): string {
  return SCALARS[f.type] ?? f.type.split('.').pop()!;
}

export function render(): string {
  const root = protobuf.loadSync(PROTO_FILE);
  const ns = root.lookup(PACKAGE) as protobuf.Namespace;
  const msgs = ns.nestedArray.filter((n): n is protobuf.Type => n instanceof protobuf.Type);
  const out: string[] = [
    '// Generated from proto/bpfnet.proto by `make gen` (src/api/gen.ts). Do not edit.',
    '/* eslint-disable */',
    '',
  ];
  for (const m of msgs) {
    out.push(`export interface ${m.name} {`);
    for (const f of m.fieldsArray) {
      let t: string;
      if (f instanceof protobuf.MapField) t = `Record<string, ${SCALARS[f.type] ?? f.type}>`;
      else if (f.repeated) t = `${tsType(f)}[]`;
      else t = tsType(f);
      const scalar = f.type in SCALARS || f instanceof protobuf.MapField || f.repeated;
      const optional = f.options?.['proto3_optional'] === true || !scalar;
      out.push(`  ${f.name}${optional ? '?' : ''}: ${t}${optional && !scalar ? ' | null' : ''};`);
    }
    out.push('}', '');
  }
  out.push('export interface Messages {');
  for (const m of msgs) out.push(`  ${m.name}: ${m.name};`);
  out.push('}', '');
  return out.join('\n');
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, ''))) {
  const text = render();
  if (process.argv.includes('--check')) {
    let cur = '';
    try { cur = readFileSync(GENERATED, 'utf8'); } catch { /* missing */ }
    if (cur !== text) {
      console.error(`${GENERATED} is stale: run \`make gen\``);
      process.exit(1);
    }
  } else {
    writeFileSync(GENERATED, text);
    console.log(`wrote ${GENERATED}`);
  }
}
