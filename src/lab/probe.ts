/**
 * One request through a published port: `node probe.js tcp|udp HOST PORT [MSG]`.
 * Prints the reply; exits 1 when none arrives within 3 s.
 */
import { probeOnce } from './multiprobe.js';

const [proto, host = '', portStr = '0', msg = 'ping'] = process.argv.slice(2);
const r = await probeOnce({ proto: proto === 'udp' ? 'udp' : 'tcp', host, port: Number(portStr), msg, timeout: 3000 });
if (r.ok) {
  process.stdout.write(`${r.reply}\n`);
  process.exit(0);
}
process.stderr.write(r.error === 'timeout' ? `no ${proto} reply from ${host}:${portStr} within 3 s\n` : `${proto} ${host}:${portStr}: ${r.error}\n`);
process.exit(1);
