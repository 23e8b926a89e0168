/**
 * A request that fails part-way undoes what it did: the devices it made are removed, definitions it
 * replaced are put back byte for byte, and the error says what failed and what was undone. Faults come
 * from the simulator (VGPUCTL_SIM_FAULTS) or from the file system (a file where a directory must be).
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
  expectFailure,
  expectInactive,
  fixtureHost,
  mdevctlBytes,
  readDef,
  sim,
  simJson,
  treeDiff,
} from './lifecycle-helpers.js';

const P40 = '0000:82:00.0';
const createFile = (type: string) => `/sys/class/mdev_bus/${P40}/mdev_supported_types/${type}/create`;

async function expectSameTree(host: HostRoot, before: Map<string, string>): Promise<void> {
  expect(treeDiff(before, await snapshotTree(host.root))).toEqual({ added: [], removed: [], changed: [] });
}

/** Makes vgpuctl's temporary file for `file` impossible to create (a directory sits where it goes). */
async function blockAtomicWrite(host: HostRoot, hostFile: string): Promise<void> {
  const real = host.path(hostFile);
  const dir = real.slice(0, real.lastIndexOf('/'));
  const base = real.slice(real.lastIndexOf('/') + 1);
  // The CLI runs in this process: its temporary file is .<name>.vgpuctl-<our pid>.tmp (actions.ts).
  await fs.mkdir(`${dir}/.${base}.vgpuctl-${process.pid}.tmp`);
}

describe('create --count N failing at device k', () => {
  it('create#3=EIO: the first two are removed again, exit 1, the message names the failure and the undo', async () => {
    const host = await fixtureHost('p40-seed004');
    const before = await snapshotTree(host.root);
    const r = await sim(host, ['create', '--profile', 'P40-6Q', '--count', '3', '-u', U[0], U[1], U[2]], { VGPUCTL_SIM_FAULTS: 'create#3=EIO' });
    expectFailure(
      r,
      1,
      new RegExp(
        `^vgpuctl: error: writing ${createFile('nvidia-50')} failed \\(EIO\\); check dmesg and 'journalctl -u nvidia-vgpu-mgr'\\. ` +
          `failed at step 3 of 3: create ${U[2]} \\(P40-6Q on ${P40}\\)\\. ` +
          `undone: remove ${U[1]} \\(P40-6Q on ${P40}\\); remove ${U[0]} \\(P40-6Q on ${P40}\\)\\n$`,
      ),
    );
    for (const u of [U[0], U[1], U[2]]) await expectInactive(host, u);
    expect(await avail(host, P40, 'nvidia-50')).toBe(4);
    expect(await avail(host, P40, 'nvidia-286')).toBe(2);
    // No device, no IOMMU group, no /dev/vfio node is left: the tree is what it was (the vendor driver's
    // directory, made by the first vGPU, aside).
    const diff = treeDiff(before, await snapshotTree(host.root));
    expect(diff.removed).toEqual([]);
    expect(diff.changed).toEqual([]);
    expect(diff.added).toEqual(['sys/bus/mdev/drivers/nvidia-vgpu-vfio']);
    expect((await simJson(host, ['list', '--all'])).devices).toEqual([]);
  });

  it('create#2=ENODEV with --define: the first device goes, no definition is written', async () => {
    const host = await fixtureHost('t4x4-seed001');
    const r = await sim(host, ['create', '--profile', 'T4-4Q', '-p', '3b:00.0', '--count', '2', '--define', '--auto', '-u', U[0], U[1]], { VGPUCTL_SIM_FAULTS: 'create#2=ENODEV' });
    expectFailure(r, 1, /0000:3b:00\.0 went away \(ENODEV\).*failed at step 2 of 4: create .*undone: remove 5f0c3a2e-8b1d-4e6f-9a7c-2d4b6e8f0a13 \(T4-4Q on 0000:3b:00\.0\)\n$/);
    await expectInactive(host, U[0]);
    expect(await readDef(host, '0000:3b:00.0', U[0])).toBeNull();
    expect(await avail(host, '0000:3b:00.0', 'nvidia-232')).toBe(4);
  });

  it('the first write failing changes nothing and says so', async () => {
    const host = await fixtureHost('p40-seed004');
    const before = await snapshotTree(host.root);
    const r = await sim(host, ['create', '--profile', 'P40-6Q', '--count', '2'], { VGPUCTL_SIM_FAULTS: 'create#1=EIO' });
    expectFailure(r, 1, /failed \(EIO\).*\. nothing was changed\n$/);
    expect(r.stderr).not.toMatch(/undone/);
    await expectSameTree(host, before);
  });

  it('an undo that fails too is reported, with what is left', async () => {
    const host = await fixtureHost('p40-seed004');
    const r = await sim(host, ['create', '--profile', 'P40-6Q', '--count', '3', '-u', U[0], U[1], U[2]], { VGPUCTL_SIM_FAULTS: 'create#3=EIO,remove#1=EBUSY' });
    expectFailure(r, 1, new RegExp(`undone: remove ${U[0]} .*could not undo: remove ${U[1]} \\(P40-6Q on ${P40}\\) \\(.*EBUSY.*\\) — run the command again or 'vgpuctl list --all' to see what is left`));
    await expectInactive(host, U[0]);
    await expectActive(host, U[1], P40, 'nvidia-50');
    expect(await avail(host, P40, 'nvidia-50')).toBe(3);
  });
});

