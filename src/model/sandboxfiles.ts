/**
 * The files Docker writes for a sandbox: /etc/hostname, /etc/hosts and
 * /etc/resolv.conf, rendered as strings exactly as moby's libnetwork writes
 * them (etchosts, internal/resolvconf). Pure: the host's files come in as
 * strings.
 */
import { isIP } from 'node:net';
import { BpfnetError } from '../util/errors.js';
import type { NetworkRecord, SandboxMode } from './types.js';
import { validateDnsServers } from './names.js';

function invalid(message: string, details: Record<string, unknown> = {}): BpfnetError {
  return new BpfnetError('E_INVALID_ARGUMENT', message, details);
}

/** /etc/hostname: the name and a newline. */
export function renderHostname(hostname: string): string {
  return `${hostname}\n`;
}

export interface HostEntry {
  /** One or more names, space separated ("db db.local"). */
  name: string;
  ip: string;
}

/** The fixed head of every hosts file (Docker 26+: fe00::/ff00:: in netip form). */
export const HOSTS_IPV4_DEFAULTS: readonly HostEntry[] = [{ ip: '127.0.0.1', name: 'localhost' }];
export const HOSTS_IPV6_DEFAULTS: readonly HostEntry[] = [
  { ip: '::1', name: 'localhost ip6-localhost ip6-loopback' },
  { ip: 'fe00::', name: 'ip6-localnet' },
  { ip: 'ff00::', name: 'ip6-mcastprefix' },
  { ip: 'ff02::1', name: 'ip6-allnodes' },
  { ip: 'ff02::2', name: 'ip6-allrouters' },
];

/**
 * One --add-host value: "name:ip" or "name=ip" (Docker 25+). The address may
 * be IPv6 (split at the first separator) or "host-gateway".
 */
export function parseExtraHost(spec: string): HostEntry {
  const eq = spec.indexOf('=');
  const colon = spec.indexOf(':');
  const sep = eq >= 0 && (colon < 0 || eq < colon) ? eq : colon;
  if (sep <= 0) throw invalid(`invalid extra host "${spec}": expected NAME:IP or NAME=IP, e.g. db:192.0.2.10`, { spec });
  const name = spec.slice(0, sep);
  let ip = spec.slice(sep + 1);
  if (ip.startsWith('[') && ip.endsWith(']')) ip = ip.slice(1, -1);
  if (ip !== 'host-gateway' && isIP(ip) === 0) throw invalid(`invalid extra host "${spec}": "${ip}" is not an IP address; expected NAME:IP, e.g. ${name}:192.0.2.10 (or ${name}:host-gateway)`, { spec });
  if (/\s/.test(name)) throw invalid(`invalid extra host "${spec}": the name contains whitespace; give one name per --add-host`, { spec });
  return { name, ip };
}

export interface HostsInput {
  /** The sandbox's hostname; may be a FQDN. */
  hostname: string;
  /** Docker's --domainname, appended to the hostname when set. */
  domainname?: string;
  /** The sandbox's own addresses, one line each (in endpoint order). */
  addresses: readonly string[];
  /** --add-host entries (already parsed, or "name:ip" strings). */
  extraHosts?: readonly (HostEntry | string)[];
  /** Address that "host-gateway" in an extra host stands for. */
  hostGateway?: string;
  /** Include the IPv6 localhost lines (Docker omits them when IPv6 is disabled in the container). Default true. */
  ipv6?: boolean;
  /**
   * Host networking: the node's own /etc/hosts. Used verbatim when there are
   * no extra hosts (Docker copies it); otherwise Docker builds a fresh file
   * with the defaults and the extra hosts (and no own addresses).
   */
  hostEtcHosts?: string;
}

function line(e: HostEntry): string {
  return `${e.ip}\t${e.name}\n`;
}

/**
 * /etc/hosts as Docker writes it: localhost lines, then the extra hosts,
 * then one line per own address with "fqdn shortname" (or just the
 * hostname). Network aliases are not written here (Docker serves them from
 * the embedded DNS server only).
 */
export function renderHosts(input: HostsInput): string {
  const extra = (input.extraHosts ?? []).map((e) => {
    const h = typeof e === 'string' ? parseExtraHost(e) : e;
    if (h.ip !== 'host-gateway') return h;
    if (!input.hostGateway) throw invalid(`extra host "${h.name}:host-gateway" needs the host gateway address; configure one (e.g. the network's gateway) or give an IP`, { name: h.name });
    return { name: h.name, ip: input.hostGateway };
  });
  if (input.hostEtcHosts !== undefined && extra.length === 0) return input.hostEtcHosts;

  let out = '';
  for (const e of HOSTS_IPV4_DEFAULTS) out += line(e);
  if (input.ipv6 ?? true) for (const e of HOSTS_IPV6_DEFAULTS) out += line(e);
  for (const e of extra) out += line(e);
  if (input.hostEtcHosts !== undefined) return out;

  let fqdn = input.hostname;
  if (input.domainname) fqdn += `.${input.domainname}`;
  const dot = fqdn.indexOf('.');
  const names = dot >= 0 ? `${fqdn} ${fqdn.slice(0, dot)}` : fqdn;
  for (const ip of input.addresses) out += line({ ip, name: names });
  return out;
}

