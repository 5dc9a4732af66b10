/**
 * The network configuration on stdin, decoded and validated before anything
 * is asked of the agent: a bad config changes nothing. Malformed JSON is code
 * 6, a bad or missing value code 7, something bpfnet does not do code 2.
 */
import { isIpv4, parseCidr, formatCidr } from '../model/ipv4.js';
import { NAME_PATTERN } from '../model/names.js';
import { CniError, CNI_ERR } from './errors.js';
import { checkVersion } from './version.js';
import {
  DEFAULT_AGENT_SOCKET,
  type BpfnetNetConf,
  type CniAttachment,
  type CniCommand,
  type CniDns,
  type CniIpRange,
  type CniPortMapping,
  type CniResult,
} from './types.js';

type Json = Record<string, unknown>;

const bad = (msg: string): CniError => new CniError(CNI_ERR.INVALID_NETCONF, msg);
const unsupported = (msg: string): CniError => new CniError(CNI_ERR.UNSUPPORTED_FIELD, msg);

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** CNI's network-name rule (libcni utils.ValidateNetworkName). */
const CNI_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** stdin bytes → a JSON object, or code 6. */
export function decodeConfig(stdin: string): Json {
  if (stdin.trim() === '') throw new CniError(CNI_ERR.DECODE, 'decoding error: no network configuration on stdin; the runtime must pipe the network config JSON to the plugin');
  let v: unknown;
  try {
    v = JSON.parse(stdin);
  } catch (e) {
    throw new CniError(CNI_ERR.DECODE, `decoding error: the network configuration on stdin is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(v)) throw new CniError(CNI_ERR.DECODE, `decoding error: the network configuration must be a JSON object, not ${Array.isArray(v) ? 'an array' : typeof v}`);
  return v;
}

/** The config's cniVersion, for replies even when the rest is invalid ("" when unusable). */
export function configVersion(stdin: string): string {
  try {
    const v = (JSON.parse(stdin) as Json)['cniVersion'];
    return typeof v === 'string' ? v : '';
  } catch {
    return '';
  }
}

function str(o: Json, key: string, where: string, required: true): string;
function str(o: Json, key: string, where: string, required?: false): string | undefined;
function str(o: Json, key: string, where: string, required = false): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) {
    if (required) throw bad(`missing ${where}${key}: the network configuration needs it`);
    return undefined;
  }
  if (typeof v !== 'string') throw bad(`${where}${key} must be a string, not ${JSON.stringify(v)}`);
  if (required && v === '') throw bad(`${where}${key} is empty`);
  return v;
}

function strList(v: unknown, where: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw bad(`${where} must be a list of strings, not ${JSON.stringify(v)}`);
  return v as string[];
}

function ipv4(v: string, where: string): string {
  if (!isIpv4(v)) throw bad(`${where} "${v}" is not an IPv4 address`);
  return v;
}

/** A unicast MAC, lower-cased (the kernel refuses multicast ones on a veth). */
export function parseMac(v: string, where: string): string {
  if (!/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(v)) throw bad(`${where} "${v}" is not a MAC address such as 02:42:0a:16:00:05`);
  if (parseInt(v.slice(0, 2), 16) & 1) throw bad(`${where} ${v} is a multicast address; use a unicast one (even first byte), e.g. 02:...`);
  return v.toLowerCase();
}

function cidr(v: string, where: string): string {
  try {
    return formatCidr(parseCidr(v, where));
  } catch (e) {
    throw bad(`${where}: ${(e as Error).message}`);
  }
}

function port(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) throw bad(`${where} must be a port number 1-65535, not ${JSON.stringify(v)}`);
  return v;
}

export function parsePortMappings(v: unknown): CniPortMapping[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad(`runtimeConfig.portMappings must be a list, not ${JSON.stringify(v)}`);
  return v.map((m: unknown, i) => {
    const where = `runtimeConfig.portMappings[${i}]`;
    if (!isObject(m)) throw bad(`${where} must be an object {hostPort, containerPort, protocol, hostIP}`);
    const hostPort = port(m['hostPort'], `${where}.hostPort`);
    const containerPort = port(m['containerPort'], `${where}.containerPort`);
    const rawProto = str(m, 'protocol', `${where}.`) ?? 'tcp';
    const proto = (rawProto || 'tcp').toLowerCase();
    if (proto === 'sctp') throw unsupported(`${where}.protocol sctp is not supported: bpfnet publishes tcp and udp ports`);
    if (proto !== 'tcp' && proto !== 'udp') throw bad(`${where}.protocol "${rawProto}" is not a protocol; use tcp or udp`);
    const hostIP = str(m, 'hostIP', `${where}.`) ?? '';
    if (hostIP.includes(':')) throw unsupported(`${where}.hostIP ${hostIP}: bpfnet publishes IPv4 only; use an IPv4 address or leave hostIP empty`);
    if (hostIP !== '') ipv4(hostIP, `${where}.hostIP`);
    return { hostPort, containerPort, protocol: proto, ...(hostIP ? { hostIP } : {}) };
  });
}

export function parseIpRanges(v: unknown): CniIpRange[][] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad(`runtimeConfig.ipRanges must be a list of range sets (lists of {subnet, rangeStart, rangeEnd, gateway}), not ${JSON.stringify(v)}`);
  const sets = v.map((set: unknown, i) => {
    if (!Array.isArray(set)) throw bad(`runtimeConfig.ipRanges[${i}] must be a list of ranges`);
    return set.map((r: unknown, j) => {
      const where = `runtimeConfig.ipRanges[${i}][${j}].`;
      if (!isObject(r)) throw bad(`${where.slice(0, -1)} must be an object {subnet, rangeStart, rangeEnd, gateway}`);
      const subnet = str(r, 'subnet', where, true);
      const out: CniIpRange = { subnet };
      if (subnet.includes(':')) return out; // IPv6: kept to be skipped by the caller
      out.subnet = cidr(subnet, `${where}subnet`);
      for (const k of ['rangeStart', 'rangeEnd', 'gateway'] as const) {
        const x = str(r, k, where);
        if (x) out[k] = ipv4(x, `${where}${k}`);
      }
      return out;
    });
  });
  return sets;
}

/** The IPv4 range set bpfnet allocates from (the first one that is IPv4); [] when none is given. */
export function ipv4RangeSet(sets: CniIpRange[][]): CniIpRange[] {
  if (sets.length === 0) return [];
  const v4 = sets.find((s) => s.length > 0 && s.every((r) => !r.subnet.includes(':')));
  if (!v4) throw unsupported('runtimeConfig.ipRanges has no IPv4 range set: bpfnet allocates one IPv4 address per attachment');
  return v4;
}

function parseDns(v: unknown, where: string, runtime: boolean): CniDns | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw bad(`${where} must be an object`);
  // runtimeConfig.dns says servers/searches; the result (and conf "dns") nameservers/search.
  const servers = strList(v[runtime ? 'servers' : 'nameservers'], `${where}.${runtime ? 'servers' : 'nameservers'}`);
  const search = strList(v[runtime ? 'searches' : 'search'], `${where}.${runtime ? 'searches' : 'search'}`);
  const options = strList(v['options'], `${where}.options`);
  const domain = runtime ? undefined : str(v, 'domain', `${where}.`);
  const out: CniDns = {};
  if (servers.length) out.nameservers = servers;
  if (domain) out.domain = domain;
  if (search.length) out.search = search;
  if (options.length) out.options = options;
  return Object.keys(out).length ? out : undefined;
}

function parsePrevResult(v: unknown): CniResult | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw bad('prevResult must be an object (the result of ADD)');
  const ips = v['ips'];
  if (ips !== undefined && (!Array.isArray(ips) || ips.some((x) => !isObject(x) || typeof x['address'] !== 'string'))) {
    throw bad('prevResult.ips must be a list of {address, gateway, interface}');
  }
  const ifs = v['interfaces'];
  if (ifs !== undefined && (!Array.isArray(ifs) || ifs.some((x) => !isObject(x) || typeof x['name'] !== 'string'))) {
    throw bad('prevResult.interfaces must be a list of {name, mac, sandbox}');
  }
  return v as unknown as CniResult;
}

function parseAttachments(v: unknown): CniAttachment[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw bad('cni.dev/valid-attachments must be a list of {containerID, ifname}');
  return v.map((a: unknown, i) => {
    const where = `cni.dev/valid-attachments[${i}].`;
    if (!isObject(a)) throw bad(`${where.slice(0, -1)} must be an object {containerID, ifname}`);
    return { containerID: str(a, 'containerID', where, true), ifname: str(a, 'ifname', where, true) };
  });
}

function agentSocket(v: string | undefined): string {
  if (v === undefined || v === '') return DEFAULT_AGENT_SOCKET;
  const p = v.startsWith('unix://') ? v.slice('unix://'.length) : v;
  if (!p.startsWith('/')) throw bad(`agentSocket "${v}" must be an absolute path to the agent's unix socket (e.g. ${DEFAULT_AGENT_SOCKET})`);
  return p;
}

/** Decodes and validates a whole bpfnet network config for `command`. */
export function parseNetConf(stdin: string, command: CniCommand): BpfnetNetConf {
  const o = decodeConfig(stdin);
  const rawVersion = o['cniVersion'];
  if (rawVersion === undefined || rawVersion === '') {
    throw new CniError(CNI_ERR.INCOMPATIBLE_VERSION, 'the network configuration has no cniVersion (read as 0.1.0, which bpfnet does not speak); set "cniVersion": "1.1.0" (or 1.0.0, 0.4.0, 0.3.1, 0.3.0)');
  }
  if (typeof rawVersion !== 'string') throw bad(`cniVersion must be a string such as "1.1.0", not ${JSON.stringify(rawVersion)}`);
  checkVersion(rawVersion, command);

  const name = str(o, 'name', '', true);
  if (!CNI_NAME.test(name)) throw bad(`invalid network name "${name}": only letters, digits, "_", "." and "-" are allowed, starting with a letter or digit`);
  const type = str(o, 'type', '', true);
  const network = str(o, 'network', '') || name;
  if (!NAME_PATTERN.test(network)) {
    throw bad(`invalid bpfnet network name "${network}"${o['network'] ? '' : ' (taken from "name")'}: it needs at least two characters of [a-zA-Z0-9_.-], starting with a letter or digit; set "network"`);
  }

  const ipam = o['ipam'];
  if (ipam !== undefined && ipam !== null && !(isObject(ipam) && Object.keys(ipam).length === 0)) {
    throw unsupported('the "ipam" section is not supported: bpfnet has IPAM built in; remove it and give "subnet" (and optionally "gateway") instead');
  }

  const subnetRaw = str(o, 'subnet', '');
  const subnet = subnetRaw ? cidr(subnetRaw, 'subnet') : undefined;
  if (subnetRaw && subnet && parseCidr(subnetRaw).address !== parseCidr(subnet).network) {
    throw bad(`subnet ${subnetRaw} has host bits set; write the network address, e.g. ${subnet}`);
  }
  const gatewayRaw = str(o, 'gateway', '');
  const gateway = gatewayRaw ? ipv4(gatewayRaw, 'gateway') : undefined;
  if (gateway && !subnet) throw bad('gateway needs subnet: they are used together to create the bpfnet network on first use');

  const optionsRaw = o['options'];
  const options: Record<string, string> = {};
  if (optionsRaw !== undefined && optionsRaw !== null) {
    if (!isObject(optionsRaw)) throw bad('options must be an object of bridge options, e.g. {"com.docker.network.driver.mtu": "1400"}');
    for (const [k, v] of Object.entries(optionsRaw)) {
      if (typeof v !== 'string') throw bad(`options["${k}"] must be a string, not ${JSON.stringify(v)}`);
      options[k] = v;
    }
  }

  const rc = o['runtimeConfig'];
  if (rc !== undefined && rc !== null && !isObject(rc)) throw bad('runtimeConfig must be an object');
  const r: Json = isObject(rc) ? rc : {};
  const ips = strList(r['ips'], 'runtimeConfig.ips');
  for (const ip of ips) if (!ip.includes(':')) ipv4(ip.split('/')[0]!, 'runtimeConfig.ips[]');

  const conf: BpfnetNetConf = {
    cniVersion: rawVersion,
    name,
    type,
    network,
    options,
    agentSocket: agentSocket(str(o, 'agentSocket', '')),
    runtimeConfig: {
      portMappings: parsePortMappings(r['portMappings']),
      ipRanges: parseIpRanges(r['ipRanges']),
      ips,
    },
  };
  if (subnet) conf.subnet = subnet;
  if (gateway) conf.gateway = gateway;
  const dns = parseDns(o['dns'], 'dns', false);
  if (dns) conf.dns = dns;
  const mac = str(r, 'mac', 'runtimeConfig.');
  if (mac) conf.runtimeConfig.mac = parseMac(mac, 'runtimeConfig.mac');
  const rdns = parseDns(r['dns'], 'runtimeConfig.dns', true);
  if (rdns) conf.runtimeConfig.dns = rdns;
  const prev = parsePrevResult(o['prevResult']);
  if (prev) conf.prevResult = prev;
  const va = parseAttachments(o['cni.dev/valid-attachments']);
  if (va) conf.validAttachments = va;
  return conf;
}

/** runtimeConfig.portMappings as Docker -p specs for the agent. */
export function publishSpecs(maps: CniPortMapping[]): string[] {
  return maps.map((m) => `${m.hostIP ? `${m.hostIP}:` : ''}${m.hostPort}:${m.containerPort}/${m.protocol}`);
}
