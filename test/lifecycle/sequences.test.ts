/**
 * create / define / modify / stop / start / undefine / destroy on every bundled fixture, on the simulator:
 * available_instances falls and rises, /sys/bus/mdev/devices links come and go, definition files appear,
 * change and go (exact mdevctl 1.2 bytes), the JSON output has the documented shape, --dry-run prints the
 * exact writes and changes nothing, start --autostart, and destroy's clean-up of nvidia-mdev@ units.
 */
import { promises as fs } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { HostRoot } from '../../src/host/host-root.js';
import { snapshotTree } from '../helpers/hosts.js';
import {
  U,
  avail,
  availAll,
  defPath,
  expectActive,
  expectInactive,
  expectTreeUnchanged,
  fixtureHost,
  lexists,
  mdevctlBytes,
  put,
  readDef,
  sim,
  simJson,
  treeDiff,
} from './lifecycle-helpers.js';

const createPath = (parent: string, type: string) => `/sys/class/mdev_bus/${parent}/mdev_supported_types/${type}/create`;

interface SequenceCase {
  fixture: string;
  parent: string;
  type: string;
  profile: string | null;
  /** available_instances of the type before the create. */
  before: number;
  /** Other types whose available_instances the create changes (NVIDIA: one type per GPU, MIG slices). */
  alsoAfterCreate: Record<string, Record<string, number>>;
  /** Brings the fixture to a state with room for one more device. */
  prelude?: (host: HostRoot) => Promise<void>;
}

const sequenceCases: SequenceCase[] = [
  {
    fixture: 'p40-seed004',
    parent: '0000:82:00.0',
    type: 'nvidia-286',
    profile: 'P40-12C',
    before: 2,
    // One time-sliced type per GPU: every other P40 type drops to 0.
    alsoAfterCreate: { '0000:82:00.0': { 'nvidia-287': 0, 'nvidia-50': 0, 'nvidia-46': 0, 'nvidia-283': 0 } },
  },
  {
    fixture: 't4x4-seed001',
    parent: '0000:3b:00.0',
    type: 'nvidia-230',
    profile: 'T4-1Q',
    before: 16,
    // 3b takes T4-1Q only from now on; 18 (two T4-8Q) and af (empty) are untouched.
    alsoAfterCreate: { '0000:3b:00.0': { 'nvidia-233': 0, 'nvidia-234': 0 }, '0000:af:00.0': { 'nvidia-230': 16, 'nvidia-233': 2 }, '0000:18:00.0': { 'nvidia-233': 0 } },
  },
  {
    fixture: 'a100d-sriov-seed002',
    parent: '0000:81:00.5',
    type: 'nvidia-699',
    profile: 'A100D-1-10C',
    before: 1,
    // The VF is taken (one vGPU per VF); on the other free VFs of 81:00.0 one 1-slice profile still fits
    // (2 x 2-20C + 2 x 1-10C = 6 of 7 slices), a 2-slice one no longer does. GPU 21 is untouched.
    alsoAfterCreate: {
      '0000:81:00.5': { 'nvidia-700': 0, 'nvidia-692': 0 },
      '0000:81:01.0': { 'nvidia-699': 1, 'nvidia-700': 0, 'nvidia-692': 0 },
      '0000:21:01.0': { 'nvidia-699': 0, 'nvidia-700': 0 },
    },
    // The GPU is full (3 x 2-20C + 1 x 1-10C = 7 slices): free two slices first.
    prelude: async (host) => {
      expect((await sim(host, ['destroy', '-u', '0a47ffd1-392e-5373-8428-707a4e0ce31a'])).code).toBe(0);
    },
  },
  {
    fixture: 'leftovers',
    parent: '0000:82:00.0',
    type: 'nvidia-50',
    profile: 'P40-6Q',
    before: 2,
    alsoAfterCreate: { '0000:82:00.0': { 'nvidia-286': 0, 'nvidia-46': 0 } },
  },
  {
    fixture: 'samples-mtty',
    parent: 'mdpy',
    type: 'mdpy-vga',
    profile: null,
    before: 4,
    // Sample types have no NVIDIA fields: they count down and up. mdpy's three types share one pool of
    // four devices (as the real kernel counts them), so all three drop; other parents are untouched.
    alsoAfterCreate: { mdpy: { 'mdpy-xga': 3, 'mdpy-hd': 3 }, mtty: { 'mtty-1': 24, 'mtty-2': 12 }, mbochs: { 'mbochs-small': 64 } },
  },
];