export interface ResolvConf {
  nameservers: string[];
  search: string[];
  options: string[];
  /** Lines with directives other than nameserver/search/domain/options, verbatim. */
  other: string[];
  /** nameserver values that are not IP addresses (Docker drops them). */
  invalidNameservers: string[];
}

/** Parse resolv.conf like moby's resolvconf.Parse. */
export function parseResolvConf(text: string): ResolvConf {
  const rc: ResolvConf = { nameservers: [], search: [], options: [], other: [], invalidNameservers: [] };
  for (const raw of text.split('\n')) {
    const lineText = raw.replace(/\r$/, '');
    const fields = lineText.trim().split(/\s+/).filter((f) => f !== '');
    const first = fields[0];
    if (first === undefined || first.startsWith('#') || first.startsWith(';')) continue;
    switch (first) {
      case 'nameserver': {
        const addr = fields[1];
        if (addr === undefined) break;
        if (isIP(addr.split('%')[0] ?? '') !== 0) rc.nameservers.push(addr);
        else rc.invalidNameservers.push(addr);
        break;
      }
      case 'domain':
      case 'search':
        if (fields.length >= 2) rc.search = fields.slice(1); // only the last one counts
        break;
      case 'options':
        if (fields.length >= 2) rc.options.push(...fields.slice(1));
        break;
      default:
        rc.other.push(lineText);
    }
  }
  return rc;
}

/** Which resolv.conf flavour a sandbox gets. */
export type ResolvMode =
  /** On at least one user-defined network: the embedded DNS server 127.0.0.11. */
  | 'internal'
  /** Only the default bridge (or none): the host's file, loopback servers removed. */
  | 'legacy'
  /** Host networking: the host's file as is. */
  | 'host';

/**
 * The flavour for a sandbox: host mode -> host; on any user-defined
 * (non-predefined) network -> internal; otherwise (default bridge, none) ->
 * legacy. Container mode shares the other sandbox's files: render for it.
 */
export function resolvModeFor(mode: SandboxMode, networks: readonly Pick<NetworkRecord, 'predefined' | 'driver'>[]): ResolvMode {
  if (mode.kind === 'host') return 'host';
  if (mode.kind === 'container') {
    throw invalid(`a container-mode sandbox shares sandbox ${mode.sandboxId}'s /etc/resolv.conf; render the files for that sandbox instead`);
  }
  if (mode.kind === 'none') return 'legacy';
  return networks.some((n) => !n.predefined && (n.driver === 'bridge' || n.driver === 'routed')) ? 'internal' : 'legacy';
}

export const INTERNAL_NAMESERVER = '127.0.0.11';
/** Docker's fallback when no usable nameserver is left. */
export const DEFAULT_NAMESERVERS: readonly string[] = ['8.8.8.8', '8.8.4.4'];

export interface ResolvInput {
  mode: ResolvMode;
  /** The node's /etc/resolv.conf content ('' when it does not exist). */
  hostResolvConf: string;
  /** --dns: replaces the nameservers. */
  dns?: readonly string[];
  /** --dns-search: replaces the search domains ("." alone removes them). */
  dnsSearch?: readonly string[];
  /** --dns-option: replaces the options. */
  dnsOptions?: readonly string[];
  /** Append Docker's trailing comment block ("# Based on host file: ...", "# ExtServers: [...]"). Default false. */
  comments?: boolean;
  /** Path named in the comment block (default /etc/resolv.conf). */
  sourcePath?: string;
}

function isLoopbackAddr(a: string): boolean {
  const bare = a.split('%')[0] ?? '';
  if (isIP(bare) === 4) return bare.startsWith('127.');
  return bare === '::1' || /^(0{0,4}:){7}0{0,3}1$/.test(bare);
}

function optName(opt: string): string {
  const colon = opt.indexOf(':');
  return colon < 0 ? opt : opt.slice(0, colon);
}

/** false for an "ndots" option whose value is not a non-negative integer (Docker drops those). */
function ndotsValid(opt: string): boolean {
  return optName(opt) !== 'ndots' || /^ndots:[0-9]+$/.test(opt);
}

