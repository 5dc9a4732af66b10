/**
 * Request bodies in, typed requests out, pure: every field a method needs is
 * checked here, before anything is looked up or changed, so bad input
 * (malformed JSON, missing or mistyped fields) is refused with a message
 * that names the method and the field, and nothing changes.
 */
import { BpfnetError } from '../util/errors.js';
import { parseCidr, tryParseIpv4 } from '../model/ipv4.js';
import type { CreateEndpointRequest, CreateNetworkRequest, EndpointRef, IpamData, JoinRequest, PortBinding, ProgramRequest, ReleaseAddressRequest, RequestAddressRequest, RequestPoolRequest } from './protocol.js';

type Obj = Record<string, unknown>;

export function bad(method: string, msg: string): BpfnetError {
  return new BpfnetError('E_INVALID_ARGUMENT', `${method}: ${msg}`, { method });
}

/** The body as a JSON object; an empty body (or null) is an empty object. */
export function parseBody(method: string, text: string): Obj {
  if (text.trim() === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw bad(method, `malformed JSON request body: ${(e as Error).message}`);
  }
  if (v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(method, `the request body must be a JSON object, got ${Array.isArray(v) ? 'an array' : typeof v}`);
  return v as Obj;
}

function str(method: string, o: Obj, key: string, required: boolean): string {
  const v = o[key];
  if (v === undefined || v === null || v === '') {
    if (required) throw bad(method, `${key} is missing`);
    return '';
  }
  if (typeof v !== 'string') throw bad(method, `${key} must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function obj(method: string, o: Obj, key: string): Obj {
  const v = o[key];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(method, `${key} must be a JSON object, got ${JSON.stringify(v)}`);
  return v as Obj;
}

function stringMap(method: string, o: Obj, key: string): Record<string, string> {
  const m = obj(method, o, key);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m)) {
    if (typeof v !== 'string') throw bad(method, `${key}.${k} must be a string, got ${JSON.stringify(v)}`);
    out[k] = v;
  }
  return out;
}

const DOCKER_ID = /^[0-9a-f]{64}$/;

/** NetworkID / EndpointID: Docker's 64 lower-case hex digits (bpfnet names use the first 12). */
export function dockerId(method: string, o: Obj, key: 'NetworkID' | 'EndpointID'): string {
  const v = str(method, o, key, true);
  if (!DOCKER_ID.test(v)) throw bad(method, `${key} must be Docker's 64-hex-digit id, got ${JSON.stringify(v)}`);
  return v;
}

/** "a.b.c.d/n" as Docker sends pools, gateways and endpoint addresses; the address part must be IPv4. */
export function cidrAddress(method: string, what: string, v: string): { ip: string; prefix: number } {
  const [ip = '', prefix, extra] = v.split('/');
  if (extra !== undefined || prefix === undefined || tryParseIpv4(ip) === undefined) throw bad(method, `${what} must be an IPv4 address with its prefix length, like 10.55.0.2/24, got ${JSON.stringify(v)}`);
  const n = Number(prefix);
  if (!/^[0-9]{1,2}$/.test(prefix) || n > 32) throw bad(method, `${what} has a bad prefix length: ${JSON.stringify(v)}`);
  return { ip, prefix: n };
}

function ipamData(method: string, v: unknown, i: number): IpamData {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(method, `IPv4Data[${i}] must be a JSON object`);
  const o = v as Obj;
  const pool = str(method, o, 'Pool', true);
  try {
    parseCidr(pool, `IPv4Data[${i}].Pool`);
  } catch (e) {
    throw bad(method, (e as Error).message);
  }
  const gw = str(method, o, 'Gateway', false);
  if (gw) cidrAddress(method, `IPv4Data[${i}].Gateway`, gw);
  const aux = stringMap(method, o, 'AuxAddresses');
  for (const [k, a] of Object.entries(aux)) cidrAddress(method, `IPv4Data[${i}].AuxAddresses.${k}`, a);
  return { AddressSpace: str(method, o, 'AddressSpace', false), Pool: pool, ...(gw ? { Gateway: gw } : {}), AuxAddresses: aux };
}

function list(method: string, o: Obj, key: string): unknown[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad(method, `${key} must be a JSON array, got ${JSON.stringify(v)}`);
  return v;
}

export function createNetworkRequest(o: Obj): CreateNetworkRequest {
  const m = 'NetworkDriver.CreateNetwork';
  return {
    NetworkID: dockerId(m, o, 'NetworkID'),
    Options: obj(m, o, 'Options'),
    IPv4Data: list(m, o, 'IPv4Data').map((d, i) => ipamData(m, d, i)),
    IPv6Data: list(m, o, 'IPv6Data') as IpamData[],
  };
}

export function networkRef(method: string, o: Obj): { NetworkID: string } {
  return { NetworkID: dockerId(method, o, 'NetworkID') };
}

export function endpointRef(method: string, o: Obj): EndpointRef {
  return { NetworkID: dockerId(method, o, 'NetworkID'), EndpointID: dockerId(method, o, 'EndpointID') };
}

export function createEndpointRequest(o: Obj): CreateEndpointRequest {
  const m = 'NetworkDriver.CreateEndpoint';
  const ref = endpointRef(m, o);
  const iface = obj(m, o, 'Interface');
  const Address = str(m, iface, 'Address', false);
  if (!Address) throw bad(m, 'Interface.Address is missing: bpfnet needs the IPv4 address the IPAM driver gave this endpoint');
  cidrAddress(m, 'Interface.Address', Address);
  const MacAddress = str(m, iface, 'MacAddress', false);
  if (MacAddress && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(MacAddress)) throw bad(m, `Interface.MacAddress must look like 02:42:ac:11:00:02, got ${JSON.stringify(MacAddress)}`);
  if (MacAddress && (parseInt(MacAddress.slice(0, 2), 16) & 1) === 1) throw bad(m, `Interface.MacAddress ${MacAddress} is a multicast address`);
  return { ...ref, Interface: { Address, AddressIPv6: str(m, iface, 'AddressIPv6', false), MacAddress: MacAddress.toLowerCase() }, Options: obj(m, o, 'Options') };
}

export function joinRequest(o: Obj): JoinRequest {
  const m = 'NetworkDriver.Join';
  const ref = endpointRef(m, o);
  const SandboxKey = str(m, o, 'SandboxKey', true);
  if (!SandboxKey.startsWith('/')) throw bad(m, `SandboxKey must be the absolute path of the container's network namespace, got ${JSON.stringify(SandboxKey)}`);
  return { ...ref, SandboxKey, Options: obj(m, o, 'Options') };
}

export function programRequest(o: Obj): ProgramRequest {
  const m = 'NetworkDriver.ProgramExternalConnectivity';
  return { ...endpointRef(m, o), Options: obj(m, o, 'Options') };
}

/** com.docker.network.portmap from a request's Options (absent: none). */
export function portBindings(method: string, options: Obj): PortBinding[] {
  const raw = options['com.docker.network.portmap'];
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw bad(method, `Options["com.docker.network.portmap"] must be a JSON array of port bindings`);
  return raw.map((b, i) => {
    if (typeof b !== 'object' || b === null) throw bad(method, `port binding ${i} must be a JSON object`);
    const o = b as Obj;
    const num = (k: string, max: number): number => {
      const v = o[k] ?? 0;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw bad(method, `port binding ${i}: ${k} must be an integer 0-${max}, got ${JSON.stringify(o[k])}`);
      return v;
    };
    const s = (k: string): string => {
      const v = o[k] ?? '';
      if (typeof v !== 'string') throw bad(method, `port binding ${i}: ${k} must be a string`);
      return v;
    };
    const pb: PortBinding = { Proto: num('Proto', 255), IP: s('IP'), Port: num('Port', 65535), HostIP: s('HostIP'), HostPort: num('HostPort', 65535), HostPortEnd: num('HostPortEnd', 65535) };
    if (pb.Port === 0) throw bad(method, `port binding ${i}: Port (the container port) is missing`);
    return pb;
  });
}

// ---- IPAM -------------------------------------------------------------------------

export function requestPoolRequest(o: Obj): RequestPoolRequest {
  const m = 'IpamDriver.RequestPool';
  const V6 = o['V6'] ?? false;
  if (typeof V6 !== 'boolean') throw bad(m, `V6 must be true or false, got ${JSON.stringify(V6)}`);
  return { AddressSpace: str(m, o, 'AddressSpace', false), Pool: str(m, o, 'Pool', false), SubPool: str(m, o, 'SubPool', false), Options: stringMap(m, o, 'Options'), V6 };
}

export function poolRef(method: string, o: Obj): { PoolID: string } {
  return { PoolID: str(method, o, 'PoolID', true) };
}

export function requestAddressRequest(o: Obj): RequestAddressRequest {
  const m = 'IpamDriver.RequestAddress';
  const Address = str(m, o, 'Address', false);
  if (Address && tryParseIpv4(Address.split('/')[0] ?? '') === undefined) throw bad(m, `Address must be an IPv4 address, got ${JSON.stringify(Address)}`);
  return { PoolID: str(m, o, 'PoolID', true), Address, Options: stringMap(m, o, 'Options') };
}

export function releaseAddressRequest(o: Obj): ReleaseAddressRequest {
  const m = 'IpamDriver.ReleaseAddress';
  const Address = str(m, o, 'Address', true);
  if (tryParseIpv4(Address.split('/')[0] ?? '') === undefined) throw bad(m, `Address must be an IPv4 address, got ${JSON.stringify(Address)}`);
  return { PoolID: str(m, o, 'PoolID', true), Address };
}
