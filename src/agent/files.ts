/**
 * A sandbox's /etc/hosts, /etc/hostname and /etc/resolv.conf, kept under the
 * state dir and bind-mounted over /etc by `bpfnet run`/`exec`. Rewritten in
 * place (not renamed) so processes that already have them mounted see changes.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderHostname, renderHosts, renderResolvConf, resolvModeFor } from '../model/sandboxfiles.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../model/types.js';
import { sandboxFilesDir, type AgentConfig } from './config.js';


export function writeSandboxFiles(cfg: AgentConfig, sb: SandboxRecord, eps: EndpointRecord[], nets: NetworkRecord[], hostResolvConf: string): string {
  const dir = sandboxFilesDir(cfg, sb.id);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  // User-defined networks: nameserver 127.0.0.11 (the agent's embedded DNS),
  // options ndots:0; without it, the default bridge's file (host's minus loopback).
  let mode = resolvModeFor(sb.mode, nets);
  if (mode === 'internal' && !cfg.embeddedDns) mode = 'legacy';
  writeFileSync(join(dir, 'hostname'), renderHostname(sb.hostname));
  writeFileSync(join(dir, 'hosts'), renderHosts({ hostname: sb.hostname, addresses: eps.map((e) => e.ipv4), ipv6: true }));
  writeFileSync(join(dir, 'resolv.conf'), renderResolvConf({ mode, hostResolvConf, ...(sb.dns.length ? { dns: sb.dns } : {}) }));
  return dir;
}

export function removeSandboxFiles(cfg: AgentConfig, sandboxId: string): void {
  rmSync(sandboxFilesDir(cfg, sandboxId), { recursive: true, force: true });
}
