/**
 * Fault injection for crash-consistency tests: with BPFNET_CRASH_AT=<point>
 * the agent SIGKILLs itself when it reaches that point, exactly like a
 * kill -9 there. Points are named where a change is half-made.
 */
export function crashPoint(name: string): void {
  if (process.env['BPFNET_CRASH_AT'] === name) process.kill(process.pid, 'SIGKILL');
}
