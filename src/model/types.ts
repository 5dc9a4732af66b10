/**
 * Docker's network model as bpfnet stores it (CNM: networks, sandboxes,
 * endpoints). These records are the desired state: the store holds them, the
 * agent plumbs the kernel to match them, and restarts reconcile from them.
 * Addresses are dotted-quad strings, prefixes "a.b.c.d/n".
 */

export type DriverName = 'bridge' | 'host' | 'null' | 'routed';

export interface IpamConfig {
  /** e.g. "172.18.0.0/16" (always the network address, canonical). */
  subnet: string;
  /** Addresses handed to endpoints come from here when set (inside subnet). */
  ipRange?: string;
  gateway: string;
  /** Docker's AuxiliaryAddresses: name -> address, reserved, never handed out. */
  auxAddresses: Record<string, string>;
  /**
   * true when the subnet came from --subnet, false when it was picked from the
   * default pools. Docker accepts a static --ip only on networks whose subnet
   * the user configured; absent (older records) = not checked.
   */
  userConfigured?: boolean;
}

export interface NetworkRecord {
  /** 64 lowercase hex, like Docker's. */
  id: string;
  name: string;
  driver: DriverName;
  /** RFC 3339. */
  created: string;
  internal: boolean;
  attachable: boolean;
  labels: Record<string, string>;
  /** Driver options exactly as given with -o (Docker shows them in inspect). */
  options: Record<string, string>;
  /** null for host and null drivers. */
  ipam: IpamConfig | null;
  /** Bridge device (bridge driver only). */
  bridgeName?: string;
  mtu: number;
  icc: boolean;
  masquerade: boolean;
  /** Default host IP for -p without one (com.docker.network.bridge.host_binding_ipv4). */
  hostBindingIpv4: string;
  /** com.docker.network.host_ipv4: SNAT to this instead of masquerading. */
  hostIpv4?: string;
  /** com.docker.network.bridge.gateway_mode_ipv4 (absent = "nat"). */
  gatewayModeIpv4?: GatewayMode;
  /** The predefined networks (bridge, host, none) cannot be removed. */
  predefined: boolean;
}

/** com.docker.network.bridge.gateway_mode_ipv4 values. */
export type GatewayMode = 'nat' | 'nat-unprotected' | 'routed' | 'isolated';

export type Proto = 'tcp' | 'udp' | 'sctp';

/** One concrete published port after parsing and allocation. */
export interface PortMapping {
  /** "0.0.0.0" = all node addresses. */
  hostIp: string;
  hostPort: number;
  containerPort: number;
  proto: Proto;
}

export type SandboxMode =
  | { kind: 'bridge'; network: string } // attached to user/default networks via endpoints
  | { kind: 'host' }
  | { kind: 'none' }
  | { kind: 'container'; sandboxId: string };

export interface SandboxRecord {
  id: string;
  name: string;
  created: string;
  mode: SandboxMode;
  hostname: string;
  /** --dns servers (empty = default behaviour). */
  dns: string[];
  /** Bind-mounted netns file (own netns), or the joined sandbox's, or "" for host. */
  netnsPath: string;
  ports: PortMapping[];
  /** Exposed ports ("80/tcp") as given by --expose. */
  exposed: string[];
  labels: Record<string, string>;
  /**
   * netnsPath is a container engine's namespace (CNI_NETNS, Docker's
   * SandboxKey): bpfnet plumbs into it but never creates or deletes it, and
   * leaves its /etc files and DNS to the engine.
   */
  externalNetns?: true;
}

export interface EndpointRecord {
  id: string;
  networkId: string;
  sandboxId: string;
  /** Name inside the sandbox: eth0, eth1, ... */
  ifName: string;
  /** Host-side veth name (bpfnet prefix). */
  hostIfName: string;
  mac: string;
  /** Bare address, e.g. "172.18.0.2". */
  ipv4: string;
  /** Prefix length configured on ifName (subnet's for bridge, 32 for routed). */
  prefixLen: number;
  aliases: string[];
  created: string;
  /**
   * Hand-off endpoints (Docker's remote driver): the container end is created
   * in the node namespace under this name, unconfigured, and the engine moves
   * it into the sandbox and names/configures it there.
   */
  peerName?: string;
}