describe('create → define → modify → stop → start → undefine → destroy, on every fixture', () => {
  it.each(sequenceCases)('$fixture: $type on $parent', async (c) => {
    const host = await fixtureHost(c.fixture);
    await c.prelude?.(host);
    const uuid = U[0];
    const { parent, type, profile } = c;
    const label = `${profile ?? type} on ${parent}`;
    const initial = await snapshotTree(host.root);
    expect(await avail(host, parent, type)).toBe(c.before);
    await expectInactive(host, uuid);

    // create: the device and its links appear, capacity falls.
    const created = await simJson(host, ['create', '-u', uuid, '-p', parent, '-t', type]);
    expect(created).toEqual({
      created: [{ uuid, parent, type, profile }],
      defined: [],
      dry_run: false,
      actions: [
        {
          kind: 'sysfs-write',
          path: createPath(parent, type),
          data: uuid,
          summary: `create ${uuid} (${label})`,
          line: `echo ${uuid} > ${createPath(parent, type)}`,
        },
      ],
      notes: [],
    });
    await expectActive(host, uuid, parent, type);
    expect(await avail(host, parent, type)).toBe(c.before - 1);
    for (const [p, types] of Object.entries(c.alsoAfterCreate)) {
      for (const [t, n] of Object.entries(types)) expect(await avail(host, p, t), `${p} ${t}`).toBe(n);
    }
    // vgpuctl's own view agrees with the tree.
    const types = await simJson(host, ['types', '-p', parent]);
    expect(types.types.find((t: any) => t.type === type).available_instances).toBe(c.before - 1);
    const listed = await simJson(host, ['list', '--all', '-u', uuid]);
    expect(listed.devices).toEqual([expect.objectContaining({ uuid, parent, type, profile, active: true, defined: false, autostart: false })]);
    expect(await readDef(host, parent, uuid)).toBeNull();

    // define (as it is): the definition appears, byte for byte what mdevctl 1.2 writes.
    const defined = await simJson(host, ['define', '-u', uuid]);
    expect(defined).toEqual({
      defined: { uuid, parent, type, profile, start: 'manual', replaced: false },
      dry_run: false,
      actions: [
        {
          kind: 'write-file',
          path: `/etc/mdevctl.d/${parent}/${uuid}`,
          content: mdevctlBytes(type, 'manual'),
          summary: `define ${uuid} (${label}), start manual`,
          line: `write /etc/mdevctl.d/${parent}/${uuid}`,
        },
      ],
      notes: [],
    });
    expect(await readDef(host, parent, uuid)).toBe(mdevctlBytes(type, 'manual'));
    expect((await fs.stat(defPath(host, parent, uuid))).mode & 0o777).toBe(0o644);

    // modify --auto: the file changes; a second --auto is a no-op with a note.
    const modified = await simJson(host, ['modify', '-u', uuid, '--auto']);
    expect(modified).toMatchObject({ modified: [{ uuid, parent, start: 'auto' }], dry_run: false, notes: [] });
    expect(await readDef(host, parent, uuid)).toBe(mdevctlBytes(type, 'auto'));
    const again = await simJson(host, ['modify', '-u', uuid, '--auto']);
    expect(again).toEqual({ modified: [], dry_run: false, actions: [], notes: [`${uuid} already starts auto`] });
    expect((await simJson(host, ['list', '--all', '-u', uuid])).devices[0]).toMatchObject({ active: true, defined: true, autostart: true });

    // stop: the device goes, the definition stays, capacity rises again.
    const stopped = await simJson(host, ['stop', '-u', uuid]);
    expect(stopped).toMatchObject({
      stopped: [{ uuid, parent, type }],
      actions: [{ kind: 'sysfs-write', path: `/sys/bus/mdev/devices/${uuid}/remove`, data: '1', line: `echo 1 > /sys/bus/mdev/devices/${uuid}/remove` }],
    });
    await expectInactive(host, uuid);
    expect(await avail(host, parent, type)).toBe(c.before);
    expect(await readDef(host, parent, uuid)).toBe(mdevctlBytes(type, 'auto'));
    const stoppedAgain = await simJson(host, ['stop', '-u', uuid]);
    expect(stoppedAgain.notes).toEqual([`${uuid} is not active (already stopped)`]);

    // start: the defined device comes back.
    const started = await simJson(host, ['start', '-u', uuid]);
    expect(started).toMatchObject({ started: [{ uuid, parent, type, profile }], actions: [{ kind: 'sysfs-write', path: createPath(parent, type), data: uuid }] });
    await expectActive(host, uuid, parent, type);
    expect(await avail(host, parent, type)).toBe(c.before - 1);

    // undefine: the file goes, the device keeps running.
    const undefined_ = await simJson(host, ['undefine', '-u', uuid]);
    expect(undefined_).toMatchObject({ undefined: [{ uuid, parent, type }], actions: [{ kind: 'remove-file', path: `/etc/mdevctl.d/${parent}/${uuid}` }] });
    expect(await readDef(host, parent, uuid)).toBeNull();
    await expectActive(host, uuid, parent, type);

    // destroy: the device goes; nothing to undefine and no unit.
    const destroyed = await simJson(host, ['destroy', '-u', uuid]);
    expect(destroyed).toEqual({
      destroyed: { uuid, stopped: true, undefined: [], units_removed: [] },
      dry_run: false,
      actions: [expect.objectContaining({ kind: 'sysfs-write', path: `/sys/bus/mdev/devices/${uuid}/remove`, data: '1' })],
      notes: [],
    });
    await expectInactive(host, uuid);
    expect(await avail(host, parent, type)).toBe(c.before);
    for (const p of Object.keys(c.alsoAfterCreate)) {
      // every type of the GPU has its capacity back
      expect(await availAll(host, p)).toEqual(Object.fromEntries([...initial.entries()].filter(([k]) => k.startsWith(`sys/devices/`) && k.endsWith('/available_instances') && k.includes(`/${p}/mdev_supported_types/`)).map(([k, v]) => [k.split('/').at(-2)!, Number.parseInt(v, 10)])));
    }

    // The host is where it began. Left behind: the (empty) definitions directory of the parent when it
    // was new, the vendor driver's directory the first vGPU made (it exists while the driver is loaded),
    // and the simulator's own note of a sample parent's pool.
    const diff = treeDiff(initial, await snapshotTree(host.root));
    expect(diff.removed).toEqual([]);
    expect(diff.changed).toEqual([]);
    for (const a of diff.added) {
      expect(a).toMatch(new RegExp(`^(etc/mdevctl\\.d/${parent.replace(/\./g, '\\.')}|sys/bus/mdev/drivers/nvidia-vgpu-vfio|sys/devices/virtual/.*/mdev_supported_types/\\.vgpuctl-sim-pool)$`));
    }
  });
});

