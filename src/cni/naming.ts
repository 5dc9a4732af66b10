/**
 * How a CNI attachment (container ID, interface, network) maps to a bpfnet
 * sandbox: a stable name derived from the three, and labels that let GC find
 * a network's attachments again.
 */
import { createHash } from 'node:crypto';

export const LABELS = {
  containerId: 'cni.containerid',
  ifName: 'cni.ifname',
  /** The CNI network name (conf "name"). */
  network: 'cni.network',
} as const;

/**
 * `cni-<first 12 of the container ID>-<ifname>-<8 hex>`: readable next to
 * `podman ps`, and unique because the hash covers the full container ID, the
 * interface and the CNI network (IDs may share 12-character prefixes).
 */
export function sandboxName(containerId: string, ifName: string, network: string): string {
  const h = createHash('sha256').update(`${containerId}\0${ifName}\0${network}`).digest('hex').slice(0, 8);
  const ifPart = ifName.replace(/[^a-zA-Z0-9_.-]/g, '_');
  return `cni-${containerId.slice(0, 12)}-${ifPart}-${h}`;
}

export function sandboxLabels(containerId: string, ifName: string, network: string): Record<string, string> {
  return { [LABELS.containerId]: containerId, [LABELS.ifName]: ifName, [LABELS.network]: network };
}

/** Is this sandbox a CNI attachment of `network`, and which one? */
export function attachmentOf(labels: Record<string, string>, network: string): { containerID: string; ifname: string } | undefined {
  const cid = labels[LABELS.containerId];
  const ifn = labels[LABELS.ifName];
  if (labels[LABELS.network] !== network || !cid || !ifn) return undefined;
  return { containerID: cid, ifname: ifn };
}
