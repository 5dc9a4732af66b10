/**
 * CNI protocol shapes (spec 1.1.0, with what older versions add or lack).
 * Results are built in the 1.1.0 shape and converted for older configs
 * (version.ts).
 */

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';
export const CNI_COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK', 'STATUS', 'GC', 'VERSION'];

export interface CniInterface {
  name: string;
  mac?: string;
  /** 1.1.0 */
  mtu?: number;
  /** The namespace path for a container interface; absent for host-side ones. */
  sandbox?: string;
}

export interface CniIpConfig {
  /** 0.3.x/0.4.0 only: "4" or "6". */
  version?: '4' | '6';
  /** CIDR: address/prefix. */
  address: string;
  gateway?: string;
  /** Index into interfaces. */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIpConfig[];
  routes?: CniRoute[];
  dns?: CniDns;
}

/** runtimeConfig.portMappings[] (the portMappings capability). */
export interface CniPortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
  /** "" or absent: the network's default host IP (every node address). */
  hostIP?: string;
}

/** runtimeConfig.ipRanges[][] (the ipRanges capability), one range. */
export interface CniIpRange {
  subnet: string;
  rangeStart?: string;
  rangeEnd?: string;
  gateway?: string;
}

/** cni.dev/valid-attachments[] of a GC request. */
export interface CniAttachment {
  containerID: string;
  ifname: string;
}

/** A parsed, validated bpfnet network configuration. */
export interface BpfnetNetConf {
  cniVersion: string;
  /** The CNI network name (conf "name"). */
  name: string;
  type: string;
  /** The bpfnet network (default: name). */
  network: string;
  /** Create the bpfnet network with this subnet on first use. */
  subnet?: string;
  gateway?: string;
  /** bridge -o options for that creation (com.docker.network.*). */
  options: Record<string, string>;
  /** The agent's unix socket path. */
  agentSocket: string;
  /** DNS from the config itself (the result's dns when the runtime gives none). */
  dns?: CniDns;
  runtimeConfig: {
    portMappings: CniPortMapping[];
    /** Range sets; bpfnet uses the first IPv4 one (one address per attachment). */
    ipRanges: CniIpRange[][];
    dns?: CniDns;
    /** The ips capability (static addresses, e.g. podman --ip). */
    ips: string[];
    /** The mac capability (e.g. podman --mac-address). */
    mac?: string;
  };
  /** A previous ADD's result (DEL, CHECK; required by CHECK). */
  prevResult?: CniResult;
  /** GC: the attachments to keep; undefined when the runtime sent none. */
  validAttachments?: CniAttachment[];
}

/** The CNI_* environment, validated for the command. */
export interface CniEnv {
  command: CniCommand;
  containerId: string;
  netns: string;
  ifName: string;
  /** CNI_ARGS as key=value pairs. */
  args: Record<string, string>;
  path: string[];
}

export const DEFAULT_AGENT_SOCKET = '/run/bpfnet/bpfnet.sock';
