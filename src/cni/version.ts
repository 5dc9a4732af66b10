/**
 * Version negotiation and result conversion. bpfnet speaks 0.3.0 to 1.1.0:
 * the result shape is the same except that 0.3.x/0.4.0 tag each IP with
 * "version" and 1.1.0 adds interface mtu. 0.1.0/0.2.0 (a different result
 * shape) are refused with code 1.
 */
import { CniError, CNI_ERR } from './errors.js';
import type { CniCommand, CniResult } from './types.js';

export const CURRENT_VERSION = '1.1.0';
export const SUPPORTED_VERSIONS: readonly string[] = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

/** -1, 0, 1; throws for something that is not MAJOR.MINOR.PATCH. */
export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  for (let i = 0; i < 3; i++) {
    if (pa[i]! !== pb[i]!) return pa[i]! < pb[i]! ? -1 : 1;
  }
  return 0;
}

function parseVersion(v: string): [number, number, number] {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(v);
  if (!m) throw new CniError(CNI_ERR.INCOMPATIBLE_VERSION, `invalid cniVersion "${v}": expected MAJOR.MINOR.PATCH, one of ${SUPPORTED_VERSIONS.join(', ')}`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** The oldest config version that may carry each command (the spec's, as libcni's skel enforces it). */
const MIN_VERSION: Record<CniCommand, string> = { ADD: '0.3.0', DEL: '0.3.0', CHECK: '0.4.0', STATUS: '1.1.0', GC: '1.1.0', VERSION: '0.3.0' };

/** Refuses a config version this plugin does not speak, or one too old for the command. */
export function checkVersion(version: string, command: CniCommand): void {
  if (!SUPPORTED_VERSIONS.includes(version)) {
    parseVersion(version); // a malformed one says so
    throw new CniError(
      CNI_ERR.INCOMPATIBLE_VERSION,
      `incompatible CNI versions: the config has cniVersion "${version}"; bpfnet supports ${SUPPORTED_VERSIONS.join(', ')}`,
      `supportedVersions: ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  const min = MIN_VERSION[command];
  if (compareVersions(version, min) < 0) {
    throw new CniError(CNI_ERR.INCOMPATIBLE_VERSION, `config version ${version} does not allow ${command}: it needs cniVersion ${min} or later`);
  }
}

/** The VERSION command's answer. */
export function versionInfo(): { cniVersion: string; supportedVersions: string[] } {
  return { cniVersion: CURRENT_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}

/** A result built in the 1.1.0 shape, in the shape of `version`. */
export function convertResult(r: CniResult, version: string): CniResult {
  const old = compareVersions(version, '1.0.0') < 0;
  const pre11 = compareVersions(version, '1.1.0') < 0;
  const out: CniResult = { cniVersion: version };
  if (r.interfaces) {
    out.interfaces = r.interfaces.map((i) => {
      const { mtu, ...rest } = i;
      return pre11 || mtu === undefined ? rest : { ...rest, mtu };
    });
  }
  if (r.ips) {
    out.ips = r.ips.map((ip) => {
      const { version: _v, ...rest } = ip;
      return old ? { version: ip.address.includes(':') ? '6' : '4', ...rest } : rest;
    });
  }
  if (r.routes) out.routes = r.routes.map((x) => ({ ...x }));
  if (r.dns) out.dns = { ...r.dns };
  return out;
}
