/**
 * apply is idempotent on every bundled host: the first run changes what the plan asks for, the second
 * changes nothing (not one byte of the tree), and assert says "differs" before and "matches" after.
 */
import { describe, expect, it } from 'vitest';
import { cloneHost } from './plan-helpers.js';
import { hostFrom, snapshotTree } from '../helpers/hosts.js';
import { devices, sim, treeDiff, writePlan } from './plan-helpers.js';

interface Case {
  fixture: string;
  plan: string;
  /** What the first apply must do, as "action parent type" lines (sorted). */
  firstChanges: (changes: Array<{ action: string; uuid: string; parent: string; type: string }>) => void;
  /** Planned (parent, type) pairs with how many devices each, after apply. */
  planned: Record<string, number>;
  autostart: boolean;
}

const count = (xs: string[]) => xs.reduce<Record<string, number>>((m, x) => ((m[x] = (m[x] ?? 0) + 1), m), {});
const actions = (changes: Array<{ action: string; parent: string; type: string }>) => count(changes.map((c) => `${c.action} ${c.parent} ${c.type}`));

const cases: Case[] = [
  {
    fixture: 'p40-seed004',
    plan: `version: 1
gpus:
  - select: { address: "0000:82:00.0" }
    profile: P40-12C
    count: 2
`,
    firstChanges: (c) => expect(actions(c)).toEqual({ 'create 0000:82:00.0 nvidia-286': 2, 'define 0000:82:00.0 nvidia-286': 2 }),
    planned: { '0000:82:00.0 nvidia-286': 2 },
    autostart: true,
  },
  {
    // 18:00.0 already carries 2 x T4-8Q (one in the running guest vdi-t4-01): adopted; 3b and af get two each;
    // 86:00.0 is on vfio-pci (passthrough) and is not selected by { board: T4 }.
    fixture: 't4x4-seed001',
    plan: `version: 1
gpus:
  - select: { board: T4 }
    profile: T4-8Q
    count: 2
`,
    firstChanges: (c) =>
      expect(actions(c)).toEqual({
        'create 0000:3b:00.0 nvidia-233': 2,
        'define 0000:3b:00.0 nvidia-233': 2,
        'create 0000:af:00.0 nvidia-233': 2,
        'define 0000:af:00.0 nvidia-233': 2,
      }),
    planned: { '0000:18:00.0 nvidia-233': 2, '0000:3b:00.0 nvidia-233': 2, '0000:af:00.0 nvidia-233': 2 },
    autostart: true,
  },
  {
    // Seed 002's layout (3 x nvidia-700 + 1 x nvidia-699 per PF), started at boot: the StackHPC definitions
    // are `manual`, so the first apply switches them to auto and creates nothing.
    fixture: 'a100d-sriov-seed002',
    plan: `version: 1
defaults: { autostart: true }
gpus:
  - { select: { pf: "0000:21:00.0" }, type: nvidia-700, count: 3 }
  - { select: { pf: "0000:21:00.0" }, type: nvidia-699, count: 1 }
  - { select: { pf: "0000:81:00.0" }, type: nvidia-700, count: 3 }
  - { select: { pf: "0000:81:00.0" }, type: nvidia-699, count: 1 }
`,
    firstChanges: (c) => {
      expect(c).toHaveLength(8);
      expect(new Set(c.map((x) => x.action))).toEqual(new Set(['set-start']));
    },
    planned: {
      '0000:21:00.4 nvidia-700': 1,
      '0000:21:00.5 nvidia-700': 1,
      '0000:21:00.6 nvidia-700': 1,
      '0000:21:00.7 nvidia-699': 1,
      '0000:81:00.4 nvidia-700': 1,
      '0000:81:00.5 nvidia-700': 1,
      '0000:81:00.6 nvidia-700': 1,
      '0000:81:00.7 nvidia-699': 1,
    },
    autostart: true,
  },
  {
    // Adopts the three nvidia-50 devices (running in y-k8s-n-1; never defined; defined and named by the
    // shut-off y-k8s-n-2) and adds a fourth.
    fixture: 'leftovers',
    plan: `version: 1
gpus:
  - select: { address: "0000:82:00.0" }
    profile: P40-6Q
    count: 4
`,
    firstChanges: (c) => {
      expect(actions(c)).toEqual({ 'define 0000:82:00.0 nvidia-50': 2, 'start 0000:82:00.0 nvidia-50': 1, 'create 0000:82:00.0 nvidia-50': 1 });
      const lines = c.map((x) => `${x.action} ${x.uuid}`);
      expect(lines).toContain('define 3348556a-079b-11ee-9fc8-7fb0c612aedd');
      expect(lines).toContain('start 33485650-079b-11ee-9fca-8f6415d2734c');
      // The device the running guest uses is adopted as it is.
      expect(c.some((x) => x.uuid === '334855e2-079b-11ee-9fc9-83e0dccb6713')).toBe(false);
    },
    planned: { '0000:82:00.0 nvidia-50': 4 },
    autostart: true,
  },
  {
    // The kernel's mtty sample: a non-PCI parent, selected with { all: true }; its mtty-2 definition stays.
    fixture: 'samples-mtty',
    plan: `version: 1
defaults: { autostart: false }
gpus:
  - select: { all: true }
    type: mtty-1
    count: 2
`,
    firstChanges: (c) => expect(actions(c)).toEqual({ 'create mtty mtty-1': 2, 'define mtty mtty-1': 2 }),
    planned: { 'mtty mtty-1': 2 },
    autostart: false,
  },
];

