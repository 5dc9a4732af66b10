/** The README's first command: the lab works, twice in a row, and leaves nothing behind. */
import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { runLab } from '../../src/lab/lab.js';
import { run } from '../../src/util/exec.js';

describe('bpfnet lab', () => {
  it('publishes a TCP and a UDP port, gets replies with the client address preserved, and cleans up; twice', async () => {
    for (let i = 0; i < 2; i++) {
      const a = await runLab();
      expect(a.exchanges.map((e) => [e.proto, e.sourcePreserved])).toEqual([['tcp', true], ['udp', true]]);
      expect(a.attachments.map((t) => t.progName).sort()).toEqual(['from_container', 'from_uplink']);
      expect(a.firewall).toEqual({ iptablesRules: 0, nftRules: 0 });
      expect(a.metrics['dnat']).toBeDefined();
      expect(existsSync(a.bpffsRoot)).toBe(false);
      const { stdout } = await run('ip', ['netns', 'list']);
      expect(stdout).not.toContain(a.topology.node);
    }
  });
});
