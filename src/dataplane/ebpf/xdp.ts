/**
 * Optional XDP acceleration of published ports on the uplink (agent flag
 * --xdp): bpf/xdp_uplink.c DNATs published-port packets before the skb
 * exists and passes everything (translated or not) on to the stack, where the
 * tc programs attached by EbpfDataplane.apply() do the rest. It shares the
 * maps under `root` (bpfnet_ports, bpfnet_addrs, bpfnet_nat_ct, ...), so it
 * needs no configuration of its own; the tc programs stay attached either
 * way, so attaching or detaching it never changes what is reachable.
 */
import { loadObject, pruneVersions, type LoadedObject, type MapMigration } from '../../loader/load.js';
import { attachXdp, detachXdp, getXdp, type XdpAttachment, type XdpMode } from '../../loader/xdp.js';
import { BpfnetError, CommandError } from '../../util/errors.js';

export const XDP_PROGRAM = { object: 'xdp_uplink', prog: 'xdp_uplink' } as const;

export interface UplinkXdpOptions {
  /** bpffs root of the agent's pins (the same as EbpfOptions.root). */
  root: string;
  /** Network namespace (path) of the node, or undefined for the current one. */
  netns?: string | undefined;
  /** The uplink device. */
  dev: string;
  /**
   * 'native' (driver mode; veth supports it), 'generic' (skb mode: works
   * everywhere, no faster than tc), or 'auto' (the kernel picks native when
   * the driver has it). Default 'auto'.
   */
  mode?: XdpMode;
  mapSizes?: Record<string, number>;
  onMigrate?: (m: MapMigration) => void;
}

export interface UplinkXdp extends XdpAttachment {
  /** The pinned program that was attached. */
  pin: string;
  object: LoadedObject;
}

/** Load (or reuse) xdp_uplink under root and attach it to dev, replacing any XDP program there atomically. */
export async function attachUplinkXdp(o: UplinkXdpOptions): Promise<UplinkXdp> {
  const object = await loadObject(XDP_PROGRAM.object, {
    root: o.root,
    progType: 'xdp',
    ...(o.mapSizes ? { mapSizes: o.mapSizes } : {}),
    ...(o.onMigrate ? { onMigrate: o.onMigrate } : {}),
  });
  const pin = object.progs[XDP_PROGRAM.prog];
  if (!pin) throw new BpfnetError('E_NOT_FOUND', `program ${XDP_PROGRAM.prog} not found in ${object.dir}`, { dir: object.dir });
  const a = await attachXdp({ netns: o.netns, dev: o.dev, pin, mode: o.mode ?? 'auto' });
  // Older versions stay pinned only until the new one is attached.
  await pruneVersions(o.root, object.name, object.hash);
  return { ...a, pin, object };
}

/** Detach whatever XDP program dev carries; false when there was none. Missing device: false. */
export async function detachUplinkXdp(o: { netns?: string | undefined; dev: string }): Promise<boolean> {
  try {
    return await detachXdp(o);
  } catch (e) {
    if (e instanceof BpfnetError && e.code === 'E_NOT_FOUND') return false;
    if (e instanceof CommandError && /No such device|invalid devname|Cannot find/i.test(`${e.message} ${e.stderr}`)) return false;
    throw e;
  }
}

/** The XDP attachment of dev, if any (mode: 'driver' | 'generic' | 'offload'). */
export function uplinkXdp(o: { netns?: string | undefined; dev: string }): Promise<XdpAttachment | undefined> {
  return getXdp(o);
}
