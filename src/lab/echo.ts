/**
 * Tiny TCP+UDP server for the lab, tests and benchmarks. Each reply says who
 * the server saw as the client, so source-IP preservation is visible.
 * Usage: node echo.js PORT [NAME] [ADDR]   (prints "ready" once both sockets listen;
 * ADDR 0.0.0.0 by default: a UDP reply leaves from the route's preferred
 * source unless the socket is bound to the address it was asked on)
 */
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';

const port = Number(process.argv[2] ?? 80);
const name = process.argv[3] ?? 'container';
const addr = process.argv[4] ?? '0.0.0.0';
let ready = 0;
const up = () => {
  if (++ready === 2) process.stdout.write('ready\n');
};

createServer((sock) => {
  sock.once('data', (d) => {
    const line = (x: Buffer) => `${name} tcp/${port} saw ${sock.remoteAddress}:${sock.remotePort}: ${x.toString().trim()}\n`;
    // "hold": a long-lived connection answering every chunk (restart tests).
    if (d.toString().startsWith('hold')) {
      sock.write(line(d));
      sock.on('data', (x) => sock.write(line(x)));
      return;
    }
    sock.end(line(d));
  });
  sock.on('error', () => undefined);
}).listen(port, addr, up);

const udp = createSocket('udp4');
udp.on('message', (msg, from) => {
  udp.send(`${name} udp/${port} saw ${from.address}:${from.port}: ${msg.toString().trim()}\n`, from.port, from.address);
});
udp.bind(port, addr, up);
