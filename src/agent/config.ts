/**
 * Agent configuration. Every path is a flag so that several agents can run
 * on one machine, each in its own network namespace (tests rely on this).
 */
import { join } from 'node:path';
import { DEFAULT_BPFFS_ROOT } from '../util/paths.js';

export interface AgentConfig {
  /** SQLite state and sandbox files. */
  stateDir: string;
  /** Sandbox namespace files; tmpfs, gone after a reboot (reconcile recreates). */
  runDir: string;
  /** unix socket path of the API. */
  socket: string;
  bpffsRoot: string;
  /** Devices external traffic arrives on; empty = the default route's device, if any. */
  uplinks: string[];
  /** ebpf, iptables, nftables, or auto (what `bpfnet doctor` selects). */
  dataplane: 'ebpf' | 'iptables' | 'nftables' | 'auto';
  /** Device of the default `bridge` network (Docker's docker0). */
  defaultBridge: string;
  /** Subnet of the default network; empty = first free default pool. */
  defaultSubnet?: string | undefined;
  /** Host resolv.conf the sandboxes' files derive from. */
  resolvConf: string;
  logLevel: string;
  /**
   * Serve DNS at 127.0.0.11:53 inside sandboxes on user-defined networks and
   * point their resolv.conf at it (on by default, as Docker; --no-embedded-dns
   * turns it off). The resolver binds another port of 127.0.0.11 and 53 is
   * redirected to it inside the sandbox, so 0.0.0.0:53 stays the sandbox's.
   */
  embeddedDns: boolean;
  /** max_entries overrides per BPF map (pinned maps of another size are migrated). */
  mapSizes: Record<string, number>;
  /** XDP DNAT on the uplinks (eBPF mode), off when undefined. */
  xdp?: 'auto' | 'native' | 'generic' | undefined;
  /** Masquerade source port range, inclusive. */
  snatPorts: [number, number];
  /** Serve Docker's remote network driver + IPAM on this socket (--docker-plugin); off when undefined. */
  dockerPlugin?: string | undefined;
}

export function defaultConfig(): AgentConfig {
  return {
    stateDir: '/var/lib/bpfnet',
    runDir: '/run/bpfnet',
    socket: '/run/bpfnet/bpfnet.sock',
    bpffsRoot: DEFAULT_BPFFS_ROOT,
    uplinks: [],
    dataplane: 'ebpf',
    defaultBridge: 'bpfnet0',
    resolvConf: '/etc/resolv.conf',
    logLevel: 'info',
    embeddedDns: true,
    mapSizes: {},
    snatPorts: [61000, 65535],
  };
}

export function netnsDir(cfg: AgentConfig): string {
  return join(cfg.runDir, 'netns');
}

export function sandboxFilesDir(cfg: AgentConfig, sandboxId: string): string {
  return join(cfg.stateDir, 'sandboxes', sandboxId);
}
