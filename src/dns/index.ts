/**
 * The embedded DNS server (Docker's 127.0.0.11 in every sandbox on a
 * user-defined network): a pure name table (registry), a forwarder to the
 * node's nameservers (upstream) and the server that serves both inside
 * sandbox namespaces (server).
 */
export { DnsRegistry, dnsNames, normalizeName, reverseToIpv4, shortId, type DnsEndpoint, type DnsSandbox } from './registry.js';
export {
  DnsServer,
  DNS_TTL,
  MAX_INFLIGHT,
  type AttachOptions,
  type DnsCounters,
  type DnsSandboxStats,
  type DnsServerOptions,
  type DnsStats,
} from './server.js';
export { forward, MAX_UPSTREAMS, UPSTREAM_TIMEOUT_MS, type Attempt, type ForwardRequest, type ForwardResult, type Upstream } from './upstream.js';
