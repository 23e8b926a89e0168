/** The real mdevctl as an oracle, run inside a host tree (private mount namespace + chroot). */
import { HostRoot } from '../../src/host/host-root.js';
import { runMdevctl } from '../../src/host/mdevctl-runner.js';

export async function mdevctl(root: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await runMdevctl(new HostRoot(root), args);
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

export async function mdevctlJson(root: string, ...args: string[]): Promise<any> {
  const r = await mdevctl(root, ...args);
  if (r.code !== 0) throw new Error(`mdevctl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** mdevctl's `[{parent: [{type|uuid: {...}}]}]` as `{parent: {key: {...}}}`. */
export function flattenDump(dump: Array<Record<string, Array<Record<string, unknown>>>>): Record<string, Record<string, any>> {
  const out: Record<string, Record<string, any>> = {};
  for (const parents of dump) {
    for (const [parent, children] of Object.entries(parents)) {
      out[parent] ??= {};
      for (const child of children) Object.assign(out[parent]!, child);
    }
  }
  return out;
}
