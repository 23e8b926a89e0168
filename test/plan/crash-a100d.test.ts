/**
 * kill -9 during apply on seed 002's SR-IOV A100D host. The plan turns the first GPU from 3 x A100D-2-20C +
 * 1 x A100D-1-10C into 2 x A100D-3-40C (MIG 3g.40gb, one per VF) and keeps the second GPU's layout, started
 * at boot. With --prune, apply removes and undefines the first GPU's four vGPUs, switches the second GPU's
 * four definitions from StackHPC's `manual` to `auto`, then creates and defines two vGPUs on free VFs.
 * The child is killed after each of its sysfs writes, then at random moments; after each kill, a normal
 * apply must converge and leave a sound host, identical to the host a clean apply makes.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { HostRoot } from '../../src/host/host-root.js';
import { hostFrom } from '../helpers/hosts.js';
import { buildCli, JOURNAL, listTmpLitter, LOCK, prng, settleTornMdevs, spawnCli } from '../helpers/hardening.js';
import { cloneHost, devices, exists, recoverAndCheck, sim, sysfsWrites, writePlan, type DeviceRow } from './plan-helpers.js';

const PLAN = writePlan(`version: 1
defaults: { autostart: true }
gpus:
  - { select: { pf: "0000:21:00.0" }, type: nvidia-701, count: 2 }
  - { select: { pf: "0000:81:00.0" }, type: nvidia-700, count: 3 }
  - { select: { pf: "0000:81:00.0" }, type: nvidia-699, count: 1 }
`);
const ARGS = ['-f', PLAN, '--prune'];
const RANDOM_RUNS = 4;
/** Its sysfs writes (4 removes, 2 creates), checked against --dry-run below. */
const N = 6;
const SLOW = 180_000;
const FIRST_GPU_BEFORE = ['5c630867-a673-5d75-aa31-a499e6c7cb19', 'eaa6e018-308e-58e2-b351-aadbcf01f5a8', 'da3566e4-df16-5aee-962c-bf1d02ac624b', 'e14355f9-33b9-590e-b65a-876490a15407'];

let bin: string;
let base: HostRoot;
let reference: DeviceRow[];
let writes: number;
const runs: string[] = [];

beforeAll(async () => {
  [bin, base] = await Promise.all([buildCli(), hostFrom('a100d-sriov-seed002')]);
  writes = await sysfsWrites(base, ARGS);
  const ref = cloneHost(base);
  const r = await sim(ref, 'apply', ...ARGS, '-o', 'json');
  expect(r.code, r.stderr).toBe(0);
  const kinds = r.json().changes.map((c: { action: string }) => c.action);
  expect(kinds.filter((k: string) => k === 'remove')).toHaveLength(4);
  expect(kinds.filter((k: string) => k === 'undefine')).toHaveLength(4);
  expect(kinds.filter((k: string) => k === 'create')).toHaveLength(2);
  expect(kinds.filter((k: string) => k === 'define')).toHaveLength(2);
  expect(kinds.filter((k: string) => k === 'set-start')).toHaveLength(4);
  reference = await devices(ref);
}, SLOW);

describe('apply killed with SIGKILL on the SR-IOV A100D host (prune 4, set-start 4, create 2)', () => {
  it('has a write sequence of 4 removes and 2 creates, and a clean apply reaches the planned host', () => {
    expect(writes).toBe(N);
    expect(reference.filter((d) => d.parent.startsWith('0000:21:')).map((d) => [d.parent, d.type])).toEqual([
      ['0000:21:00.4', 'nvidia-701'],
      ['0000:21:00.5', 'nvidia-701'],
    ]);
    expect(reference.some((d) => FIRST_GPU_BEFORE.includes(d.uuid))).toBe(false);
    expect(reference.every((d) => d.active && d.defined && d.autostart)).toBe(true);
  });

  for (let k = 1; k <= N; k++) {
    it(`recovers from a crash after sysfs write ${k}`, async () => {
      const host = cloneHost(base);
      const child = await spawnCli(bin, host, ['apply', ...ARGS], { crashAfter: k });
      expect(child.signal, `k=${k}: ${child.stderr}`).toBe('SIGKILL');
      expect(await exists(host.path(LOCK))).toBe(true);
      expect(await exists(host.path(JOURNAL))).toBe(true);
      const { stderr, rows } = await recoverAndCheck(host, ARGS);
      expect(stderr).toMatch(/previous apply .* was interrupted/);
      expect(rows, `k=${k}`).toEqual(reference);
      expect(await listTmpLitter(host), `k=${k}`).toEqual([]);
      runs.push(`crash-after=${k}`);
    }, SLOW);
  }

  // Reading 40 VF parents takes this host's apply longer than 400 ms, so the random delay runs from the
  // moment apply wrote its intent journal, just before its first change: the kills land in the write sequence.
  const rand = prng(0x2545f491);
  let torn = 0;
  for (let i = 0; i < RANDOM_RUNS; i++) {
    const delay = Math.floor(rand() * 401);
    it(`recovers from a kill ${delay} ms after apply's first change began`, async () => {
      const host = cloneHost(base);
      const child = await spawnCli(bin, host, ['apply', ...ARGS], { killAfterMs: delay, from: 'journal' });
      const where = child.signal === null ? 'after' : (await exists(host.path(JOURNAL))) ? 'during' : 'before';
      if ((await settleTornMdevs(host)).length > 0) torn++;
      const { rows } = await recoverAndCheck(host, ARGS);
      expect(rows, `run ${i} (kill ${delay} ms after the journal, ${where})`).toEqual(reference);
      expect(await listTmpLitter(host)).toEqual([]);
      runs.push(`kill ${delay}ms after journal (${where})`);
    }, SLOW);
  }

  it('counts its crash runs', () => {
    console.log(`A100D random kills: the simulated kernel was left torn or stale by ${torn} of ${RANDOM_RUNS}`);
    console.log(`crash runs on a100d-sriov-seed002: ${runs.length} (${runs.join(', ')})`);
    expect(runs.length).toBe(N + RANDOM_RUNS);
  });
});
