/**
 * The protobuf schema (proto/bpfnet.proto), loaded once by reflection, and
 * encode/decode of plain objects with the generated TypeScript types.
 */
import protobuf from 'protobufjs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../util/paths.js';
import { invalidArgument } from '../util/errors.js';
import type { Messages } from './generated/types.js';

export const PROTO_FILE = join(PACKAGE_ROOT, 'proto', 'bpfnet.proto');
export const PACKAGE = 'bpfnet.v1';

let root: protobuf.Root | undefined;

export function schema(): protobuf.Root {
  root ??= protobuf.loadSync(PROTO_FILE);
  return root;
}

const types = new Map<string, protobuf.Type>();
function type(name: string): protobuf.Type {
  let t = types.get(name);
  if (!t) {
    t = schema().lookupType(`${PACKAGE}.${name}`);
    types.set(name, t);
  }
  return t;
}

export type MessageName = keyof Messages;

export function encode<N extends MessageName>(name: N, value: Partial<Messages[N]>): Uint8Array {
  const t = type(name);
  const err = t.verify(value as Record<string, unknown>);
  if (err) throw invalidArgument(`${name}: ${err}`);
  return t.encode(t.fromObject(value as Record<string, unknown>)).finish();
}

export function decode<N extends MessageName>(name: N, bytes: Uint8Array): Messages[N] {
  const t = type(name);
  let msg: protobuf.Message;
  try {
    msg = t.decode(bytes);
  } catch (e) {
    throw invalidArgument(`malformed ${name} message: ${(e as Error).message}`);
  }
  return t.toObject(msg, { defaults: true, arrays: true, objects: true, longs: Number, bytes: Uint8Array as unknown as typeof String }) as Messages[N];
}
