/**
 * The agent's desired state: networks, sandboxes, endpoints, address
 * allocations and published ports, in one SQLite database (better-sqlite3).
 *
 * Why SQLite: every change is one ACID transaction, WAL mode makes a commit
 * a few microseconds of appends, and a kill -9 at any point leaves either the
 * old or the new state (the WAL is replayed on open). synchronous=NORMAL keeps
 * that guarantee for process crashes; after a power loss the last commits may
 * be lost but the database stays consistent, and the kernel side is rebuilt
 * from it anyway. Uniqueness (names, addresses, host ports) is enforced by the
 * schema, so two racing changes can never both land.
 *
 * The agent is the database's only writer, so every record is also kept in
 * memory (parsed once, at open): reads cost no SQL and no JSON, and a change
 * to one sandbox costs O(that change) however many ports others publish. A
 * sandbox's ports live only in the ports table (not in its JSON doc), so
 * publishing one more port never rewrites the others. A failed transaction
 * reloads the memory from the database. Records handed out are frozen.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BpfnetError } from '../util/errors.js';
import type { EndpointRecord, NetworkRecord, PortMapping, SandboxRecord } from '../model/types.js';
import { PortIndex } from '../model/portspec.js';

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS networks (
  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sandboxes (
  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS endpoints (
  id TEXT PRIMARY KEY,
  network_id TEXT NOT NULL REFERENCES networks(id),
  sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),
  host_if TEXT NOT NULL UNIQUE,
  doc TEXT NOT NULL,
  UNIQUE (network_id, sandbox_id));
CREATE TABLE IF NOT EXISTS ip_allocs (
  network_id TEXT NOT NULL REFERENCES networks(id),
  ip TEXT NOT NULL,
  endpoint_id TEXT NOT NULL REFERENCES endpoints(id),
  PRIMARY KEY (network_id, ip));
CREATE TABLE IF NOT EXISTS ports (
  host_ip TEXT NOT NULL, proto TEXT NOT NULL, host_port INTEGER NOT NULL,
  sandbox_id TEXT NOT NULL REFERENCES sandboxes(id),
  container_port INTEGER NOT NULL,
  PRIMARY KEY (host_ip, proto, host_port));
CREATE INDEX IF NOT EXISTS ports_by_sandbox ON ports (sandbox_id);
CREATE INDEX IF NOT EXISTS endpoints_by_sandbox ON endpoints (sandbox_id);
`;

export type StoredPort = PortMapping & { sandboxId: string };

interface PortRow {
  host_ip: string;
  proto: PortMapping['proto'];
  host_port: number;
  sandbox_id: string;
  container_port: number;
}

function freeze<T extends object>(r: T): T {
  return Object.freeze(r);
}

export class Store {
  private nets = new Map<string, NetworkRecord>();
  private sbs = new Map<string, SandboxRecord>();
  private eps = new Map<string, EndpointRecord>();
  private allocs = new Map<string, Set<string>>();
  private portIdx = new PortIndex();
  private depth = 0;

  private constructor(
    readonly path: string,
    private readonly db: Database.Database,
  ) {
    this.load();
  }

  static open(stateDir: string): Store {
    const path = join(stateDir, 'bpfnet.db');
    try {
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      const db = new Database(path);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      db.pragma('busy_timeout = 5000');
      db.exec(SCHEMA);
      const v = db.prepare('SELECT value FROM meta WHERE key = ?').get('schema_version') as { value: string } | undefined;
      if (!v) db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run('schema_version', String(SCHEMA_VERSION));
      else if (Number(v.value) !== SCHEMA_VERSION) {
        db.close();
        throw new BpfnetError('E_STATE', `state ${path} has schema version ${v.value}; this bpfnet reads version ${SCHEMA_VERSION}`, { path });
      }
      return new Store(path, db);
    } catch (e) {
      if (e instanceof BpfnetError) throw e;
      throw new BpfnetError('E_STATE', `cannot open state ${path}: ${(e as Error).message}; check --state-dir and that no other agent uses it`, { path }, { cause: e });
    }
  }

  close(): void {
    this.db.close();
  }

  /** (Re)reads every record into memory: at open, and after a failed transaction. */
  private load(): void {
    const docs = <T>(sql: string): T[] => (this.db.prepare(sql).all() as { doc: string }[]).map((r) => JSON.parse(r.doc) as T);
    this.nets = new Map(docs<NetworkRecord>('SELECT doc FROM networks ORDER BY rowid').map((n) => [n.id, freeze(n)]));
    this.eps = new Map(docs<EndpointRecord>('SELECT doc FROM endpoints ORDER BY rowid').map((e) => [e.id, freeze(e)]));
    const ports = new Map<string, PortMapping[]>();
    this.portIdx = new PortIndex();
    for (const r of this.db.prepare('SELECT host_ip, proto, host_port, sandbox_id, container_port FROM ports ORDER BY rowid').all() as PortRow[]) {
      const m = freeze({ hostIp: r.host_ip, hostPort: r.host_port, containerPort: r.container_port, proto: r.proto });
      let l = ports.get(r.sandbox_id);
      if (!l) ports.set(r.sandbox_id, (l = []));
      l.push(m);
      this.portIdx.add(m);
    }
    // Older docs carried their ports too; the table is the truth.
    this.sbs = new Map(docs<SandboxRecord>('SELECT doc FROM sandboxes ORDER BY rowid').map((s) => [s.id, freeze({ ...s, ports: freeze(ports.get(s.id) ?? []) })]));
    this.allocs = new Map();
    for (const r of this.db.prepare('SELECT network_id, ip FROM ip_allocs').all() as { network_id: string; ip: string }[]) this.allocSet(r.network_id).add(r.ip);
  }

  private allocSet(networkId: string): Set<string> {
    let s = this.allocs.get(networkId);
    if (!s) this.allocs.set(networkId, (s = new Set()));
    return s;
  }

  /** Run fn in one transaction: all of its writes land, or none (in memory too). */
  tx<T>(fn: () => T): T {
    this.depth++;
    try {
      return this.db.transaction(fn).immediate();
    } catch (e) {
      if (this.depth === 1) this.load();
      throw e;
    } finally {
      this.depth--;
    }
  }

  meta(key: string): string | undefined {
    const r = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return r?.value;
  }

  setMeta(key: string, value: string): void {
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  // ---- networks -------------------------------------------------------------

  networks(): NetworkRecord[] {
    return [...this.nets.values()];
  }

  network(id: string): NetworkRecord | undefined {
    return this.nets.get(id);
  }

  putNetwork(n: NetworkRecord): void {
    this.db
      .prepare('INSERT INTO networks (id, name, doc) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name, doc = excluded.doc')
      .run(n.id, n.name, JSON.stringify(n));
    this.nets.set(n.id, freeze({ ...n }));
  }

  deleteNetwork(id: string): void {
    this.db.prepare('DELETE FROM networks WHERE id = ?').run(id);
    this.nets.delete(id);
    this.allocs.delete(id);
  }

  // ---- sandboxes ------------------------------------------------------------

  sandboxes(): SandboxRecord[] {
    return [...this.sbs.values()];
  }

  sandbox(id: string): SandboxRecord | undefined {
    return this.sbs.get(id);
  }

  /** Inserts or replaces the sandbox and its published ports. */
  putSandbox(s: SandboxRecord): void {
    const { ports, ...doc } = s;
    this.db
      .prepare('INSERT INTO sandboxes (id, name, doc) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name, doc = excluded.doc')
      .run(s.id, s.name, JSON.stringify(doc));
    const old = this.sbs.get(s.id);
    if (old !== undefined && old.ports === ports) {
      this.sbs.set(s.id, freeze({ ...s }));
      return;
    }
    this.dropPorts(s.id);
    this.sbs.set(s.id, freeze({ ...s, ports: freeze([]) }));
    this.addPorts(s.id, ports);
  }

  deleteSandbox(id: string): void {
    this.dropPorts(id);
    this.db.prepare('DELETE FROM sandboxes WHERE id = ?').run(id);
    this.sbs.delete(id);
  }

  private dropPorts(sandboxId: string): void {
    this.db.prepare('DELETE FROM ports WHERE sandbox_id = ?').run(sandboxId);
    for (const m of this.sbs.get(sandboxId)?.ports ?? []) this.portIdx.delete(m);
  }

  /** Publishes more ports on a stored sandbox (the schema refuses a taken one). */
  addPorts(sandboxId: string, add: readonly PortMapping[]): void {
    const s = this.sbs.get(sandboxId);
    if (!s) throw new BpfnetError('E_STATE', `no sandbox ${sandboxId} in the store`);
    const added = add.map((p) => freeze({ hostIp: p.hostIp, hostPort: p.hostPort, containerPort: p.containerPort, proto: p.proto }));
    // One statement for all rows: SQLite loops over the JSON in C (a 50k range is one call, not 50k).
    this.db
      .prepare("INSERT INTO ports (host_ip, proto, host_port, sandbox_id, container_port) SELECT value->>0, value->>1, value->>2, ?, value->>3 FROM json_each(?)")
      .run(sandboxId, JSON.stringify(added.map((p) => [p.hostIp, p.proto, p.hostPort, p.containerPort])));
    for (const p of added) this.portIdx.add(p);
    this.sbs.set(sandboxId, freeze({ ...s, ports: freeze([...s.ports, ...added]) }));
  }

  /** Withdraws some of a sandbox's ports (matched by host IP, proto and host port). */
  removePorts(sandboxId: string, remove: readonly Pick<PortMapping, 'hostIp' | 'proto' | 'hostPort'>[]): void {
    const s = this.sbs.get(sandboxId);
    if (!s) throw new BpfnetError('E_STATE', `no sandbox ${sandboxId} in the store`);
    const key = (p: Pick<PortMapping, 'hostIp' | 'proto' | 'hostPort'>) => `${p.hostIp}|${p.proto}|${p.hostPort}`;
    const gone = new Set(remove.map(key));
    const del = this.db.prepare('DELETE FROM ports WHERE host_ip = ? AND proto = ? AND host_port = ? AND sandbox_id = ?');
    const kept: PortMapping[] = [];
    for (const p of s.ports) {
      if (!gone.has(key(p))) {
        kept.push(p);
        continue;
      }
      del.run(p.hostIp, p.proto, p.hostPort, sandboxId);
      this.portIdx.delete(p);
    }
    this.sbs.set(sandboxId, freeze({ ...s, ports: freeze(kept) }));
  }

  /** Every published port on the node. */
  ports(): StoredPort[] {
    return [...this.sbs.values()].flatMap((s) => s.ports.map((p) => ({ ...p, sandboxId: s.id })));
  }

  /** Is a host binding taken by a published port (0.0.0.0 overlaps every address)? O(1). */
  portTaken(hostIp: string, proto: string, hostPort: number): boolean {
    return this.portIdx.conflicts(hostIp, proto, hostPort);
  }

  // ---- endpoints ------------------------------------------------------------

  endpoints(filter: { networkId?: string; sandboxId?: string } = {}): EndpointRecord[] {
    const all = [...this.eps.values()];
    if (filter.networkId) return all.filter((e) => e.networkId === filter.networkId);
    if (filter.sandboxId) return all.filter((e) => e.sandboxId === filter.sandboxId);
    return all;
  }

  /** Inserts the endpoint and its address allocation (unique per network). */
  putEndpoint(e: EndpointRecord): void {
    this.db
      .prepare('INSERT INTO endpoints (id, network_id, sandbox_id, host_if, doc) VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc')
      .run(e.id, e.networkId, e.sandboxId, e.hostIfName, JSON.stringify(e));
    this.db.prepare('DELETE FROM ip_allocs WHERE endpoint_id = ?').run(e.id);
    if (e.ipv4) this.db.prepare('INSERT INTO ip_allocs (network_id, ip, endpoint_id) VALUES (?, ?, ?)').run(e.networkId, e.ipv4, e.id);
    const old = this.eps.get(e.id);
    if (old?.ipv4) this.allocs.get(old.networkId)?.delete(old.ipv4);
    if (e.ipv4) this.allocSet(e.networkId).add(e.ipv4);
    this.eps.set(e.id, freeze({ ...e }));
  }

  deleteEndpoint(id: string): void {
    this.db.prepare('DELETE FROM ip_allocs WHERE endpoint_id = ?').run(id);
    this.db.prepare('DELETE FROM endpoints WHERE id = ?').run(id);
    const old = this.eps.get(id);
    if (old?.ipv4) this.allocs.get(old.networkId)?.delete(old.ipv4);
    this.eps.delete(id);
  }

  /** Addresses in use on a network. */
  usedAddresses(networkId: string): Set<string> {
    return new Set(this.allocs.get(networkId) ?? []);
  }
}
