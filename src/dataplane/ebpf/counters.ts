/**
 * Reading the eBPF dataplane's counters from its pinned maps:
 *
 * - bpfnet_port_stats: plain HASH, port_key (the frontend that matched) ->
 *   {packets, bytes}, updated by the programs with atomic adds. Read through
 *   the default (libbpf) backend.
 * - bpfnet_metrics: PERCPU_ARRAY of {packets, bytes} indexed by enum
 *   metric_id. Read through bpftool only (readPerCpu): the `bpf` package
 *   sizes per-CPU values for one CPU and would corrupt the heap.
 *
 * EbpfDataplane.portCounters()/counters() are these two functions on its map
 * directory.
 */
import { existsSync } from 'node:fs';
import { MetricId } from '../../maps/generated/abi.js';
import { TypedMap, mapPinPath, readPerCpu } from '../../maps/map.js';
import type { PortCounters, Protocol } from '../types.js';

export interface Counter {
  packets: bigint;
  bytes: bigint;
}

const IPPROTO: Record<number, Protocol> = { 6: 'tcp', 17: 'udp' };

/** "METRIC_DROP_SPOOF" -> "drop_spoof". */
export function metricName(enumName: string): string {
  return enumName.replace(/^METRIC_/, '').toLowerCase();
}

/** Counter names in metric_id order (METRIC_MAX excluded), each with its index. */
export function metricNames(): { id: number; name: string }[] {
  return Object.entries(MetricId)
    .filter(([k]) => k !== 'METRIC_MAX')
    .map(([k, id]) => ({ id: id as number, name: metricName(k) }))
    .sort((a, b) => a.id - b.id);
}

/**
 * Per published port counters, one row per frontend the programs have seen
 * traffic for (a port without traffic yet has no entry). Sorted by host IP,
 * proto, host port. A missing pin (dataplane never loaded) reads as none.
 */
export async function readPortCounters(mapDir: string): Promise<PortCounters[]> {
  if (!existsSync(mapPinPath(mapDir, 'bpfnet_port_stats'))) return [];
  const m = TypedMap.open(mapDir, 'bpfnet_port_stats');
  const out: PortCounters[] = [];
  try {
    for await (const [k, v] of m.entries()) {
      const proto = IPPROTO[k.proto];
      if (!proto) continue;
      out.push({ hostIp: k.addr, hostPort: k.port, proto, packets: v.packets, bytes: v.bytes });
    }
  } finally {
    m.close();
  }
  return out.sort((a, b) => (a.hostIp < b.hostIp ? -1 : a.hostIp > b.hostIp ? 1 : 0) || a.proto.localeCompare(b.proto) || a.hostPort - b.hostPort);
}

/**
 * Every named counter (drop reasons, translations), summed over CPUs, keyed
 * by its lowercase name without METRIC_ ("dnat", "drop_spoof"), in metric_id
 * order; counters the map does not hold read as zero. A missing pin reads as
 * all zero.
 */
export async function readCounters(mapDir: string): Promise<Record<string, Counter>> {
  const names = metricNames();
  const out: Record<string, Counter> = {};
  for (const { name } of names) out[name] = { packets: 0n, bytes: 0n };
  if (!existsSync(mapPinPath(mapDir, 'bpfnet_metrics'))) return out;
  const byId = new Map(names.map((n) => [n.id, n.name]));
  for (const [id, v] of await readPerCpu(mapDir, 'bpfnet_metrics')) {
    const name = byId.get(id) ?? `metric_${id}`;
    out[name] = { packets: v.packets ?? 0n, bytes: v.bytes ?? 0n };
  }
  return out;
}
