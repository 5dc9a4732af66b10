/**
 * Docker's plugin protocols as bpfnet serves them: libnetwork's remote
 * network driver (NetworkDriver.*) and remote IPAM (IpamDriver.*), HTTP POST
 * + JSON on /run/docker/plugins/<name>.sock. Field names are Docker's
 * (libnetwork/drivers/remote/api, libnetwork/ipams/remote/api, 20.10).
 */

export const CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';
export const DEFAULT_PLUGIN_SOCKET = '/run/docker/plugins/bpfnet.sock';

/** Every method served; anything else is a 404. */
export const NETWORK_METHODS = [
  'GetCapabilities',
  'CreateNetwork',
  'DeleteNetwork',
  'AllocateNetwork',
  'FreeNetwork',
  'CreateEndpoint',
  'EndpointOperInfo',
  'DeleteEndpoint',
  'Join',
  'Leave',
  'ProgramExternalConnectivity',
  'RevokeExternalConnectivity',
  'DiscoverNew',
  'DiscoverDelete',
] as const;
export const IPAM_METHODS = ['GetCapabilities', 'GetDefaultAddressSpaces', 'RequestPool', 'ReleasePool', 'RequestAddress', 'ReleaseAddress'] as const;
export type NetworkMethod = (typeof NETWORK_METHODS)[number];
export type IpamMethod = (typeof IPAM_METHODS)[number];

/** libnetwork's option keys (netlabel). */
export const OPT = {
  generic: 'com.docker.network.generic',
  internal: 'com.docker.network.internal',
  enableIpv6: 'com.docker.network.enable_ipv6',
  portmap: 'com.docker.network.portmap',
  exposedPorts: 'com.docker.network.endpoint.exposedports',
  /** ipamapi.RequestAddressType and its gateway value. */
  requestAddressType: 'RequestAddressType',
  gateway: 'com.docker.network.gateway',
} as const;

/** Labels bpfnet's records carry: the Docker ids they stand for. */
export const LABEL = {
  networkId: 'com.docker.network.id',
  endpointId: 'com.docker.endpoint.id',
  sandboxKey: 'com.docker.sandbox.key',
} as const;

export const LOCAL_ADDRESS_SPACE = 'LocalDefault';
export const GLOBAL_ADDRESS_SPACE = 'GlobalDefault';

export interface IpamData {
  AddressSpace: string;
  /** "10.55.0.0/24" */
  Pool: string;
  /** "10.55.0.1/24": CIDR form, as Docker sends it */
  Gateway?: string;
  AuxAddresses?: Record<string, string>;
}

export interface CreateNetworkRequest {
  NetworkID: string;
  Options: Record<string, unknown>;
  IPv4Data: IpamData[];
  IPv6Data: IpamData[];
}

export interface EndpointInterface {
  Address: string;
  AddressIPv6: string;
  MacAddress: string;
}

export interface CreateEndpointRequest {
  NetworkID: string;
  EndpointID: string;
  Interface: EndpointInterface;
  Options: Record<string, unknown>;
}

export interface EndpointRef {
  NetworkID: string;
  EndpointID: string;
}

export interface JoinRequest extends EndpointRef {
  SandboxKey: string;
  Options: Record<string, unknown>;
}

export interface ProgramRequest extends EndpointRef {
  Options: Record<string, unknown>;
}

/** One entry of com.docker.network.portmap (libnetwork types.PortBinding). */
export interface PortBinding {
  /** IANA protocol number: 6 tcp, 17 udp, 132 sctp */
  Proto: number;
  IP: string;
  Port: number;
  HostIP: string;
  HostPort: number;
  HostPortEnd: number;
}

export interface JoinResponse {
  InterfaceName: { SrcName: string; DstPrefix: string };
  Gateway?: string;
  StaticRoutes?: { Destination: string; RouteType: number; NextHop?: string }[];
  DisableGatewayService?: boolean;
}

export interface RequestPoolRequest {
  AddressSpace: string;
  Pool: string;
  SubPool: string;
  Options: Record<string, string>;
  V6: boolean;
}

export interface RequestAddressRequest {
  PoolID: string;
  Address: string;
  Options: Record<string, string>;
}

export interface ReleaseAddressRequest {
  PoolID: string;
  Address: string;
}
