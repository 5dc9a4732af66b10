/**
 * The plugin's connection to `bpfnet agent`: the plugin is a thin client,
 * the agent owns IPAM, the veth, the published ports and the dataplane.
 */
import { Client } from '../api/client.js';
import type { Method, Req, Res } from '../api/methods.js';
import { BpfnetError } from '../util/errors.js';

export interface AgentApi {
  call<M extends Method>(method: M, req: Partial<Req<M>>): Promise<Res<M>>;
  close(): void;
}

export type Connect = (socketPath: string) => Promise<AgentApi>;

/** Connects over the unix socket; E_UNAVAILABLE when nothing answers there. */
export const connectAgent: Connect = async (socketPath) => {
  const c = await Client.connect(`unix://${socketPath}`, 3000);
  return {
    call: async (m, req) => (await c.call(m, req)).value,
    close: () => c.close(),
  };
};

export const isNotFound = (e: unknown): boolean => e instanceof BpfnetError && e.code === 'E_NOT_FOUND';
export const isUnavailable = (e: unknown): boolean => e instanceof BpfnetError && e.code === 'E_UNAVAILABLE';
