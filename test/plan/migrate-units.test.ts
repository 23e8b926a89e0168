/**
 * migrate-units turns what a host already has (mdevctl definitions, StackHPC's nvidia-mdev@UUID.service
 * units) into a plan that keeps every device and UUID. On seed 002's host the definitions say `manual` but
 * each UUID's unit is enabled, so the plan starts them at boot (autostart true); applying it switches the
 * definitions to auto and touches no device, and assert then passes.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import type { HostRoot } from '../../src/host/host-root.js';
import { hostFrom, snapshotTree, tempDir } from '../helpers/hosts.js';
import { SEED002_UUIDS } from '../helpers/seed002.js';
import { activeUuids, cloneHost, devices, sim, treeDiff } from './plan-helpers.js';

const SEED002_SORTED = [...SEED002_UUIDS].sort();

/** Laying out and scanning the SR-IOV host (40 VFs) is slow on a busy machine. */
const SLOW = 180_000;

let a100: HostRoot;
let p40: HostRoot;
let leftovers: HostRoot;
beforeAll(async () => {
  [a100, p40, leftovers] = await Promise.all([hostFrom('a100d-sriov-seed002'), hostFrom('p40-seed004'), hostFrom('leftovers')]);
}, SLOW);

describe('migrate-units', () => {
  it('on seed 002: a plan that keeps all eight UUIDs, applies, and then asserts', async () => {
    const host = cloneHost(a100);
    const before = await devices(host);
    expect(before.map((d) => d.uuid).sort()).toEqual(SEED002_SORTED);
    expect(before.every((d) => d.active && d.defined && !d.autostart)).toBe(true); // StackHPC's `start: manual`

    const file = path.join(tempDir(), 'plan.yaml');
    const snap = await snapshotTree(host.root);
    const m = await sim(host, 'migrate-units', '--write', file);
    expect(m.code, m.stderr).toBe(0);
    expect(m.stdout).toMatch(/wrote .*plan\.yaml \(4 entries\)/);
    // Writing the plan changes nothing on the host, and --write never overwrites.
    expect(treeDiff(snap, await snapshotTree(host.root))).toEqual([]);
    expect((await sim(host, 'migrate-units', '--write', file)).code).toBe(1);

    const plan = parse(await fs.readFile(file, 'utf8'));
    expect(plan.version).toBe(1);
    expect(plan.gpus.map((g: any) => [g.select.pf, g.type, g.count, g.autostart])).toEqual([
      ['0000:21:00.0', 'nvidia-699', 1, true],
      ['0000:21:00.0', 'nvidia-700', 3, true],
      ['0000:81:00.0', 'nvidia-699', 1, true],
      ['0000:81:00.0', 'nvidia-700', 3, true],
    ]);
    expect(plan.gpus.flatMap((g: any) => g.uuids).sort()).toEqual(SEED002_SORTED);
    const units = (await sim(host, 'migrate-units', '-o', 'json')).json().units;
    expect(units).toHaveLength(16); // 8 unit files + 8 multi-user.target.wants links

    const differs = await sim(host, 'assert', '-f', file, '-o', 'json');
    expect(differs.code).toBe(1);
    expect(differs.json().differences.map((d: any) => d.action)).toEqual(Array(8).fill('set-start'));

    const r = await sim(host, 'apply', '-f', file, '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().changes.every((c: any) => c.action === 'set-start')).toBe(true);
    expect(r.json().unplanned).toEqual([]);

    expect((await sim(host, 'assert', '-f', file)).code).toBe(0);
    expect(await activeUuids(host)).toEqual(SEED002_SORTED);
    const after = await devices(host);
    expect(after.map(({ uuid, parent, type }) => ({ uuid, parent, type }))).toEqual(before.map(({ uuid, parent, type }) => ({ uuid, parent, type })));
    expect(after.every((d) => d.active && d.defined && d.autostart)).toBe(true);
    // And idempotent.
    expect((await sim(host, 'apply', '-f', file, '-o', 'json')).json().changed).toBe(false);
  }, SLOW);

  it('on the leftovers host: definitions whose parent is gone or whose type the GPU lacks are left out with a reason; the rest asserts', async () => {
    const host = cloneHost(leftovers);
    const m = await sim(host, 'migrate-units', '-o', 'json');
    expect(m.code, m.stderr).toBe(0);
    const out = m.json();
    expect(out.left_out.map((l: any) => [l.uuid, l.reason]).sort()).toEqual([
      ['69dd62f7-7825-4dc6-89a2-be4c9bcea5bc', 'its parent is not present on this host'],
      ['98198e75-9728-42dc-96c3-87eefe76a96d', 'its parent is not present on this host'],
      ['d5603837-d2d2-44e5-9e5b-1395873a6579', '0000:82:00.0 does not offer type nvidia-999'],
    ]);
    expect(out.plan.gpus).toEqual([
      {
        select: { address: '0000:82:00.0' },
        type: 'nvidia-50',
        count: 2,
        autostart: true,
        uuids: ['334855e2-079b-11ee-9fc9-83e0dccb6713', '33485650-079b-11ee-9fca-8f6415d2734c'],
      },
    ]);
    const file = path.join(tempDir(), 'plan.yaml');
    expect((await sim(host, 'migrate-units', '--write', file)).code).toBe(0);
    const r = await sim(host, 'apply', '-f', file, '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().changes).toEqual([{ action: 'start', uuid: '33485650-079b-11ee-9fca-8f6415d2734c', parent: '0000:82:00.0', type: 'nvidia-50' }]);
    expect((await sim(host, 'assert', '-f', file)).code).toBe(0);
  });

  it('devices of one type on one GPU with different start modes become one entry that applies', async () => {
    const host = cloneHost(p40);
    const auto = (await sim(host, 'create', '--profile', 'P40-6Q', '--define', '--auto')).stdout.trim();
    const manual = (await sim(host, 'create', '--profile', 'P40-6Q', '--define', '--manual')).stdout.trim();
    const file = path.join(tempDir(), 'plan.yaml');
    expect((await sim(host, 'migrate-units', '--write', file)).code).toBe(0);
    const plan = parse(await fs.readFile(file, 'utf8'));
    expect(plan.gpus).toHaveLength(1);
    expect(plan.gpus[0]).toMatchObject({ type: 'nvidia-50', count: 2, autostart: true });
    expect([...plan.gpus[0].uuids].sort()).toEqual([auto, manual].sort());
    const r = await sim(host, 'apply', '-f', file, '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().changes).toEqual([{ action: 'set-start', uuid: manual, parent: '0000:82:00.0', type: 'nvidia-50' }]);
    expect((await sim(host, 'assert', '-f', file)).code).toBe(0);
    expect(await activeUuids(host)).toEqual([auto, manual].sort());
  });

  it('says there is nothing to migrate on a host without definitions or units', async () => {
    const r = await sim(cloneHost(p40), 'migrate-units');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/nothing to migrate/);
  });
});
