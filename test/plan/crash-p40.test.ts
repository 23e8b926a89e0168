/**
 * kill -9 during apply on the seed-004 P40: the host carries 4 x P40-6Q (defined, auto) and the plan wants
 * 2 x P40-12C with --prune, so apply removes and undefines four devices, then creates and defines two.
 * The child is killed after each of its sysfs writes in turn (and once after the last, when it finishes
 * anyway), then at random moments; after each, a normal apply must converge and leave a sound host.
 */
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import type { HostRoot } from '../../src/host/host-root.js';
import { hostFrom } from '../helpers/hosts.js';
import { buildCli, JOURNAL, listTmpLitter, LOCK, prng, settleTornMdevs, spawnCli } from '../helpers/hardening.js';
import { cloneHost, devices, exists, recoverAndCheck, sim, sysfsWrites, writePlan, type DeviceRow } from './plan-helpers.js';

const PLAN = writePlan(`version: 1
gpus:
  - select: { address: "0000:82:00.0" }
    profile: P40-12C
    count: 2
`);
const ARGS = ['-f', PLAN, '--prune'];
/** Its sysfs writes (4 removes, 2 creates), checked against --dry-run below; k runs to N+1. */
const N = 6;
const SLOW = 120_000;
// Random kills: a few timed from the spawn (under load Node's own start-up takes most of 400 ms, so these
// mostly land before apply begins), the rest timed from the moment the child's apply holds the host lock.
const RANDOM_FROM_SPAWN = 4;
const RANDOM_FROM_LOCK = 10;
const RANDOM_RUNS = RANDOM_FROM_SPAWN + RANDOM_FROM_LOCK;

let bin: string;
let base: HostRoot;
let reference: DeviceRow[];
let writes: number;
const runs: string[] = [];

beforeAll(async () => {
  [bin, base] = await Promise.all([buildCli(), hostFrom('p40-seed004')]);
  const made = await sim(base, 'create', '--profile', 'P40-6Q', '--count', '4', '--define', '--auto');
  expect(made.code, made.stderr).toBe(0);
  writes = await sysfsWrites(base, ARGS);
  const ref = cloneHost(base);
  expect((await sim(ref, 'apply', ...ARGS)).code).toBe(0);
  reference = await devices(ref);
  expect(reference.map((d) => d.type)).toEqual(['nvidia-286', 'nvidia-286']);
}, SLOW);

