/** BPF map types bpfnet uses, by kernel enum bpf_map_type value. */
export const MAP_TYPE_NAMES: Record<number, string> = {
  1: 'hash',
  2: 'array',
  5: 'percpu_hash',
  6: 'percpu_array',
  9: 'lru_hash',
  10: 'lru_percpu_hash',
  11: 'lpm_trie',
};

export const PER_CPU_TYPES = new Set([5, 6, 10]);

export function mapTypeName(t: number): string {
  return MAP_TYPE_NAMES[t] ?? `type${t}`;
}
