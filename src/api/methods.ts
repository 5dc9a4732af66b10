/** Every API method with its request and response message. */
import type { Messages } from './generated/types.js';

export const METHODS = {
  Info: { req: 'Empty', res: 'InfoResponse' },
  NetworkCreate: { req: 'NetworkCreateRequest', res: 'Network' },
  NetworkList: { req: 'Empty', res: 'NetworkList' },
  NetworkInspect: { req: 'Ref', res: 'NetworkDetail' },
  NetworkRemove: { req: 'Ref', res: 'Removed' },
  NetworkPrune: { req: 'Empty', res: 'Removed' },
  NetworkConnect: { req: 'NetworkConnectRequest', res: 'Endpoint' },
  NetworkDisconnect: { req: 'NetworkDisconnectRequest', res: 'Empty' },
  SandboxCreate: { req: 'SandboxCreateRequest', res: 'SandboxDetail' },
  SandboxList: { req: 'Empty', res: 'SandboxList' },
  SandboxInspect: { req: 'Ref', res: 'SandboxDetail' },
  SandboxRemove: { req: 'Ref', res: 'Removed' },
  PortList: { req: 'PortListRequest', res: 'PortList' },
  PortPublish: { req: 'PortPublishRequest', res: 'PortList' },
  PortUnpublish: { req: 'PortUnpublishRequest', res: 'PortList' },
  Counters: { req: 'Empty', res: 'Counters' },
} as const satisfies Record<string, { req: keyof Messages; res: keyof Messages }>;

export type Method = keyof typeof METHODS;
export type Req<M extends Method> = Messages[(typeof METHODS)[M]['req']];
export type Res<M extends Method> = Messages[(typeof METHODS)[M]['res']];

export function isMethod(m: string): m is Method {
  return Object.prototype.hasOwnProperty.call(METHODS, m);
}
