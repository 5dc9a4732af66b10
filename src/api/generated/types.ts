// Generated from proto/bpfnet.proto by `make gen` (src/api/gen.ts). Do not edit.
/* eslint-disable */

export interface Request {
  id: number;
  method: string;
  body: Uint8Array;
}

export interface Response {
  id: number;
  error?: ApiError | null;
  body: Uint8Array;
  warnings: string[];
}

export interface ApiError {
  code: string;
  message: string;
  detailsJson: string;
}

export interface Empty {
}

export interface IpamConfig {
  subnet: string;
  ipRange?: string;
  gateway: string;
  auxAddresses: Record<string, string>;
}

export interface Network {
  id: string;
  name: string;
  driver: string;
  created: string;
  internal: boolean;
  attachable: boolean;
  labels: Record<string, string>;
  options: Record<string, string>;
  ipam?: IpamConfig | null;
  bridgeName?: string;
  mtu: number;
  icc: boolean;
  masquerade: boolean;
  hostBindingIpv4: string;
  hostIpv4?: string;
  predefined: boolean;
  gatewayModeIpv4?: string;
}

export interface PortMapping {
  hostIp: string;
  hostPort: number;
  containerPort: number;
  proto: string;
}

export interface SandboxMode {
  kind: string;
  network: string;
  sandboxId: string;
}

export interface Sandbox {
  id: string;
  name: string;
  created: string;
  mode?: SandboxMode | null;
  hostname: string;
  dns: string[];
  netnsPath: string;
  ports: PortMapping[];
  exposed: string[];
  labels: Record<string, string>;
  externalNetns: boolean;
}

export interface Endpoint {
  id: string;
  networkId: string;
  sandboxId: string;
  ifName: string;
  hostIfName: string;
  mac: string;
  ipv4: string;
  prefixLen: number;
  aliases: string[];
  created: string;
  peerName: string;
}

export interface EndpointLink {
  endpointId: string;
  hostIfindex: number;
  peerIfindex: number;
  present: boolean;
}

export interface InfoResponse {
  version: string;
  dataplane: string;
  pid: number;
  stateDir: string;
  runDir: string;
  bpffsRoot: string;
  uplinks: string[];
  nodeAddresses: string[];
  networks: number;
  sandboxes: number;
  started: string;
  counters: Counter[];
}

export interface NetworkCreateRequest {
  name: string;
  driver: string;
  subnet?: string;
  gateway?: string;
  ipRange?: string;
  auxAddresses: Record<string, string>;
  internal: boolean;
  attachable: boolean;
  labels: Record<string, string>;
  options: Record<string, string>;
}

export interface Ref {
  ref: string;
  force: boolean;
}

export interface NetworkList {
  networks: Network[];
}

export interface NetworkDetail {
  network?: Network | null;
  endpoints: Endpoint[];
  sandboxes: Sandbox[];
}

export interface Removed {
  ids: string[];
  names: string[];
}

export interface NetworkConnectRequest {
  network: string;
  sandbox: string;
  ipv4?: string;
  aliases: string[];
}

export interface NetworkDisconnectRequest {
  network: string;
  sandbox: string;
  force: boolean;
}

export interface SandboxCreateRequest {
  name: string;
  network: string;
  publish: string[];
  publishAll: boolean;
  expose: string[];
  hostname: string;
  dns: string[];
  labels: Record<string, string>;
  ipv4?: string;
  aliases: string[];
  netnsPath?: string;
  ifName?: string;
  mac?: string;
  handOff: boolean;
}

export interface PortPublishRequest {
  sandbox: string;
  publish: string[];
}

export interface PortUnpublishRequest {
  sandbox: string;
  ports: string[];
}

export interface SandboxList {
  sandboxes: Sandbox[];
}

export interface SandboxDetail {
  sandbox?: Sandbox | null;
  endpoints: Endpoint[];
  networks: Network[];
  links: EndpointLink[];
  filesDir: string;
  published: PublishedPort[];
}

export interface PublishedPort {
  hostIp: string;
  hostPort: number;
  proto: string;
  containerIp: string;
  containerPort: number;
  sandboxId: string;
  sandboxName: string;
  networkId: string;
  networkName: string;
  active: boolean;
  inactiveReason: string;
  counted: boolean;
  packets: number;
  bytes: number;
}

export interface PortListRequest {
  sandbox: string;
}

export interface PortList {
  dataplane: string;
  counted: boolean;
  ports: PublishedPort[];
}

export interface Counter {
  name: string;
  packets: number;
  bytes: number;
}

export interface Counters {
  dataplane: string;
  available: boolean;
  counters: Counter[];
}

export interface Messages {
  Request: Request;
  Response: Response;
  ApiError: ApiError;
  Empty: Empty;
  IpamConfig: IpamConfig;
  Network: Network;
  PortMapping: PortMapping;
  SandboxMode: SandboxMode;
  Sandbox: Sandbox;
  Endpoint: Endpoint;
  EndpointLink: EndpointLink;
  InfoResponse: InfoResponse;
  NetworkCreateRequest: NetworkCreateRequest;
  Ref: Ref;
  NetworkList: NetworkList;
  NetworkDetail: NetworkDetail;
  Removed: Removed;
  NetworkConnectRequest: NetworkConnectRequest;
  NetworkDisconnectRequest: NetworkDisconnectRequest;
  SandboxCreateRequest: SandboxCreateRequest;
  PortPublishRequest: PortPublishRequest;
  PortUnpublishRequest: PortUnpublishRequest;
  SandboxList: SandboxList;
  SandboxDetail: SandboxDetail;
  PublishedPort: PublishedPort;
  PortListRequest: PortListRequest;
  PortList: PortList;
  Counter: Counter;
  Counters: Counters;
}
