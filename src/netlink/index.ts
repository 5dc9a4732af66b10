/**
 * bpfnet's rtnetlink layer: links, addresses, routes, neighbours and tc
 * (clsact + cls_bpf) in any network namespace, and the namespaces
 * themselves, through a small native addon (native/netlink.c) instead of a
 * process per step.
 */
export {
  Rtnl,
  checkName,
  describeRoute,
  type LinkRef,
  type DevRef,
  type LinkOptions,
  type VethOptions,
  type SetLinkOptions,
  type RouteSpec,
  type RouteFilter,
  type BpfFilterSpec,
} from './rtnl.js';
export { clsactParent, directionOfParent, tcHandle, type BpfFilter, type TcDirection } from './tc.js';
export { bpfObjGet, bpfProgGetFdById, bpfProgInfo, bpfProgInfoById, closeFd, withPinnedFd, type BpfProgInfo } from './bpf.js';
export { listenInNetns, adoptUdp, adoptTcp, type SocketType } from './sockets.js';
export { createNetns, deleteNetns, removeNetnsDir, sysctl, readSysctl, sysctlPath, netnsCookie } from './netns.js';
export type { Link, Addr, Route, Neigh } from './objects.js';
export { errnoName, errnoText, netlinkError } from './errors.js';
export { ADDON_PATH } from './native.js';
export type { RouteScope, RouteType } from './constants.js';
export { RTPROT_BOOT, RTPROT_KERNEL, RTPROT_STATIC, RT_TABLE_MAIN, RT_TABLE_LOCAL } from './constants.js';
