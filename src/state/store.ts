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
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BpfnetError } from '../util/errors.js';
import type { EndpointRecord, NetworkRecord, PortMapping, SandboxRecord } from '../model/types.js';

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

export class Store {
  private constructor(
    readonly path: string,
    private readonly db: Database.Database,
  ) {}

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

  /** Run fn in one transaction: all of its writes land, or none. */
  tx<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
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
    return (this.db.prepare('SELECT doc FROM networks ORDER BY rowid').all() as { doc: string }[]).map((r) => JSON.parse(r.doc) as NetworkRecord);
  }

  network(id: string): NetworkRecord | undefined {
    const r = this.db.prepare('SELECT doc FROM networks WHERE id = ?').get(id) as { doc: string } | undefined;
    return r ? (JSON.parse(r.doc) as NetworkRecord) : undefined;
  }

  putNetwork(n: NetworkRecord): void {
    this.db
      .prepare('INSERT INTO networks (id, name, doc) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name, doc = excluded.doc')
      .run(n.id, n.name, JSON.stringify(n));
  }

  deleteNetwork(id: string): void {
    this.db.prepare('DELETE FROM networks WHERE id = ?').run(id);
  }

  // ---- sandboxes ------------------------------------------------------------

  sandboxes(): SandboxRecord[] {
    return (this.db.prepare('SELECT doc FROM sandboxes ORDER BY rowid').all() as { doc: string }[]).map((r) => JSON.parse(r.doc) as SandboxRecord);
  }

  sandbox(id: string): SandboxRecord | undefined {
    const r = this.db.prepare('SELECT doc FROM sandboxes WHERE id = ?').get(id) as { doc: string } | undefined;
    return r ? (JSON.parse(r.doc) as SandboxRecord) : undefined;
  }

  /** Inserts or replaces the sandbox and its published ports. */
  putSandbox(s: SandboxRecord): void {
    this.db
      .prepare('INSERT INTO sandboxes (id, name, doc) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name, doc = excluded.doc')
      .run(s.id, s.name, JSON.stringify(s));
    this.db.prepare('DELETE FROM ports WHERE sandbox_id = ?').run(s.id);
    const ins = this.db.prepare('INSERT INTO ports (host_ip, proto, host_port, sandbox_id, container_port) VALUES (?, ?, ?, ?, ?)');
    for (const p of s.ports) ins.run(p.hostIp, p.proto, p.hostPort, s.id, p.containerPort);
  }

  deleteSandbox(id: string): void {
    this.db.prepare('DELETE FROM ports WHERE sandbox_id = ?').run(id);
    this.db.prepare('DELETE FROM sandboxes WHERE id = ?').run(id);
  }

  /** Every published port on the node (for conflict checks). */
  ports(): (PortMapping & { sandboxId: string })[] {
    const rows = this.db.prepare('SELECT host_ip, proto, host_port, sandbox_id, container_port FROM ports').all() as {
      host_ip: string;
      proto: PortMapping['proto'];
      host_port: number;
      sandbox_id: string;
      container_port: number;
    }[];
    return rows.map((r) => ({ hostIp: r.host_ip, proto: r.proto, hostPort: r.host_port, containerPort: r.container_port, sandboxId: r.sandbox_id }));
  }

  // ---- endpoints ------------------------------------------------------------

  endpoints(filter: { networkId?: string; sandboxId?: string } = {}): EndpointRecord[] {
    let sql = 'SELECT doc FROM endpoints';
    const args: string[] = [];
    if (filter.networkId) {
      sql += ' WHERE network_id = ?';
      args.push(filter.networkId);
    } else if (filter.sandboxId) {
      sql += ' WHERE sandbox_id = ?';
      args.push(filter.sandboxId);
    }
    return (this.db.prepare(sql + ' ORDER BY rowid').all(...args) as { doc: string }[]).map((r) => JSON.parse(r.doc) as EndpointRecord);
  }

  /** Inserts the endpoint and its address allocation (unique per network). */
  putEndpoint(e: EndpointRecord): void {
    this.db
      .prepare('INSERT INTO endpoints (id, network_id, sandbox_id, host_if, doc) VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc')
      .run(e.id, e.networkId, e.sandboxId, e.hostIfName, JSON.stringify(e));
    this.db.prepare('DELETE FROM ip_allocs WHERE endpoint_id = ?').run(e.id);
    if (e.ipv4) this.db.prepare('INSERT INTO ip_allocs (network_id, ip, endpoint_id) VALUES (?, ?, ?)').run(e.networkId, e.ipv4, e.id);
  }

  deleteEndpoint(id: string): void {
    this.db.prepare('DELETE FROM ip_allocs WHERE endpoint_id = ?').run(id);
    this.db.prepare('DELETE FROM endpoints WHERE id = ?').run(id);
  }

  /** Addresses in use on a network. */
  usedAddresses(networkId: string): Set<string> {
    const rows = this.db.prepare('SELECT ip FROM ip_allocs WHERE network_id = ?').all(networkId) as { ip: string }[];
    return new Set(rows.map((r) => r.ip));
  }
}