function hasOption(options: readonly string[], name: string): boolean {
  return options.some((o) => optName(o) === name);
}

/**
 * /etc/resolv.conf for a sandbox, following moby's resolvconf package:
 * - host: the host's file verbatim; with --dns/--dns-search/--dns-option the
 *   host's file with those replaced.
 * - legacy (default bridge, none): the host's file minus loopback
 *   nameservers and (IPv6 being off in bpfnet) IPv6 ones; 8.8.8.8 and 8.8.4.4
 *   when none remain. --dns replaces the nameservers unfiltered.
 * - internal (user-defined networks): "nameserver 127.0.0.11", the host's
 *   search domains, its options plus "ndots:0" unless it sets a valid ndots;
 *   the real servers become the embedded server's upstreams.
 */
export function renderResolvConf(input: ResolvInput): string {
  const host = parseResolvConf(input.hostResolvConf);
  const dns = input.dns && input.dns.length > 0 ? validateDnsServers(input.dns) : undefined;
  const search = input.dnsSearch && input.dnsSearch.length > 0 ? input.dnsSearch.filter((s) => s !== '.') : undefined;
  const options = input.dnsOptions && input.dnsOptions.length > 0 ? [...input.dnsOptions] : undefined;

  if (input.mode === 'host' && !dns && !search && !options) return input.hostResolvConf;

  let nameservers = dns ?? host.nameservers;
  const rc = { search: search ?? host.search, options: options ?? host.options, other: host.other };
  let transform = '';
  let usedDefault = false;
  let ndotsFrom = options ? (hasOption(options, 'ndots') ? 'override' : '') : hasOption(host.options, 'ndots') ? 'host' : '';
  let ext: string[] = [];

  if (input.mode === 'legacy') {
    transform = 'legacy';
    if (!dns) {
      nameservers = nameservers.filter((a) => !isLoopbackAddr(a) && isIP(a.split('%')[0] ?? '') === 4);
      if (nameservers.length === 0) {
        nameservers = [...DEFAULT_NAMESERVERS];
        usedDefault = true;
      }
    }
  } else if (input.mode === 'internal') {
    transform = 'internal resolver';
    ext = nameservers.map((a) => (!dns && (isLoopbackAddr(a) || isIP(a.split('%')[0] ?? '') === 6) ? `host(${a})` : a));
    nameservers = [INTERNAL_NAMESERVER];
    if (ext.length === 0) {
      ext = [...DEFAULT_NAMESERVERS];
      usedDefault = true;
    }
    rc.options = rc.options.filter(ndotsValid);
    if (!hasOption(rc.options, 'ndots')) {
      rc.options.push('ndots:0');
      ndotsFrom = 'internal';
    }
  }

  let out = '';
  for (const ns of nameservers) out += `nameserver ${ns}\n`;
  if (rc.search.length > 0) out += `search ${rc.search.join(' ')}\n`;
  if (rc.options.length > 0) out += `options ${rc.options.join(' ')}\n`;
  if (rc.other.length > 0) out += `${rc.other.join('\n')}\n`;
  if (input.comments) {
    const overrides = [dns ? 'nameservers' : '', search ? 'search' : '', options ? 'options' : ''].filter((s) => s !== '');
    out += `\n# Based on host file: '${input.sourcePath ?? '/etc/resolv.conf'}'${transform ? ` (${transform})` : ''}\n`;
    if (usedDefault) out += '# Used default nameservers.\n';
    if (ext.length > 0) out += `# ExtServers: [${ext.join(' ')}]\n`;
    if (host.invalidNameservers.length > 0) out += `# Invalid nameservers: [${host.invalidNameservers.join(' ')}]\n`;
    out += `# Overrides: [${overrides.join(' ')}]\n`;
    if (ndotsFrom) out += `# Option ndots from: ${ndotsFrom}\n`;
  }
  return out;
}

/**
 * The embedded DNS server's upstreams for an internal-mode sandbox (at most
 * 3, Docker's limit): --dns servers, else the host's; loopback ones are
 * marked hostLoopback (queried from the node's namespace). Falls back to
 * 8.8.8.8/8.8.4.4.
 */
export function upstreamNameservers(hostResolvConf: string, dns?: readonly string[]): { addr: string; hostLoopback: boolean }[] {
  const override = dns && dns.length > 0 ? validateDnsServers(dns) : undefined;
  const list = (override ?? parseResolvConf(hostResolvConf).nameservers).map((addr) => ({ addr, hostLoopback: !override && isLoopbackAddr(addr) }));
  const out = list.length > 0 ? list : DEFAULT_NAMESERVERS.map((addr) => ({ addr, hostLoopback: false }));
  return out.slice(0, 3);
}
