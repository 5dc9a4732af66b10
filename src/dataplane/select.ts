/**
 * Choosing, creating and switching dataplanes.
 *
 * - createDataplane(mode, opts): the one place that knows each mode's class.
 * - resolveAutoMode(): `--dataplane auto` -> ebpf when the doctor's probes say
 *   the kernel and tools can, else iptables (else nftables), with the reason.
 * - removeOtherModes(keep, opts): everything the other modes may have left in
 *   the node's namespace, removed by bpfnet's own markers only:
 *     ebpf:     tc filters in bpfnet's slot (pref 100, handle 0xb9f) on the
 *               given devices, and the bpffs root (pins);
 *     iptables: our jumps and BPFNET* chains; BPFNET-USER is deleted only when
 *               empty (a user's rules in it are kept, its jump removed, so
 *               they apply again when iptables mode comes back);
 *     nftables: `table ip bpfnet` and `table bridge bpfnet`.
 *   route_localnet is reset on the given devices when leaving a netfilter
 *   mode for eBPF (it only makes sense with the DNAT rules that went away).
 */
import { EbpfDataplane, type EbpfOptions } from './ebpf/dataplane.js';
import { IptablesDataplane, removeIptables, type IptablesOptions } from './iptables/dataplane.js';
import { NftablesDataplane, removeNftables } from './nftables/dataplane.js';
import { resetHostSettings } from './netfilter/host.js';
import type { Dataplane, DataplaneMode } from './types.js';
import { detachTc } from '../loader/tc.js';
import { removeRoot } from '../loader/load.js';
import { runDoctor } from '../doctor/doctor.js';
import { DEFAULT_BPFFS_ROOT } from '../util/paths.js';
import { invalidArgument } from '../util/errors.js';

export type DataplaneChoice = DataplaneMode | 'auto';
export const DATAPLANE_MODES: readonly DataplaneMode[] = ['ebpf', 'iptables', 'nftables'];

/** Options of every mode; the eBPF mode's own (map sizes, XDP, masquerade ports, ...) pass through. */
export interface DataplaneOptions extends Omit<EbpfOptions, 'root'> {
  /** bpffs root of the eBPF mode's pins. */
  root?: string;
  iptablesBackend?: IptablesOptions['backend'];
}

export function parseDataplaneChoice(s: string): DataplaneChoice {
  if (s === 'auto' || (DATAPLANE_MODES as readonly string[]).includes(s)) return s as DataplaneChoice;
  throw invalidArgument(`--dataplane must be one of ebpf, iptables, nftables, auto; got ${JSON.stringify(s)}`);
}

export function createDataplane(mode: DataplaneMode, opts: DataplaneOptions = {}): Dataplane {
  switch (mode) {
    case 'ebpf':
      return new EbpfDataplane({ ...opts, root: opts.root ?? DEFAULT_BPFFS_ROOT });
    case 'iptables':
      return new IptablesDataplane({ netns: opts.netns, backend: opts.iptablesBackend });
    case 'nftables':
      return new NftablesDataplane({ netns: opts.netns });
    default:
      throw invalidArgument(`unknown dataplane mode ${JSON.stringify(mode)}`);
  }
}

export interface AutoMode {
  mode: DataplaneMode;
  /** One line for the log: why this mode. */
  reason: string;
}

/** `auto`: what the doctor selects; E_INVALID_ARGUMENT (with the doctor's reason) when nothing is usable. */
export async function resolveAutoMode(opts: { bpffsRoot?: string } = {}): Promise<AutoMode> {
  const report = await runDoctor(opts.bpffsRoot ? { bpffsRoot: opts.bpffsRoot } : {});
  const d = report.dataplane;
  if (d.selected === 'none') throw invalidArgument(`--dataplane auto: ${d.reason}`, { probes: report.probes });
  return { mode: d.selected, reason: d.reason };
}

export interface RemoveOptions extends DataplaneOptions {
  /** Devices that may carry bpfnet's tc filters / route_localnet: uplinks, bridges, endpoint veths. */
  devices?: readonly string[];
}

export interface RemovedReport {
  ebpf?: { detached: string[]; root: string };
  iptables?: { removed: boolean; keptUserChain: boolean };
  nftables?: { removed: boolean };
}

/** Remove what every mode other than `keep` installed; never touches anything that is not bpfnet's. */
export async function removeOtherModes(keep: DataplaneMode, opts: RemoveOptions = {}): Promise<RemovedReport> {
  const report: RemovedReport = {};
  if (keep !== 'ebpf') {
    const detached: string[] = [];
    for (const dev of opts.devices ?? []) {
      for (const direction of ['ingress', 'egress'] as const) {
        const gone = await detachTc({ netns: opts.netns, dev, direction }).catch(() => false);
        if (gone) detached.push(`${dev}/${direction}`);
      }
    }
    const root = opts.root ?? DEFAULT_BPFFS_ROOT;
    // The eBPF dataplane's own teardown too, so whatever else it attaches goes with it.
    const ebpf = new EbpfDataplane({ root, netns: opts.netns });
    await ebpf.teardown({ uplinks: [...(opts.devices ?? [])], endpoints: [], nodeAddresses: [], ports: [] }).catch(() => undefined);
    await removeRoot(root);
    report.ebpf = { detached, root };
  }
  if (keep !== 'iptables') report.iptables = await removeIptables({ netns: opts.netns, backend: opts.iptablesBackend });
  if (keep !== 'nftables') report.nftables = await removeNftables({ netns: opts.netns });
  if (keep === 'ebpf') resetHostSettings(opts.netns, opts.devices ?? []);
  return report;
}