describe('apply is idempotent on every bundled fixture', () => {
  for (const k of cases) {
    it(k.fixture, async () => {
      const host = await hostFrom(k.fixture);
      const file = writePlan(k.plan);

      // Before the first apply, assert exits 1 and lists the differences.
      const before = await sim(host, 'assert', '-f', file, '-o', 'json');
      expect(before.code, before.stderr).toBe(1);
      expect(before.json().matches).toBe(false);
      expect(before.json().differences.length).toBeGreaterThan(0);
      const beforeTable = await sim(host, 'assert', '-f', file);
      expect(beforeTable.code).toBe(1);
      expect(beforeTable.stdout).toMatch(/does not match the plan/);

      const first = await sim(host, 'apply', '-f', file, '-o', 'json');
      expect(first.code, first.stderr).toBe(0);
      const r1 = first.json();
      expect(r1.changed).toBe(true);
      expect(r1.dry_run).toBe(false);
      expect(r1.changes.length).toBeGreaterThan(0);
      // What assert listed is exactly what apply did.
      expect(r1.changes).toEqual(before.json().differences);
      k.firstChanges(r1.changes);

      // Second run: nothing to do, not one byte of the tree touched (lock and journal included).
      const snap1 = await snapshotTree(host.root);
      const second = await sim(host, 'apply', '-f', file, '-o', 'json');
      expect(second.code, second.stderr).toBe(0);
      const r2 = second.json();
      expect(r2.changed).toBe(false);
      expect(r2.changes).toEqual([]);
      expect(r2.actions).toEqual([]);
      expect(r2.interrupted_previous).toBe(false);
      expect(treeDiff(snap1, await snapshotTree(host.root))).toEqual([]);
      expect(r2.devices.map((d: { uuid: string }) => d.uuid).sort()).toEqual(r1.devices.map((d: { uuid: string }) => d.uuid).sort());

      const after = await sim(host, 'assert', '-f', file, '-o', 'json');
      expect(after.code, after.stderr).toBe(0);
      expect(after.json()).toMatchObject({ matches: true, differences: [] });
      expect((await sim(host, 'assert', '-f', file)).stdout).toMatch(/The host matches the plan/);
      expect((await sim(host, 'plan', '-f', file, '-o', 'json')).json().changes).toEqual([]);

      // Every planned device is active and defined with the planned start mode.
      const planned = new Set(r1.devices.map((d: { uuid: string }) => d.uuid));
      const rows = (await devices(host)).filter((d) => planned.has(d.uuid));
      expect(rows.every((d) => d.active && d.defined && d.autostart === k.autostart), JSON.stringify(rows)).toBe(true);
      expect(count(rows.map((d) => `${d.parent} ${d.type}`))).toEqual(k.planned);
    }, 180_000); // laying out the SR-IOV host (40 VFs) is slow on a busy machine
  }
});

describe('count: max', () => {
  it('on a type without max_instance (mtty) counts the devices it already has: a re-apply or --prune changes nothing', async () => {
    const host = cloneHost(await hostFrom('samples-mtty'));
    const file = writePlan('version: 1\ngpus:\n  - { select: { all: true }, type: mtty-1, count: max }\n');
    const first = await sim(host, 'apply', '-f', file, '-o', 'json');
    expect(first.code, first.stderr).toBe(0);
    expect(first.json().devices).toHaveLength(24); // mtty's 24 ports
    const snap = await snapshotTree(host.root);
    for (const extra of [[], ['--prune']]) {
      const again = await sim(host, 'apply', '-f', file, ...extra, '-o', 'json');
      expect(again.code, again.stderr).toBe(0);
      expect(again.json().devices).toHaveLength(24);
      expect(again.json().changes.filter((c: { action: string }) => c.action !== 'undefine')).toEqual([]);
    }
    // --prune took only the unplanned mtty-2 definition.
    expect(treeDiff(snap, await snapshotTree(host.root))).toEqual(['removed etc/mdevctl.d/mtty/feb0b955-b3ce-4e0f-be19-8f00d4a59dae']);
    expect((await sim(host, 'assert', '-f', file)).code).toBe(0);
  });

  it('on an NVIDIA type is its max_instance per GPU (P40-12C: 2)', async () => {
    const host = cloneHost(await hostFrom('p40-seed004'));
    const file = writePlan('version: 1\ngpus:\n  - { select: { board: P40 }, profile: P40-12C, count: max }\n');
    expect((await sim(host, 'apply', '-f', file, '-o', 'json')).json().devices).toHaveLength(2);
    expect((await sim(host, 'apply', '-f', file, '-o', 'json')).json().changed).toBe(false);
  });
});
