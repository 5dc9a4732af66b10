/**
 * One long-lived TCP connection driven over stdio, for tests that must see a
 * flow survive something (an agent restart, a publish of another port):
 *   node holdclient.js HOST PORT
 * Sends "hold", then every stdin line; prints every reply line; exits 1 when
 * the connection fails or closes.
 */
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

const [host = '', port = '0'] = process.argv.slice(2);
const s = connect(Number(port), host, () => s.write('hold\n'));
s.setEncoding('utf8');
// Lines wait for the answer to "hold": sent together they would arrive in
// one segment and be answered as one.
let held = false;
const pending: string[] = [];
s.on('data', (d: string) => {
  process.stdout.write(d);
  if (!held) {
    held = true;
    for (const l of pending.splice(0)) s.write(`${l}\n`);
  }
});
s.on('error', (e) => {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
});
s.on('close', () => process.exit(1));
createInterface({ input: process.stdin }).on('line', (l) => (held ? s.write(`${l}\n`) : pending.push(l)));
