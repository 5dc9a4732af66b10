/**
 * The one interface every dataplane (eBPF now; iptables and nftables later)
 * implements. The controller computes DesiredState purely; a dataplane makes
 * the kernel match it, idempotently.
 */
export type Protocol = 'tcp' | 'udp';

export interface PublishedPort {
  /** '0.0.0.0' = every node address. */
  hostIp: string;
  hostPort: number;
  proto: Protocol;
  containerIp: string;
  containerPort: number;
}

export interface DesiredState {
  /** Devices traffic from outside arrives on (the node's uplinks). */
  uplinks: string[];
  /** The node's own IPv4 addresses (wildcard frontends match only these). */
  nodeAddresses: string[];
  /** Host-side devices of container endpoints. */
  endpoints: { hostDev: string; ifindex?: number }[];
  /** ifindex of each uplink when known (a recreated device gets a new one). */
  uplinkIndex?: Record<string, number>;
  ports: PublishedPort[];
  /** Container networks: traffic between two different ones is dropped. */
  networks?: DataplaneNetwork[];
}

export interface DataplaneNetwork {
  /** Non-zero id shared by every subnet of one network. */
  id: number;
  /** "a.b.c.d/n" */
  subnet: string;
  internal: boolean;
  icc: boolean;
}

export interface ApplyReport {
  attached: { dev: string; hook: string; prog: string; progId: number }[];
  ports: { added: number; updated: number; removed: number };
  addresses: { added: number; removed: number };
  networks?: { added: number; removed: number };
}

export interface Dataplane {
  readonly mode: 'ebpf' | 'iptables' | 'nftables';
  apply(state: DesiredState): Promise<ApplyReport>;
  /** Remove everything this dataplane installed. */
  teardown(state: DesiredState): Promise<void>;
}
