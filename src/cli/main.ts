#!/usr/bin/env node
/**
 * The bpfnet command line. Every command has --help; commands that scripts
 * read take --json; errors print their stable code and exit non-zero.
 */
import { Command } from 'commander';
import { runDoctor } from '../doctor/doctor.js';
import { formatDoctor } from '../doctor/format.js';
import { cleanLab, runLab, type LabAccount } from '../lab/lab.js';
import { bpfCommand } from './bpf.js';
import { agentCommand, infoCommand } from './agent.js';
import { networkCommand } from './network.js';
import { sandboxCommand, runCommand, execCommand } from './sandbox.js';
import { portsCommand, portCommand } from './ports.js';
import { statsCommand } from './stats.js';
import { json } from './api.js';
import { BpfnetError } from '../util/errors.js';
import { DEFAULT_BPFFS_ROOT } from '../util/paths.js';
import { VERSION } from '../util/version.js';


const program = new Command()
  .name('bpfnet')
  .description("Container networking with Docker's model and an eBPF dataplane")
  .version(VERSION)
  .option('-H, --host <url>', 'agent socket, unix:///path (default: $BPFNET_HOST or unix:///run/bpfnet/bpfnet.sock)')
  .enablePositionalOptions()
  .showHelpAfterError();

program
  .command('doctor')
  .description('check what this kernel and machine support, and which dataplane bpfnet would use')
  .option('--json', 'print the report as JSON')
  .option('--bpffs-root <path>', 'bpffs root the agent would use', DEFAULT_BPFFS_ROOT)
  .action(async (o: { json?: boolean; bpffsRoot: string }) => {
    const report = await runDoctor({ bpffsRoot: o.bpffsRoot });
    process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatDoctor(report)}\n`);
    if (report.dataplane.selected === 'none') process.exitCode = 1;
  });

program
  .command('lab')
  .description('bring up a throw-away node, client and container in namespaces, publish ports through eBPF and send a request through each')
  .option('--json', 'print the account as JSON')
  .option('--keep', 'leave the namespaces and pins in place for poking around (remove with `bpfnet lab --clean`)')
  .option('--clean', 'remove what earlier `lab --keep` runs left behind, then exit')
  .action(async (o: { json?: boolean; keep?: boolean; clean?: boolean }) => {
    if (o.clean) {
      const removed = await cleanLab();
      process.stdout.write(o.json ? `${JSON.stringify({ removed })}\n` : `removed ${removed.length} lab object(s)${removed.length ? `: ${removed.join(', ')}` : ''}\n`);
      return;
    }
    const log = o.json ? undefined : (l: string) => process.stdout.write(`${l}\n`);
    const account = await runLab({ keep: o.keep ?? false, ...(log ? { log } : {}) });
    process.stdout.write(o.json ? json(account) : formatLab(account));
    if (!account.exchanges.every((e) => e.sourcePreserved)) process.exitCode = 1;
  });

program.addCommand(agentCommand());
program.addCommand(infoCommand());
program.addCommand(networkCommand());
program.addCommand(sandboxCommand());
program.addCommand(runCommand());
program.addCommand(execCommand());
program.addCommand(bpfCommand());
program.addCommand(portsCommand());
program.addCommand(portCommand());
program.addCommand(statsCommand());

function formatLab(a: LabAccount): string {
  const lines: string[] = ['', 'What happened', '-------------'];
  lines.push(`namespaces      client ${a.topology.client}, node ${a.topology.node}, container ${a.topology.container} (${a.topology.containerIp})`);
  for (const p of a.published) lines.push(`published       ${p.frontend.padEnd(24)} -> ${p.backend}`);
  for (const t of a.attachments) lines.push(`attached        ${t.progName.padEnd(24)} id ${t.progId} on ${t.dev} tc ${t.direction} (pref ${t.pref})`);
  for (const m of a.mapEntries) lines.push(`map entry       ${m.map.padEnd(16)} ${JSON.stringify(m.key, big)} -> ${JSON.stringify(m.value, big)}`);
  for (const e of a.exchanges) {
    lines.push(`${e.proto} exchange    to ${e.to}: "${e.reply}"`);
    lines.push(`                source seen by the server: ${e.sourceSeen} (${e.sourcePreserved ? 'client address preserved' : 'NOT the client address'})`);
  }
  for (const [k, v] of Object.entries(a.metrics)) lines.push(`counter         ${k.padEnd(16)} ${v.packets} packets, ${v.bytes} bytes`);
  lines.push(`node firewall   ${a.firewall.iptablesRules} iptables rules, ${a.firewall.nftRules} nft rules (the dataplane needs none)`);
  lines.push(a.kept ? `kept            namespaces and ${a.bpffsRoot} left in place: \`bpfnet lab --clean\` removes them` : 'cleaned up      namespaces, programs and pins removed');
  return `${lines.join('\n')}\n`;
}

function big(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}

program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof BpfnetError) {
    process.stderr.write(`bpfnet: ${e.message} [${e.code}]\n`);
  } else {
    process.stderr.write(`bpfnet: ${(e as Error).stack ?? String(e)}\n`);
  }
  process.exitCode = 1;
});
