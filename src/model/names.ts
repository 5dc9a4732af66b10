/**
 * Validation of names and small values that come from the command line:
 * network and sandbox names, Linux device names, hostnames, k=v labels and
 * options, DNS servers, MTU, and the bridge driver's -o options. Pure.
 */
import { isIP } from 'node:net';
import { BpfnetError } from '../util/errors.js';
import type { GatewayMode } from './types.js';
import { formatIpv4, looksLikeIpv6, tryParseIpv4 } from './ipv4.js';

function invalid(message: string, details: Record<string, unknown> = {}): BpfnetError {
  return new BpfnetError('E_INVALID_ARGUMENT', message, details);
}

/** Docker's restricted name pattern (container names; applied here to networks and sandboxes too). */
export const NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** A network or sandbox name; returns it unchanged. */
export function validateName(name: string, kind: 'network' | 'sandbox' = 'network'): string {
  if (!NAME_PATTERN.test(name)) {
    const why = name === '' ? 'is empty' : name.length === 1 ? 'is one character long (at least two are needed)' : /^[_.-]/.test(name) ? 'must start with a letter or digit' : 'contains characters other than letters, digits, "_", "." and "-"';
    throw invalid(`invalid ${kind} name "${name}": it ${why}; only [a-zA-Z0-9][a-zA-Z0-9_.-]+ is allowed, e.g. "my-${kind}"`, { name });
  }
  return name;
}

/** Linux IFNAMSIZ - 1. */
export const MAX_DEVICE_NAME = 15;

/** A network device name the kernel accepts (dev_valid_name): 1-15 bytes, no '/', ':' or whitespace, not "." or "..". */
export function validateDeviceName(name: string, what = 'device name'): string {
  const bytes = Buffer.byteLength(name, 'utf8');
  let why: string | undefined;
  if (name === '') why = 'is empty';
  else if (bytes > MAX_DEVICE_NAME) why = `is ${bytes} bytes long; Linux allows at most ${MAX_DEVICE_NAME}`;
  else if (name === '.' || name === '..') why = `cannot be "${name}"`;
  else if (name.includes('/')) why = 'contains "/"';
  else if (name.includes(':')) why = 'contains ":"';
  else if (/\s/.test(name)) why = 'contains whitespace';
  if (why) throw invalid(`invalid ${what} "${name}": it ${why}; use up to ${MAX_DEVICE_NAME} characters without "/", ":" or spaces, e.g. "br-mynet"`, { name });
  return name;
}

/** Linux HOST_NAME_MAX (sethostname limit). */
export const MAX_HOSTNAME = 64;

/**
 * A hostname (RFC 1123): dot-separated labels of letters, digits and '-',
 * each 1-63 characters, not starting or ending with '-'; at most 64
 * characters in all (the kernel's limit for the UTS name).
 */
export function validateHostname(name: string): string {
  let why: string | undefined;
  if (name === '') why = 'is empty';
  else if (name.length > MAX_HOSTNAME) why = `is ${name.length} characters long; the kernel allows at most ${MAX_HOSTNAME}`;
  else {
    for (const label of name.split('.')) {
      if (label === '') {
        why = 'has an empty label (leading, trailing or doubled ".")';
        break;
      }
      if (label.length > 63) {
        why = `has a label of ${label.length} characters; at most 63 are allowed`;
        break;
      }
      if (!/^[a-zA-Z0-9-]+$/.test(label)) {
        why = `has characters other than letters, digits and "-" in "${label}"`;
        break;
      }
      if (label.startsWith('-') || label.endsWith('-')) {
        why = `has a label "${label}" that starts or ends with "-"`;
        break;
      }
    }
  }
  if (why) throw invalid(`invalid hostname "${name}": it ${why}; use letters, digits and "-" in dot-separated labels, e.g. "web-1" or "web-1.example"`, { hostname: name });
  return name;
}

/**
 * "k=v" -> ["k", "v"]; "k" -> ["k", ""] (Docker's --label and -o accept a
 * bare key). Splits at the first '='.
 */
export function parseKeyValue(item: string, what = 'label'): [string, string] {
  const eq = item.indexOf('=');
  const key = eq < 0 ? item : item.slice(0, eq);
  const value = eq < 0 ? '' : item.slice(eq + 1);
  if (key.trim() === '') throw invalid(`invalid ${what} "${item}": the key is empty; write KEY=VALUE, e.g. com.example.team=web`, { item });
  if (/\s/.test(key)) throw invalid(`invalid ${what} "${item}": the key "${key}" contains whitespace; write KEY=VALUE with a key without spaces`, { item });
  return [key, value];
}

/** Several k=v items into a record (a later key replaces an earlier one, like Docker's map). */
export function parseKeyValues(items: readonly string[], what = 'label'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const [k, v] = parseKeyValue(item, what);
    out[k] = v;
  }
  return out;
}

/** A --dns server: an IPv4 or IPv6 address, returned canonical (IPv4 dotted quad). */
export function validateDnsServer(addr: string): string {
  const v4 = tryParseIpv4(addr);
  if (v4 !== undefined) return formatIpv4(v4);
  if (isIP(addr) === 6) return addr.toLowerCase();
  throw invalid(`invalid DNS server "${addr}": give an IP address such as 1.1.1.1 (not a hostname)`, { dns: addr });
}

