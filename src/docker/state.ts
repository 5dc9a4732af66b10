/**
 * What the Docker plugin must remember that bpfnet's model has no place for,
 * in one small JSON file next to the agent's store (written whole, atomically:
 * temp file + rename):
 * - IPAM pools and their allocated addresses: Docker asks for a pool and the
 *   gateway before the network exists, and a restart must not forget them;
 * - endpoints between CreateEndpoint and DeleteEndpoint: Join does not repeat
 *   the address and MAC, and Docker calls Leave/DeleteEndpoint after an agent
 *   restart.
 * Which bpfnet network/sandbox stands for which Docker id is not here: that
 * is in their labels.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { BpfnetError } from '../util/errors.js';

export interface PoolState {
  addressSpace: string;
  /** canonical CIDR */
  pool: string;
  /** --ip-range, canonical CIDR */
  subPool?: string;
  /** allocated addresses (no prefix) */
  addresses: string[];
}

export interface EndpointState {
  networkId: string;
  /** "a.b.c.d/n", as Docker gave it */
  address: string;
  mac: string;
}

export interface PluginStateData {
  version: 1;
  pools: Record<string, PoolState>;
  endpoints: Record<string, EndpointState>;
}

const empty = (): PluginStateData => ({ version: 1, pools: {}, endpoints: {} });

export class PluginState {
  private data: PluginStateData;

  private constructor(
    readonly path: string,
    data: PluginStateData,
  ) {
    this.data = data;
  }

  static load(path: string): PluginState {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new PluginState(path, empty());
      throw new BpfnetError('E_STATE', `cannot read the Docker plugin state ${path}: ${(e as Error).message}`);
    }
    let d: PluginStateData;
    try {
      d = JSON.parse(text) as PluginStateData;
    } catch (e) {
      throw new BpfnetError('E_STATE', `the Docker plugin state ${path} is not valid JSON (${(e as Error).message}); move it away to start empty (Docker's pools and endpoints are then forgotten)`);
    }
    if (d.version !== 1 || typeof d.pools !== 'object' || typeof d.endpoints !== 'object') {
      throw new BpfnetError('E_STATE', `the Docker plugin state ${path} has an unknown layout (version ${String(d.version)})`);
    }
    return new PluginState(path, d);
  }

  get pools(): Readonly<Record<string, Readonly<PoolState>>> {
    return this.data.pools;
  }

  get endpoints(): Readonly<Record<string, Readonly<EndpointState>>> {
    return this.data.endpoints;
  }

  /** Change a copy, write it, then keep it: a failed write changes nothing. */
  update(fn: (d: PluginStateData) => void): void {
    const next = structuredClone(this.data);
    fn(next);
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify(next, null, 1) + '\n', { mode: 0o600 });
      renameSync(tmp, this.path);
    } catch (e) {
      throw new BpfnetError('E_STATE', `cannot write the Docker plugin state ${this.path}: ${(e as Error).message}`);
    }
    this.data = next;
  }
}