describe('create --define whose define step fails', () => {
  it('/etc/mdevctl.d/<parent> is a file: both devices are removed again', async () => {
    const host = await fixtureHost('p40-seed004');
    await fs.mkdir(host.path('/etc/mdevctl.d'), { recursive: true });
    await fs.writeFile(host.path(`/etc/mdevctl.d/${P40}`), 'not a directory\n');
    const before = await snapshotTree(host.root);
    const r = await sim(host, ['create', '--profile', 'P40-12C', '--count', '2', '--define', '-u', U[0], U[1]]);
    expectFailure(
      r,
      1,
      new RegExp(
        `^vgpuctl: error: cannot write /etc/mdevctl\\.d/${P40}/${U[0]}: E[A-Z]+\\. failed at step 3 of 4: define ${U[0]} \\(P40-12C on ${P40}\\), start manual\\. ` +
          `undone: remove ${U[1]} \\(P40-12C on ${P40}\\); remove ${U[0]} \\(P40-12C on ${P40}\\)\\n$`,
      ),
    );
    await expectInactive(host, U[0]);
    await expectInactive(host, U[1]);
    expect(await availAll(host, P40)).toMatchObject({ 'nvidia-286': 2, 'nvidia-287': 1, 'nvidia-50': 4 });
    const diff = treeDiff(before, await snapshotTree(host.root));
    expect(diff).toEqual({ added: ['sys/bus/mdev/drivers/nvidia-vgpu-vfio'], removed: [], changed: [] });
  });

  it('the second definition cannot be written: the first definition and both devices are removed', async () => {
    const host = await fixtureHost('leftovers');
    // leftovers has two P40-6Q active: room for two more.
    await fs.mkdir(defPath(host, P40, U[1]));
    const before = await snapshotTree(host.root);
    const r = await sim(host, ['create', '--profile', 'P40-6Q', '--count', '2', '--define', '--auto', '-u', U[0], U[1]]);
    expectFailure(
      r,
      1,
      new RegExp(`cannot write /etc/mdevctl\\.d/${P40}/${U[1]}: E[A-Z]+\\. failed at step 4 of 4: .*undone: remove the new definition of ${U[0]}; remove ${U[1]} .*; remove ${U[0]} `),
    );
    await expectSameTree(host, before);
    expect(await readDef(host, P40, U[0])).toBeNull();
    expect(await avail(host, P40, 'nvidia-50')).toBe(2);
  });
});

