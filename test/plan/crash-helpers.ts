/**
 * Crash tests run the real CLI in a child process and kill it with SIGKILL: either the simulator kills it
 * right after its k-th sysfs write (VGPUCTL_SIM_CRASH_AFTER=k), or the test kills it after a random delay.
 *
 * The CLI is bundled from src/ with esbuild (vite's own dependency) into a private directory, so the
 * child always runs the code under test (a stale dist/ cannot make the tests pass or fail) and nothing in
 * the repository is rewritten while other tests read it.
 */
import { spawn } from 'node:child_process';
import { promises as fs, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import type { HostRoot } from '../../src/host/host-root.js';
import { isUuid } from '../../src/host/identifiers.js';
import { recomputeAllCapacity } from '../../src/simulator/kernel.js';
import { tempDir } from '../helpers/hosts.js';
import { definitionFiles, devices, exists, sim, type DeviceRow } from './plan-helpers.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const LOCK = '/run/vgpuctl/lock';
export const JOURNAL = '/var/lib/vgpuctl/apply-journal.json';

/** Bundles src/cli/bin.ts; returns the path of the runnable bin.js (profiles/ and fixtures/ next to it, as in the repo). */
export async function buildCli(): Promise<string> {
  const { build } = await import('esbuild');
  const dir = tempDir('vgpuctl-cli-');
  const bin = path.join(dir, 'dist/cli/bin.js');
  await build({ entryPoints: [path.join(REPO, 'src/cli/bin.ts')], bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile: bin, packages: 'external', logLevel: 'error' });
  // The code finds profiles/ and fixtures/ two levels above its own file, and its packages in node_modules.
  for (const name of ['profiles', 'fixtures', 'node_modules']) symlinkSync(path.join(REPO, name), path.join(dir, name));
  writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }\n');
  return bin;
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * `vgpuctl --root R --simulate apply -f PLAN ...` in a child process. `crashAfter`: the child kills itself
 * after that many sysfs writes. `killAfterMs`: the test kills it that long after `from`: its spawn, the
 * moment its apply holds the host lock, or the moment it wrote its intent journal (just before its first change).
 */
export function spawnApply(
  bin: string,
  host: HostRoot,
  args: string[],
  opts: { crashAfter?: number; killAfterMs?: number; from?: 'spawn' | 'lock' | 'journal' } = {},
): Promise<ChildResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('VGPUCTL_')) delete env[k];
  if (opts.crashAfter !== undefined) env['VGPUCTL_SIM_CRASH_AFTER'] = String(opts.crashAfter);
  const child = spawn(process.execPath, [bin, '--root', host.root, '--simulate', 'apply', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  let timer: NodeJS.Timeout | undefined;
  let poll: NodeJS.Timeout | undefined;
  const kill = () => child.kill('SIGKILL');
  if (opts.killAfterMs !== undefined) {
    if (opts.from === 'lock' || opts.from === 'journal') {
      const marker = host.path(opts.from === 'lock' ? LOCK : JOURNAL);
      poll = setInterval(() => {
        void exists(marker).then((there) => {
          if (there && poll) {
            clearInterval(poll);
            poll = undefined;
            timer = setTimeout(kill, opts.killAfterMs);
          }
        });
      }, 5);
    } else timer = setTimeout(kill, opts.killAfterMs);
  }
  // 'close' comes after the child has been reaped: its pid is free, so a lock it left is seen as stale.
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (poll) clearInterval(poll);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Counts sysfs writes a plan's apply would make (from --dry-run): the crash points k = 1..N. */
export async function sysfsWrites(host: HostRoot, args: string[]): Promise<number> {
  const r = await sim(host, 'apply', ...args, '--dry-run', '-o', 'json');
  expect(r.code, r.stderr).toBe(0);
  return r.json().actions.filter((a: { kind: string }) => a.kind === 'sysfs-write').length;
}

/**
 * After a crash: an ordinary apply (not killed) converges, and the host is sound — assert passes, lock and
 * journal are gone, every definition file is complete JSON under a UUID name, every planned device is
 * active and defined, nothing active that the plan does not hold (except `kept`, devices that were there
 * before and that the plan leaves alone), and a further apply has nothing to do.
 */
export async function recoverAndCheck(host: HostRoot, args: string[], kept: string[] = []): Promise<{ report: any; stderr: string; rows: DeviceRow[] }> {
  const r = await sim(host, 'apply', ...args, '-o', 'json');
  expect(r.code, `recovery apply failed: ${r.stderr}`).toBe(0);
  const report = r.json();

  const a = await sim(host, 'assert', ...args.filter((x) => x !== '--prune'));
  expect(a.code, `assert after recovery: ${a.stdout}${a.stderr}`).toBe(0);

  expect(await exists(host.path(LOCK)), 'stale lock left').toBe(false);
  expect(await exists(host.path(JOURNAL)), 'journal left').toBe(false);

  for (const [file, text] of await definitionFiles(host)) {
    expect(isUuid(path.basename(file)), `not a definition: ${file}`).toBe(true);
    let parsed: any;
    expect(() => (parsed = JSON.parse(text)), `${file} is not valid JSON: ${JSON.stringify(text)}`).not.toThrow();
    expect(Object.keys(parsed), file).toEqual(['mdev_type', 'start', 'attrs']);
  }

  const planned = new Map<string, any>(report.devices.map((d: any) => [d.uuid, d]));
  const rows = await devices(host);
  for (const [uuid, d] of planned) {
    const row = rows.find((x) => x.uuid === uuid);
    expect(row, `planned ${uuid} missing`).toMatchObject({ parent: d.parent, type: d.type, active: true, defined: true, autostart: d.autostart });
  }
  const strays = rows.filter((x) => x.active && !planned.has(x.uuid) && !kept.includes(x.uuid));
  expect(strays, 'active devices the plan does not hold').toEqual([]);

  const again = await sim(host, 'apply', ...args, '-o', 'json');
  expect(again.code).toBe(0);
  expect(again.json().changes).toEqual([]);
  return { report, stderr: r.stderr, rows };
}

/** A small deterministic PRNG (mulberry32), so a failing random run can be repeated. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function listTmpLitter(host: HostRoot): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (/\.tmp$|\.new$|\.stale\./.test(e.name)) out.push(path.relative(host.root, p));
    }
  };
  for (const d of ['/etc/mdevctl.d', '/run/vgpuctl', '/var/lib/vgpuctl']) await walk(host.path(d));
  return out;
}

/**
 * The simulator does the kernel's work inside the process that writes to sysfs, so a kill at a random
 * moment can stop it half-way: a device already removed (or made) while `available_instances` still says
 * what it said before, or an `available_instances` cut short while it was being rewritten. A real driver
 * shows neither: a sysfs store completes or fails as a whole, whatever happens to the writer. Before
 * recovering from a random kill, put the simulated kernel back in a state a real one could be in: every
 * NVIDIA type's capacity computed from the devices that exist (a no-op when the kill left it consistent).
 * Returns the attributes that were torn or stale.
 */
export async function settleSimulatedKernel(host: HostRoot): Promise<string[]> {
  const read = async (): Promise<Map<string, string>> => {
    const out = new Map<string, string>();
    const walk = async (dir: string): Promise<void> => {
      for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
        const p = path.join(dir, e.name);
        if (e.isDirectory() && !e.isSymbolicLink()) await walk(p);
        else if (e.name === 'available_instances') out.set(p, await fs.readFile(p, 'utf8'));
      }
    };
    await walk(host.path('/sys/devices'));
    return out;
  };
  const before = await read();
  for (const [p, v] of before) if (!/^\d+\n$/.test(v)) await fs.writeFile(p, '0\n'); // torn: the recompute rewrites it
  await recomputeAllCapacity(host);
  const after = await read();
  return [...before].filter(([p, v]) => after.get(p) !== v).map(([p]) => path.relative(host.root, p));
}
