/**
 * The embedded DNS server (Docker's 127.0.0.11 in every sandbox on a
 * user-defined network): a pure name table (registry), a forwarder to the
 * node's nameservers (upstream), the server that serves both inside
 * sandbox namespaces (server), and the redirect of 127.0.0.11:53 to the
 * server's port there (redirect).
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
export {
  createRedirect,
  dockerDnsRules,
  nftDnsRuleset,
  redirectForDataplane,
  IPT_OUTPUT_CHAIN,
  IPT_POSTROUTING_CHAIN,
  NFT_TABLE,
  REDIRECT_MODES,
  SANDBOX_LO,
  type Redirect,
  type RedirectMode,
  type RedirectTarget,
} from './redirect.js';
export { forward, MAX_UPSTREAMS, UPSTREAM_TIMEOUT_MS, type Attempt, type ForwardRequest, type ForwardResult, type Upstream } from './upstream.js';