describe('apply killed with SIGKILL on the P40 (prune 4, create 2)', () => {
  it('has a write sequence of 4 removes and 2 creates', () => {
    expect(writes).toBe(N);
  });

  for (let k = 1; k <= N + 1; k++) {
    it(`recovers from a crash after sysfs write ${k}${k > N ? ' (after the last one: apply completes)' : ''}`, async () => {
      const host = cloneHost(base);
      const child = await spawnCli(bin, host, ['apply', ...ARGS], { crashAfter: k });
      if (k <= N) {
        // It really died mid-apply: killed by the signal, with its lock and intent journal left behind.
        expect(child.signal, `k=${k}: ${child.stderr}`).toBe('SIGKILL');
        expect(await exists(host.path(LOCK))).toBe(true);
        expect(await exists(host.path(JOURNAL))).toBe(true);
      } else {
        expect(child.code, child.stderr).toBe(0);
      }
      const { stderr, rows } = await recoverAndCheck(host, ARGS);
      if (k <= N) expect(stderr).toMatch(/took over the lock of vgpuctl pid \d+.*\n.*previous apply .* was interrupted/);
      expect(rows, `k=${k}`).toEqual(reference);
      expect(await listTmpLitter(host), `k=${k}`).toEqual([]);
      runs.push(`crash-after=${k}`);
    }, SLOW);
  }

  const rand = prng(0x9e3779b9);
  const landed = { before: 0, during: 0, after: 0 };
  let tornKernel = 0;
  for (let i = 0; i < RANDOM_RUNS; i++) {
    const delay = Math.floor(rand() * 401);
    const from = i < RANDOM_FROM_SPAWN ? 'spawn' : 'lock';
    it(`recovers from a kill ${delay} ms after ${from === 'spawn' ? 'spawn' : 'apply took the lock'}`, async () => {
      const host = cloneHost(base);
      const child = await spawnCli(bin, host, ['apply', ...ARGS], { killAfterMs: delay, from });
      const journal = await exists(host.path(JOURNAL));
      const where = child.signal === null ? 'after' : journal ? 'during' : 'before';
      landed[where]++;
      if ((await settleTornMdevs(host)).length > 0) tornKernel++;
      const { rows } = await recoverAndCheck(host, ARGS);
      expect(rows, `run ${i} (kill ${delay} ms after ${from}, ${where})`).toEqual(reference);
      expect(await listTmpLitter(host), `run ${i} (kill ${delay} ms after ${from})`).toEqual([]);
      runs.push(`kill ${delay}ms after ${from} (${where})`);
    }, SLOW);
  }

  it('after a crash, a different plan takes back what the interrupted run made (without --prune)', async () => {
    // The interrupted run created its first P40-12C and died; the operator now wants a P40-6Q instead.
    // P40 allows one type per GPU, so the half-made P40-12C must go first: the journal says it is apply's own.
    const fresh = cloneHost(base);
    const clean = await sim(fresh, 'apply', ...ARGS); // the 4 x P40-6Q go, as before
    expect(clean.code).toBe(0);
    const child = await spawnCli(bin, fresh, ['apply', '-f', writePlan('version: 1\ngpus:\n  - { select: { address: "0000:82:00.0" }, profile: P40-24C, count: 1 }\n'), '--prune'], { crashAfter: 3 });
    expect(child.signal).toBe('SIGKILL'); // removed both P40-12C, created the P40-24C, died before defining it
    const other = writePlan('version: 1\ngpus:\n  - { select: { address: "0000:82:00.0" }, profile: P40-6Q, count: 2 }\n');
    const r = await sim(fresh, 'apply', '-f', other, '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().interrupted_previous).toBe(true);
    expect(r.json().changes.filter((c: { action: string }) => c.action === 'remove').map((c: { type: string }) => c.type)).toEqual(['nvidia-287']);
    expect((await devices(fresh)).map((d) => [d.type, d.active, d.defined])).toEqual([
      ['nvidia-50', true, true],
      ['nvidia-50', true, true],
    ]);
    expect(await exists(fresh.path(JOURNAL))).toBe(false);
    expect((await sim(fresh, 'assert', '-f', other)).code).toBe(0);
    runs.push('crash-after=3, recovered with another plan');
  }, SLOW);

  it('takes away the temporary files a killed run left (definition, journal, lock), never those of a live process', async () => {
    const host = cloneHost(base);
    // A pid that is free: a process that has run and been reaped.
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const live = process.ppid;
    const litter = [
      `/etc/mdevctl.d/0000:82:00.0/.e0fab5c5-8141-577d-89bd-c532d1726628.vgpuctl-${dead}.tmp`,
      `/var/lib/vgpuctl/.apply-journal.json.vgpuctl-${dead}.tmp`,
      `/run/vgpuctl/lock.${dead}.0a1b2c3d4e5f.new`,
    ];
    const kept = `/etc/mdevctl.d/0000:82:00.0/.e31986fd-37de-572e-be69-bd7c6dc39b12.vgpuctl-${live}.tmp`;
    for (const f of [...litter, kept]) {
      await fs.mkdir(path.dirname(host.path(f)), { recursive: true });
      await fs.writeFile(host.path(f), '{\n  "mdev_ty');
    }
    // What an operator sees meanwhile: a definition directory entry that is not a definition.
    const listed = await cli(['--root', host.root, 'list', '--all', '-o', 'json']);
    expect(listed.json().warnings.map((w: { message: string }) => w.message).join('\n')).toMatch(/vgpuctl-\d+\.tmp: file name is not a UUID/);

    const r = await sim(host, 'apply', ...ARGS);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/removed 3 temporary file\(s\) an interrupted vgpuctl left behind/);
    for (const f of litter) expect(await exists(host.path(f)), f).toBe(false);
    expect(await exists(host.path(kept))).toBe(true);
    await fs.rm(host.path(kept));
    await recoverAndCheck(host, ARGS);
  });

  it('counts its crash runs', () => {
    console.log(`P40 random kills: ${JSON.stringify(landed)} (before the first change / during apply / after it finished); the simulated kernel was left torn or stale by ${tornKernel}`);
    console.log(`crash runs on p40-seed004: ${runs.length} (${runs.join(', ')})`);
    expect(runs.length).toBe(N + 1 + RANDOM_RUNS + 1);
  });
});