describe('definitions are never lost', () => {
  it('define --force failing keeps the old definition byte for byte (StackHPC file with its newline)', async () => {
    const host = await fixtureHost('a100d-sriov-seed002');
    const VF = '0000:21:00.4';
    const D = '5c630867-a673-5d75-aa31-a499e6c7cb19';
    const old = await readDef(host, VF, D);
    expect(old).toBe(`${mdevctlBytes('nvidia-700', 'manual')}\n`);
    await blockAtomicWrite(host, `/etc/mdevctl.d/${VF}/${D}`);
    const before = await snapshotTree(host.root);
    const r = await sim(host, ['define', '-u', D, '--auto', '--force']);
    expectFailure(r, 1, new RegExp(`^vgpuctl: error: cannot write /etc/mdevctl\\.d/${VF}/${D}: EEXIST\\. nothing was changed\\n$`));
    expect(await readDef(host, VF, D)).toBe(old);
    await expectSameTree(host, before);
  });

  it('define --force moving a definition to another parent: the old file comes back when the new one cannot be written', async () => {
    const host = await fixtureHost('leftovers');
    const D = '98198e75-9728-42dc-96c3-87eefe76a96d'; // defined manual under 0000:83:00.0, which is gone
    const old = await readDef(host, '0000:83:00.0', D);
    expect(old).toBe(mdevctlBytes('nvidia-286', 'manual'));
    await fs.mkdir(defPath(host, P40, D)); // a directory where the new definition would go
    const before = await snapshotTree(host.root);
    const r = await sim(host, ['define', '-u', D, '-p', P40, '-t', 'nvidia-50', '--force']);
    expectFailure(
      r,
      1,
      new RegExp(`cannot write /etc/mdevctl\\.d/${P40}/${D}: E[A-Z]+\\. failed at step 2 of 2: define ${D} \\(P40-6Q on ${P40}\\), start manual\\. undone: restore the definition of ${D} under 0000:83:00\\.0\\n$`),
    );
    expect(await readDef(host, '0000:83:00.0', D)).toBe(old);
    await expectSameTree(host, before);
  });

  it('define --force that succeeds replaces the file, and the replacement is exact', async () => {
    const host = await fixtureHost('leftovers');
    const D = '98198e75-9728-42dc-96c3-87eefe76a96d';
    const out = await simJson(host, ['define', '-u', D, '-p', P40, '-t', 'nvidia-50', '--force', '--auto']);
    expect(out.defined).toEqual({ uuid: D, parent: P40, type: 'nvidia-50', profile: 'P40-6Q', start: 'auto', replaced: true });
    expect(out.actions.map((a: any) => a.line)).toEqual([`rm /etc/mdevctl.d/0000:83:00.0/${D}`, `write /etc/mdevctl.d/${P40}/${D}`]);
    expect(await readDef(host, '0000:83:00.0', D)).toBeNull();
    expect(await readDef(host, P40, D)).toBe(mdevctlBytes('nvidia-50', 'auto'));
  });

  it('modify failing keeps the definition as it was', async () => {
    const host = await fixtureHost('t4x4-seed001');
    const D = 'b69191f8-064e-4e9f-a479-de7df8e655b2';
    await blockAtomicWrite(host, `/etc/mdevctl.d/0000:18:00.0/${D}`);
    const before = await snapshotTree(host.root);
    const r = await sim(host, ['modify', '-u', D, '--manual']);
    expectFailure(r, 1, /cannot write \/etc\/mdevctl\.d\/0000:18:00\.0\/b69191f8-064e-4e9f-a479-de7df8e655b2: EEXIST\. nothing was changed/);
    expect(await readDef(host, '0000:18:00.0', D)).toBe(mdevctlBytes('nvidia-233', 'auto'));
    await expectSameTree(host, before);
  });
});

describe('kernel faults on start and stop leave everything as it was', () => {
  it('start with create#1=EIO: not active, definition untouched', async () => {
    const host = await fixtureHost('samples-mtty');
    const D = 'feb0b955-b3ce-4e0f-be19-8f00d4a59dae';
    const before = await snapshotTree(host.root);
    const r = await sim(host, ['start', '-u', D], { VGPUCTL_SIM_FAULTS: 'create#1=EIO' });
    expectFailure(r, 1, /writing \/sys\/class\/mdev_bus\/mtty\/mdev_supported_types\/mtty-2\/create failed \(EIO\)/);
    await expectSameTree(host, before);
  });

  it('stop with remove#1=EBUSY: still active, capacity unchanged', async () => {
    const host = await fixtureHost('t4x4-seed001');
    const D = 'b69191f8-064e-4e9f-a479-de7df8e655b2';
    const before = await snapshotTree(host.root);
    const r = await sim(host, ['stop', '-u', D], { VGPUCTL_SIM_FAULTS: 'remove#1=EBUSY' });
    expectFailure(r, 1, new RegExp(`mdev ${D} is busy \\(EBUSY\\): a VM or process still holds it; shut the VM down first`));
    await expectActive(host, D, '0000:18:00.0', 'nvidia-233');
    await expectSameTree(host, before);
  });
});