export function validateDnsServers(list: readonly string[]): string[] {
  return list.map(validateDnsServer);
}

export const MTU_MIN = 68;
export const MTU_MAX = 65535;

/** MTU from a number or a decimal string, 68..65535. */
export function validateMtu(value: number | string): number {
  const n = typeof value === 'number' ? value : /^[0-9]+$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
  if (!Number.isInteger(n) || n < MTU_MIN || n > MTU_MAX) {
    throw invalid(`invalid MTU "${value}": it must be a whole number ${MTU_MIN}-${MTU_MAX}, e.g. 1500`, { mtu: value });
  }
  return n;
}

const TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

/** Go's strconv.ParseBool forms, which Docker uses for driver options. */
export function parseBool(value: string, what: string): boolean {
  if (TRUE.has(value)) return true;
  if (FALSE.has(value)) return false;
  throw invalid(`invalid value "${value}" for ${what}: expected true or false (also 1/0, t/f, TRUE/FALSE, True/False)`, { option: what, value });
}

/** The bridge driver options bpfnet understands. */
export const BRIDGE_OPTS = {
  name: 'com.docker.network.bridge.name',
  enableIcc: 'com.docker.network.bridge.enable_icc',
  enableIpMasquerade: 'com.docker.network.bridge.enable_ip_masquerade',
  hostBindingIpv4: 'com.docker.network.bridge.host_binding_ipv4',
  gatewayModeIpv4: 'com.docker.network.bridge.gateway_mode_ipv4',
  mtu: 'com.docker.network.driver.mtu',
  hostIpv4: 'com.docker.network.host_ipv4',
  /** Set by Docker on its predefined "bridge" network (seen in inspect output). */
  defaultBridge: 'com.docker.network.bridge.default_bridge',
} as const;

export const KNOWN_BRIDGE_OPTIONS: readonly string[] = Object.values(BRIDGE_OPTS);

export const GATEWAY_MODES: readonly GatewayMode[] = ['nat', 'nat-unprotected', 'routed', 'isolated'];

export interface BridgeOptions {
  /** Explicit bridge device name (otherwise bpfnet derives one). */
  bridgeName?: string;
  icc: boolean;
  masquerade: boolean;
  hostBindingIpv4: string;
  gatewayModeIpv4: GatewayMode;
  /** Explicit MTU, when given. */
  mtu?: number;
  hostIpv4?: string;
  defaultBridge: boolean;
  /** Keys outside com.docker.network.*: kept as given, like Docker. */
  opaque: Record<string, string>;
}

function ipv4Option(key: string, value: string): string {
  const v = tryParseIpv4(value);
  if (v !== undefined) return formatIpv4(v);
  if (looksLikeIpv6(value)) throw invalid(`${key}=${value}: IPv6 is not supported: bpfnet forwards IPv4 only; give an IPv4 address such as 0.0.0.0`, { option: key, value });
  throw invalid(`${key}=${value}: not an IPv4 address; give one such as 0.0.0.0 or 192.0.2.10`, { option: key, value });
}

/**
 * Interpret a bridge network's -o options. Unknown com.docker.network.*
 * keys are refused (listing the known ones); other keys are opaque.
 */
export function parseBridgeOptions(options: Readonly<Record<string, string>>): BridgeOptions {
  const out: BridgeOptions = { icc: true, masquerade: true, hostBindingIpv4: '0.0.0.0', gatewayModeIpv4: 'nat', defaultBridge: false, opaque: {} };
  for (const [key, value] of Object.entries(options)) {
    switch (key) {
      case BRIDGE_OPTS.name:
        out.bridgeName = validateDeviceName(value, `bridge name (${key})`);
        break;
      case BRIDGE_OPTS.enableIcc:
        out.icc = parseBool(value, key);
        break;
      case BRIDGE_OPTS.enableIpMasquerade:
        out.masquerade = parseBool(value, key);
        break;
      case BRIDGE_OPTS.hostBindingIpv4:
        out.hostBindingIpv4 = ipv4Option(key, value);
        break;
      case BRIDGE_OPTS.gatewayModeIpv4:
        if (!(GATEWAY_MODES as readonly string[]).includes(value)) {
          throw invalid(`${key}=${value}: unknown gateway mode; use one of ${GATEWAY_MODES.join(', ')}`, { option: key, value });
        }
        out.gatewayModeIpv4 = value as GatewayMode;
        break;
      case BRIDGE_OPTS.mtu:
        try {
          out.mtu = validateMtu(value);
        } catch {
          throw invalid(`${key}=${value}: invalid MTU; it must be a whole number ${MTU_MIN}-${MTU_MAX}, e.g. 1500`, { option: key, value });
        }
        break;
      case BRIDGE_OPTS.hostIpv4:
        out.hostIpv4 = ipv4Option(key, value);
        break;
      case BRIDGE_OPTS.defaultBridge:
        out.defaultBridge = parseBool(value, key);
        break;
      default:
        if (key.startsWith('com.docker.network.')) {
          throw invalid(`unknown bridge driver option "${key}"; bpfnet knows ${KNOWN_BRIDGE_OPTIONS.join(', ')}`, { option: key, known: KNOWN_BRIDGE_OPTIONS });
        }
        out.opaque[key] = value;
    }
  }
  return out;
}
