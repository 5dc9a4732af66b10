/**
 * Addresses shared by the BPF table tests. 192.0.2.0/24: clients (each file
 * picks its own); 198.18.0.0/24: node addresses; 198.19.0.0/24: containers.
 */
import { IPPROTO_TCP, IPPROTO_UDP } from './packet.js';

export const NODE_IP = '198.18.0.1';
export const NODE_IP2 = '198.18.0.2';
export const NODE_MAC = '02:00:00:00:0e:01';
export const BACKEND = '198.19.0.2';
export const ANY = '0.0.0.0';
export const tcp = IPPROTO_TCP;
export const udp = IPPROTO_UDP;