describe('p40-seed004: create --count --define --auto, then destroy', () => {
  it('two P40-12C fill the GPU, are defined auto with exact bytes, and come back off one by one', async () => {
    const host = await fixtureHost('p40-seed004');
    const P = '0000:82:00.0';
    const initial = await availAll(host, P);
    expect(Object.keys(initial)).toHaveLength(25);
    const out = await simJson(host, ['create', '--profile', 'P40-12C', '--count', '2', '--define', '--auto', '-u', U[0], U[1]]);
    expect(out.created).toEqual([
      { uuid: U[0], parent: P, type: 'nvidia-286', profile: 'P40-12C' },
      { uuid: U[1], parent: P, type: 'nvidia-286', profile: 'P40-12C' },
    ]);
    expect(out.defined).toEqual([U[0], U[1]]);
    expect(out.actions.map((a: any) => a.line)).toEqual([
      `echo ${U[0]} > ${createPath(P, 'nvidia-286')}`,
      `echo ${U[1]} > ${createPath(P, 'nvidia-286')}`,
      `write /etc/mdevctl.d/${P}/${U[0]}`,
      `write /etc/mdevctl.d/${P}/${U[1]}`,
    ]);
    for (const u of [U[0], U[1]]) {
      await expectActive(host, u, P, 'nvidia-286');
      expect(await readDef(host, P, u)).toBe(mdevctlBytes('nvidia-286', 'auto'));
    }
    // Full: every type of the P40 shows 0.
    expect(Object.values(await availAll(host, P)).every((n) => n === 0)).toBe(true);
    const list = await simJson(host, ['list', '--all']);
    expect(list.devices.map((d: any) => [d.uuid, d.active, d.defined, d.autostart])).toEqual(
      [U[0], U[1]].sort().map((u) => [u, true, true, true]),
    );

    const destroyed = await sim(host, ['destroy', '-u', U[0]]);
    expect(destroyed.code).toBe(0);
    expect(destroyed.stdout).toBe(`destroyed ${U[0]}, undefined\n`);
    expect(await availAll(host, P)).toMatchObject({ 'nvidia-286': 1, 'nvidia-287': 0, 'nvidia-50': 0 });
    expect(await readDef(host, P, U[0])).toBeNull();
    await sim(host, ['destroy', '-u', U[1]]);
    expect(await availAll(host, P)).toEqual(initial);
    // Generated UUIDs (no -u) are random v4 and reported the same in created and in the writes.
    const gen = await simJson(host, ['create', '--profile', 'P40-24C']);
    expect(gen.created).toHaveLength(1);
    expect(gen.created[0].uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(gen.actions[0].data).toBe(gen.created[0].uuid);
    await expectActive(host, gen.created[0].uuid, P, 'nvidia-287');
  });

  it('text output: create prints the UUIDs, define/stop/start/undefine one line each', async () => {
    const host = await fixtureHost('p40-seed004');
    const steps: Array<[string[], string]> = [
      [['create', '--profile', 'P40-6Q', '-u', U[0], U[1], '--count', '2'], `${U[0]}\n${U[1]}\n`],
      [['define', '-u', U[0], '--auto'], `defined ${U[0]} (P40-6Q on 0000:82:00.0, start auto)\n`],
      [['modify', '-u', U[0], '--manual'], `${U[0]} now starts manual\n`],
      [['stop', '-u', U[0]], `stopped ${U[0]}\n`],
      [['start', '-u', U[0]], `started ${U[0]} (P40-6Q on 0000:82:00.0)\n`],
      [['undefine', '-u', U[0]], `undefined ${U[0]} (nvidia-50 on 0000:82:00.0)\n`],
      [['destroy', '-u', U[1]], `destroyed ${U[1]}\n`],
    ];
    for (const [args, stdout] of steps) {
      const r = await sim(host, args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toBe(stdout);
      expect(r.stderr).toBe('');
    }
  });

  it('define -p -t of a device that is not active, define --force replaces it, modify keeps the rest', async () => {
    const host = await fixtureHost('p40-seed004');
    const P = '0000:82:00.0';
    const first = await simJson(host, ['define', '-u', U[2], '-p', '82:00.0', '--profile', 'P40-8Q']);
    expect(first.defined).toEqual({ uuid: U[2], parent: P, type: 'nvidia-51', profile: 'P40-8Q', start: 'manual', replaced: false });
    expect(await readDef(host, P, U[2])).toBe(mdevctlBytes('nvidia-51', 'manual'));
    await expectInactive(host, U[2]);
    expect(await avail(host, P, 'nvidia-51')).toBe(3); // a definition takes no capacity
    const replaced = await simJson(host, ['define', '-u', U[2], '-p', P, '-t', 'nvidia-53', '--auto', '--force']);
    expect(replaced.defined).toEqual({ uuid: U[2], parent: P, type: 'nvidia-53', profile: 'P40-24Q', start: 'auto', replaced: true });
    expect(await readDef(host, P, U[2])).toBe(mdevctlBytes('nvidia-53', 'auto'));
    await simJson(host, ['start', '-u', U[2]]);
    await expectActive(host, U[2], P, 'nvidia-53');
    expect(await availAll(host, P)).toMatchObject({ 'nvidia-53': 0, 'nvidia-51': 0 });
  });
});

describe('t4x4-seed001: the fixture\'s own devices', () => {
  const T18 = '0000:18:00.0';
  const FREE = 'b69191f8-064e-4e9f-a479-de7df8e655b2';
  const IN_VM = 'a02e5c35-5a0b-48fa-a11d-21e9747cf09e';

  it('stop the free T4-8Q, start --autostart brings it back and reports the one in the VM as already active', async () => {
    const host = await fixtureHost('t4x4-seed001');
    const defBefore = await readDef(host, T18, FREE);
    expect(defBefore).toBe(mdevctlBytes('nvidia-233', 'auto'));
    expect(await avail(host, T18, 'nvidia-233')).toBe(0);
    await simJson(host, ['stop', '-u', FREE]);
    await expectInactive(host, FREE);
    expect(await avail(host, T18, 'nvidia-233')).toBe(1);
    expect(await avail(host, T18, 'nvidia-230')).toBe(0); // still one T4-8Q on the GPU
    expect(await readDef(host, T18, FREE)).toBe(defBefore);

    const auto = await simJson(host, ['start', '--autostart']);
    expect(auto).toEqual({
      started: [{ uuid: FREE, parent: T18, type: 'nvidia-233', profile: 'T4-8Q' }],
      already_active: [IN_VM],
      skipped: [],
      failed: [],
    });
    await expectActive(host, FREE, T18, 'nvidia-233');
    await expectActive(host, IN_VM, T18, 'nvidia-233');
    expect(await avail(host, T18, 'nvidia-233')).toBe(0);
    // Everything already runs: a second boot job starts nothing.
    expect(await simJson(host, ['start', '--autostart'])).toEqual({ started: [], already_active: [IN_VM, FREE], skipped: [], failed: [] });
  });

  it('destroy of the free device: stopped and undefined, its T4-8Q slot back; the other device and its definition stay', async () => {
    const host = await fixtureHost('t4x4-seed001');
    const out = await simJson(host, ['destroy', '-u', FREE]);
    expect(out.destroyed).toEqual({ uuid: FREE, stopped: true, undefined: [T18], units_removed: [] });
    expect(out.actions.map((a: any) => a.line)).toEqual([`echo 1 > /sys/bus/mdev/devices/${FREE}/remove`, `rm /etc/mdevctl.d/${T18}/${FREE}`]);
    expect(await readDef(host, T18, FREE)).toBeNull();
    expect(await readDef(host, T18, IN_VM)).toBe(mdevctlBytes('nvidia-233', 'auto'));
    expect(await avail(host, T18, 'nvidia-233')).toBe(1);
    expect(await avail(host, T18, 'nvidia-234')).toBe(0);
  });
});

describe('a100d-sriov-seed002: StackHPC devices, units and definitions', () => {
  const VF = '0000:81:00.5';
  const UUID = '0a47ffd1-392e-5373-8428-707a4e0ce31a';
  const unit = `/etc/systemd/system/nvidia-mdev@${UUID}.service`;
  const wants = `/etc/systemd/system/multi-user.target.wants/nvidia-mdev@${UUID}.service`;

  it('destroy stops, undefines and removes the nvidia-mdev@ unit and its wants link, and says so', async () => {
    const host = await fixtureHost('a100d-sriov-seed002');
    const before = await snapshotTree(host.root);
    expect(await lexists(host.path(unit))).toBe(true);
    expect(await fs.readlink(host.path(wants))).toBe(unit);
    expect(await avail(host, '0000:81:01.0', 'nvidia-700')).toBe(0);

    const r = await sim(host, ['destroy', '-u', UUID]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`destroyed ${UUID}, undefined, removed 2 boot unit file(s)/link(s)\n`);
    expect(r.stderr).toBe(
      [`vgpuctl: removed ${wants}`, `vgpuctl: removed ${unit}`, "vgpuctl: run 'systemctl daemon-reload' so systemd forgets the removed unit", ''].join('\n'),
    );
    await expectInactive(host, UUID);
    expect(await lexists(host.path(unit))).toBe(false);
    expect(await lexists(host.path(wants))).toBe(false);
    expect(await readDef(host, VF, UUID)).toBeNull();
    // Two MIG slices are free again on GPU 81: one 2-20C fits on any free VF, the freed VF included.
    expect(await avail(host, VF, 'nvidia-700')).toBe(1);
    expect(await avail(host, '0000:81:01.0', 'nvidia-700')).toBe(1);
    expect(await avail(host, '0000:81:01.0', 'nvidia-692')).toBe(0); // MIG GPU: no time-sliced types

    // Exactly the device, its definition and the two unit entries went; the other devices' units, the
    // SR-IOV units and everything else are untouched.
    const diff = treeDiff(before, await snapshotTree(host.root));
    expect(diff.added).toEqual([]);
    const removed = diff.removed.filter((p) => !p.startsWith('sys/') && !p.startsWith('dev/'));
    expect(removed).toEqual([
      `etc/mdevctl.d/${VF}/${UUID}`,
      `etc/systemd/system/multi-user.target.wants/nvidia-mdev@${UUID}.service`,
      `etc/systemd/system/nvidia-mdev@${UUID}.service`,
    ]);
    expect(diff.changed.every((p) => p.endsWith('/available_instances'))).toBe(true);
  });

  it('destroy -o json reports the units removed; the other StackHPC units stay', async () => {
    const host = await fixtureHost('a100d-sriov-seed002');
    const out = await simJson(host, ['destroy', '-u', UUID]);
    expect(out.destroyed).toEqual({ uuid: UUID, stopped: true, undefined: [VF], units_removed: [wants, unit] });
    expect(out.notes).toEqual([`removed ${wants}`, `removed ${unit}`, "run 'systemctl daemon-reload' so systemd forgets the removed unit"]);
    expect(out.actions.map((a: any) => a.line)).toEqual([`echo 1 > /sys/bus/mdev/devices/${UUID}/remove`, `rm /etc/mdevctl.d/${VF}/${UUID}`, `rm ${wants}`, `rm ${unit}`]);
    for (const other of ['5c630867-a673-5d75-aa31-a499e6c7cb19', '72291b01-689b-5b7a-9171-6b3480deabf4']) {
      expect(await lexists(host.path(`/etc/systemd/system/nvidia-mdev@${other}.service`))).toBe(true);
      expect(await lexists(host.path(`/etc/systemd/system/multi-user.target.wants/nvidia-mdev@${other}.service`))).toBe(true);
    }
    expect(await lexists(host.path('/etc/systemd/system/nvidia-sriov-0000:81:00.0.service'))).toBe(true);
  });

  it('modify rewrites a StackHPC definition (template, trailing newline) in mdevctl\'s format; stop/start a VF device', async () => {
    const host = await fixtureHost('a100d-sriov-seed002');
    const V = '0000:21:00.7';
    const D = 'e14355f9-33b9-590e-b65a-876490a15407';
    expect(await readDef(host, V, D)).toBe(`${mdevctlBytes('nvidia-699', 'manual')}\n`);
    await simJson(host, ['modify', '-u', D, '--auto']);
    expect(await readDef(host, V, D)).toBe(mdevctlBytes('nvidia-699', 'auto'));
    await simJson(host, ['stop', '-u', D]);
    await expectInactive(host, D);
    // The VF is free again and its GPU has one slice: a 1-slice profile fits on every free VF of GPU 21.
    expect(await avail(host, V, 'nvidia-699')).toBe(1);
    expect(await avail(host, '0000:21:01.0', 'nvidia-699')).toBe(1);
    expect(await avail(host, V, 'nvidia-700')).toBe(0);
    const auto = await simJson(host, ['start', '--autostart']);
    expect(auto.started).toEqual([{ uuid: D, parent: V, type: 'nvidia-699', profile: 'A100D-1-10C' }]);
    expect(auto.already_active).toEqual([]); // the other definitions are manual
    await expectActive(host, D, V, 'nvidia-699');
    expect(await avail(host, '0000:21:01.0', 'nvidia-699')).toBe(0);
  });
});

describe('leftovers: autostart with a missing parent, stale units, orphan definitions', () => {
  const P = '0000:82:00.0';
  const RUNNING = '334855e2-079b-11ee-9fc9-83e0dccb6713';
  const AUTO_OFF = '33485650-079b-11ee-9fca-8f6415d2734c';
  const ORPHAN_AUTO = '69dd62f7-7825-4dc6-89a2-be4c9bcea5bc';
  const ORPHAN_MANUAL = '98198e75-9728-42dc-96c3-87eefe76a96d';

  it('start --autostart starts every auto definition whose parent exists and reports the skipped ones (JSON)', async () => {
    const host = await fixtureHost('leftovers');
    expect(await avail(host, P, 'nvidia-50')).toBe(2);
    const out = await simJson(host, ['start', '--autostart']);
    expect(out).toEqual({
      started: [{ uuid: AUTO_OFF, parent: P, type: 'nvidia-50', profile: 'P40-6Q' }],
      already_active: [RUNNING],
      skipped: [{ uuid: ORPHAN_AUTO, parent: '0000:83:00.0', reason: 'parent not present' }],
      failed: [],
    });
    await expectActive(host, AUTO_OFF, P, 'nvidia-50');
    expect(await avail(host, P, 'nvidia-50')).toBe(1);
    // Manual definitions are not the boot job's business, present parent or not.
    await expectInactive(host, ORPHAN_MANUAL);
    await expectInactive(host, 'd5603837-d2d2-44e5-9e5b-1395873a6579');
  });

  it('start --autostart: one failure does not stop the others; a type the parent lacks is skipped; exit 1', async () => {
    const host = await fixtureHost('leftovers');
    // A second auto definition on the P40, and one naming a type the P40 does not offer (as another tool might write).
    await simJson(host, ['define', '-u', U[0], '-p', P, '-t', 'nvidia-50', '--auto']);
    await put(host, `/etc/mdevctl.d/${P}/${U[1]}`, mdevctlBytes('nvidia-999', 'auto'));
    const r = await sim(host, ['start', '--autostart', '-o', 'json'], { VGPUCTL_SIM_FAULTS: 'create#1=EIO' });
    expect(r.code).toBe(1);
    const out = r.json();
    // Definitions are taken in parent, then UUID order: 33485650 (fails), then U[0] (starts).
    expect(out.failed).toEqual([{ uuid: AUTO_OFF, parent: P, error: expect.stringMatching(/create failed \(EIO\)/) }]);
    expect(out.started).toEqual([{ uuid: U[0], parent: P, type: 'nvidia-50', profile: 'P40-6Q' }]);
    expect(out.already_active).toEqual([RUNNING]);
    expect(out.skipped).toEqual([
      { uuid: U[1], parent: P, reason: `${P} does not offer nvidia-999` },
      { uuid: ORPHAN_AUTO, parent: '0000:83:00.0', reason: 'parent not present' },
    ]);
    await expectInactive(host, AUTO_OFF);
    await expectActive(host, U[0], P, 'nvidia-50');
    // In text: the failure is an error line on stderr.
    const again = await sim(host, ['start', '--autostart'], { VGPUCTL_SIM_FAULTS: 'create#1=EIO' });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(new RegExp(`^vgpuctl: error: ${AUTO_OFF} on ${P}: writing .* failed \\(EIO\\)`, 'm'));
  });

  it('start --autostart in text: started on stdout, skipped on stderr, exit 0', async () => {
    const host = await fixtureHost('leftovers');
    const r = await sim(host, ['start', '--autostart']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`started ${AUTO_OFF} (P40-6Q on ${P})\n`);
    expect(r.stderr).toBe(`vgpuctl: skipped ${ORPHAN_AUTO} on 0000:83:00.0: parent not present\n`);
  });

  it('destroy of UUIDs that only have stale nvidia-mdev@ units removes the unit file and links, and says so', async () => {
    const host = await fixtureHost('leftovers');
    const withFile = 'e19fa267-ff3a-4ce8-bcf6-6ae402871085';
    const dangling = '58fe7cf4-e9de-41f4-ae4b-c424a2a81193';
    const wants = (u: string) => `/etc/systemd/system/multi-user.target.wants/nvidia-mdev@${u}.service`;
    const unit = (u: string) => `/etc/systemd/system/nvidia-mdev@${u}.service`;

    const a = await sim(host, ['destroy', '-u', withFile]);
    expect(a.code).toBe(0);
    expect(a.stdout).toBe(`destroyed ${withFile} (was not active), removed 2 boot unit file(s)/link(s)\n`);
    expect(a.stderr).toContain(`vgpuctl: removed ${wants(withFile)}\nvgpuctl: removed ${unit(withFile)}\n`);
    expect(a.stderr).toContain('systemctl daemon-reload');
    expect(await lexists(host.path(wants(withFile)))).toBe(false);
    expect(await lexists(host.path(unit(withFile)))).toBe(false);

    const b = await simJson(host, ['destroy', '-u', dangling]);
    expect(b.destroyed).toEqual({ uuid: dangling, stopped: false, undefined: [], units_removed: [wants(dangling)] });
    expect(await lexists(host.path(wants(dangling)))).toBe(false);
    // The vGPU manager's own links are not per-device units and stay.
    expect(await fs.readlink(host.path('/etc/systemd/system/multi-user.target.wants/nvidia-vgpu-mgr.service'))).toBe('/lib/systemd/system/nvidia-vgpu-mgr.service');
  });

  it('destroy of an orphan definition under a missing parent undefines it', async () => {
    const host = await fixtureHost('leftovers');
    const out = await simJson(host, ['destroy', '-u', ORPHAN_MANUAL]);
    expect(out.destroyed).toEqual({ uuid: ORPHAN_MANUAL, stopped: false, undefined: ['0000:83:00.0'], units_removed: [] });
    expect(await readDef(host, '0000:83:00.0', ORPHAN_MANUAL)).toBeNull();
    expect(await readDef(host, '0000:83:00.0', ORPHAN_AUTO)).toBe(mdevctlBytes('nvidia-50', 'auto'));
  });
});

describe('samples-mtty: non-NVIDIA parents count down and up', () => {
  const MTTY_DEF = 'feb0b955-b3ce-4e0f-be19-8f00d4a59dae';

  it('start and stop the fixture\'s mtty-2 definition: the two port types share the 24 ports', async () => {
    const host = await fixtureHost('samples-mtty');
    expect(await availAll(host, 'mtty')).toEqual({ 'mtty-1': 24, 'mtty-2': 12 });
    const started = await simJson(host, ['start', '-u', MTTY_DEF]);
    expect(started.started).toEqual([{ uuid: MTTY_DEF, parent: 'mtty', type: 'mtty-2', profile: null }]);
    await expectActive(host, MTTY_DEF, 'mtty', 'mtty-2');
    // mtty-2 takes two of the 24 ports (as observed on the real kernel: mtty-1 22, mtty-2 11).
    expect(await availAll(host, 'mtty')).toEqual({ 'mtty-1': 22, 'mtty-2': 11 });
    // A sample device has no NVIDIA vendor driver link.
    expect(await lexists(host.path(`/sys/bus/mdev/devices/${MTTY_DEF}/driver`))).toBe(false);
    await simJson(host, ['stop', '-u', MTTY_DEF]);
    await expectInactive(host, MTTY_DEF);
    expect(await availAll(host, 'mtty')).toEqual({ 'mtty-1': 24, 'mtty-2': 12 });
    expect(await readDef(host, 'mtty', MTTY_DEF)).toBe(mdevctlBytes('mtty-2', 'manual'));
  });

  it('two different types on one sample parent are allowed (NVIDIA\'s one-type-per-GPU rule does not apply)', async () => {
    const host = await fixtureHost('samples-mtty');
    await simJson(host, ['create', '-t', 'mtty-1', '-p', 'mtty', '-u', U[0]]);
    const second = await simJson(host, ['create', '-t', 'mtty-2', '-p', 'mtty', '-u', U[1], '--define']);
    expect(second.created).toEqual([{ uuid: U[1], parent: 'mtty', type: 'mtty-2', profile: null }]);
    expect(await readDef(host, 'mtty', U[1])).toBe(mdevctlBytes('mtty-2', 'manual'));
    // 1 + 2 of the 24 ports are in use.
    expect(await availAll(host, 'mtty')).toEqual({ 'mtty-1': 21, 'mtty-2': 10 });
    // The fixture's own definition starts next to them.
    await simJson(host, ['start', '-u', MTTY_DEF]);
    expect(await availAll(host, 'mtty')).toEqual({ 'mtty-1': 19, 'mtty-2': 9 });
  });

  it('a pool counts down to 0, the next create is refused, a destroy gives one back', async () => {
    const host = await fixtureHost('samples-mtty');
    const out = await simJson(host, ['create', '-t', 'mdpy-hd', '--count', '4', '-u', ...U.slice(0, 4)]);
    expect(out.created.map((d: any) => d.parent)).toEqual(['mdpy', 'mdpy', 'mdpy', 'mdpy']);
    // mdpy's types share four devices: all are at 0 now.
    expect(await availAll(host, 'mdpy')).toEqual({ 'mdpy-hd': 0, 'mdpy-vga': 0, 'mdpy-xga': 0 });
    const refused = await sim(host, ['create', '-t', 'mdpy-hd']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/no instances of mdpy-hd left on mdpy: 4 in use/);
    await simJson(host, ['destroy', '-u', U[2]]);
    expect(await availAll(host, 'mdpy')).toEqual({ 'mdpy-hd': 1, 'mdpy-vga': 1, 'mdpy-xga': 1 });
    await simJson(host, ['create', '-t', 'mdpy-vga']);
    expect(await availAll(host, 'mdpy')).toEqual({ 'mdpy-hd': 0, 'mdpy-vga': 0, 'mdpy-xga': 0 });
  });
});

describe('--dry-run prints the exact writes and changes nothing', () => {
  const P = '0000:82:00.0';

  it('create --define --auto (text and JSON)', async () => {
    const host = await fixtureHost('p40-seed004');
    await expectTreeUnchanged(host, async () => {
      const r = await sim(host, ['create', '--profile', 'P40-12C', '-u', U[0], '--define', '--auto', '--dry-run']);
      expect(r.code).toBe(0);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe(
        [
          'Dry run: would do, in order:',
          `  create ${U[0]} (P40-12C on ${P}): echo ${U[0]} > ${createPath(P, 'nvidia-286')}`,
          `  define ${U[0]} (P40-12C on ${P}), start auto: write /etc/mdevctl.d/${P}/${U[0]}`,
          '',
        ].join('\n'),
      );
      const j = await simJson(host, ['create', '--profile', 'P40-12C', '-u', U[0], '--define', '--auto', '--dry-run']);
      expect(j).toEqual({
        created: [{ uuid: U[0], parent: P, type: 'nvidia-286', profile: 'P40-12C' }],
        defined: [U[0]],
        dry_run: true,
        actions: [
          { kind: 'sysfs-write', path: createPath(P, 'nvidia-286'), data: U[0], summary: `create ${U[0]} (P40-12C on ${P})`, line: `echo ${U[0]} > ${createPath(P, 'nvidia-286')}` },
          {
            kind: 'write-file',
            path: `/etc/mdevctl.d/${P}/${U[0]}`,
            content: mdevctlBytes('nvidia-286', 'auto'),
            summary: `define ${U[0]} (P40-12C on ${P}), start auto`,
            line: `write /etc/mdevctl.d/${P}/${U[0]}`,
          },
        ],
        notes: [],
      });
      // Generated UUIDs: the plan names them consistently.
      const g = await simJson(host, ['create', '--profile', 'P40-4Q', '--count', '3', '--dry-run']);
      expect(g.actions.map((a: any) => a.data)).toEqual(g.created.map((d: any) => d.uuid));
      expect(new Set(g.created.map((d: any) => d.uuid)).size).toBe(3);
    });
  });

  it('define, modify, stop, start, undefine and destroy', async () => {
    const host = await fixtureHost('p40-seed004');
    await simJson(host, ['create', '--profile', 'P40-6Q', '-u', U[0], U[1], '--count', '2']);
    await simJson(host, ['define', '-u', U[1]]);
    const dry = async (args: string[], lines: string[]) => {
      await expectTreeUnchanged(host, async () => {
        const r = await sim(host, [...args, '--dry-run']);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toBe(`${['Dry run: would do, in order:', ...lines.map((l) => `  ${l}`)].join('\n')}\n`);
        expect(r.stderr).toBe('');
      });
    };
    await dry(['define', '-u', U[0], '--auto'], [`define ${U[0]} (P40-6Q on ${P}), start auto: write /etc/mdevctl.d/${P}/${U[0]}`]);
    await dry(['modify', '-u', U[1], '--auto'], [`set start auto for ${U[1]}: write /etc/mdevctl.d/${P}/${U[1]}`]);
    await dry(['stop', '-u', U[0]], [`remove ${U[0]} (P40-6Q on ${P}): echo 1 > /sys/bus/mdev/devices/${U[0]}/remove`]);
    await dry(['undefine', '-u', U[1]], [`undefine ${U[1]} (nvidia-50 on ${P}): rm /etc/mdevctl.d/${P}/${U[1]}`]);
    await dry(['destroy', '-u', U[1]], [
      `remove ${U[1]} (P40-6Q on ${P}): echo 1 > /sys/bus/mdev/devices/${U[1]}/remove`,
      `undefine ${U[1]} (nvidia-50 on ${P}): rm /etc/mdevctl.d/${P}/${U[1]}`,
    ]);
    await simJson(host, ['stop', '-u', U[1]]);
    await dry(['start', '-u', U[1]], [`create ${U[1]} (P40-6Q on ${P}): echo ${U[1]} > ${createPath(P, 'nvidia-50')}`]);
    // modify JSON dry run carries the new file content.
    const j = await simJson(host, ['modify', '-u', U[1], '--auto', '--dry-run']);
    expect(j.actions).toEqual([
      { kind: 'write-file', path: `/etc/mdevctl.d/${P}/${U[1]}`, content: mdevctlBytes('nvidia-50', 'auto'), summary: `set start auto for ${U[1]}`, line: `write /etc/mdevctl.d/${P}/${U[1]}` },
    ]);
    expect(await readDef(host, P, U[1])).toBe(mdevctlBytes('nvidia-50', 'manual'));
  });

  it('destroy with boot units: lists every removal, says "would remove", and removes nothing', async () => {
    const host = await fixtureHost('a100d-sriov-seed002');
    const UUID = '72291b01-689b-5b7a-9171-6b3480deabf4';
    const unit = `/etc/systemd/system/nvidia-mdev@${UUID}.service`;
    const wants = `/etc/systemd/system/multi-user.target.wants/nvidia-mdev@${UUID}.service`;
    await expectTreeUnchanged(host, async () => {
      const r = await sim(host, ['destroy', '-u', UUID, '--dry-run']);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(
        [
          'Dry run: would do, in order:',
          `  remove ${UUID} (A100D-2-20C on 0000:81:00.4): echo 1 > /sys/bus/mdev/devices/${UUID}/remove`,
          `  undefine ${UUID} (nvidia-700 on 0000:81:00.4): rm /etc/mdevctl.d/0000:81:00.4/${UUID}`,
          `  remove boot link ${wants}: rm ${wants}`,
          `  remove unit file ${unit}: rm ${unit}`,
          '',
        ].join('\n'),
      );
      // Nothing was removed, so nothing may say it was.
      expect(r.stderr).not.toMatch(/vgpuctl: removed/);
      expect(r.stderr).toBe(`vgpuctl: would remove ${wants}\nvgpuctl: would remove ${unit}\n`);
      const j = await simJson(host, ['destroy', '-u', UUID, '--dry-run']);
      expect(j.dry_run).toBe(true);
      expect(j.destroyed).toEqual({ uuid: UUID, stopped: true, undefined: ['0000:81:00.4'], units_removed: [wants, unit] });
      expect(j.actions.map((a: any) => a.kind)).toEqual(['sysfs-write', 'remove-file', 'remove-file', 'remove-file']);
    });
  });

  it('on the sample drivers too', async () => {
    const host = await fixtureHost('samples-mtty');
    await expectTreeUnchanged(host, async () => {
      const r = await sim(host, ['start', '-u', 'feb0b955-b3ce-4e0f-be19-8f00d4a59dae', '--dry-run']);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(
        'Dry run: would do, in order:\n  create feb0b955-b3ce-4e0f-be19-8f00d4a59dae (mtty-2 on mtty): echo feb0b955-b3ce-4e0f-be19-8f00d4a59dae > /sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2/create\n',
      );
    });
  });
});
