/**
 * One request through a published port: `node probe.js tcp|udp HOST PORT [MSG]`.
 * Prints the reply; exits 1 when none arrives within 3 s.
 */
import { connect } from 'node:net';
import { createSocket } from 'node:dgram';

const [proto, host = '', portStr = '0', msg = 'ping'] = process.argv.slice(2);
const port = Number(portStr);
const timer = setTimeout(() => {
  process.stderr.write(`no ${proto} reply from ${host}:${port} within 3 s\n`);
  process.exit(1);
}, 3000);
const done = (reply: string) => {
  clearTimeout(timer);
  process.stdout.write(reply.endsWith('\n') ? reply : `${reply}\n`);
  process.exit(0);
};

if (proto === 'tcp') {
  const chunks: Buffer[] = [];
  const s = connect(port, host, () => s.write(msg));
  s.on('data', (d) => chunks.push(d));
  s.on('end', () => done(Buffer.concat(chunks).toString()));
  s.on('error', (e) => {
    process.stderr.write(`tcp ${host}:${port}: ${e.message}\n`);
    process.exit(1);
  });
} else {
  // Connected: the kernel drops replies from any other address or port, so a
  // reply that escaped reverse translation times out instead of passing.
  const s = createSocket('udp4');
  s.on('message', (d) => done(d.toString()));
  s.connect(port, host, () => s.send(msg));
}
