/**
 * Where `create --count N` puts devices when no -p is given: GPUs that already hold the type first, then
 * empty ones; --spread deals round-robin starting with the empty GPUs. On SR-IOV GPUs one device per
 * free VF, MIG slices shared per physical GPU, and time-sliced and MIG-backed vGPUs never on one GPU.
 */
import { describe, expect, it } from 'vitest';
import type { HostRoot } from '../../src/host/host-root.js';
import { snapshotTree } from '../helpers/hosts.js';
import { U, avail, availAll, expectActive, expectFailure, fixtureHost, sim, simJson, treeDiff } from './lifecycle-helpers.js';

const T18 = '0000:18:00.0';
const T3B = '0000:3b:00.0';
const TAF = '0000:af:00.0';
const T86 = '0000:86:00.0'; // on vfio-pci: passthrough, never an mdev parent
const T4_FREE = 'b69191f8-064e-4e9f-a479-de7df8e655b2';

const parentsOf = (out: any): string[] => out.created.map((d: any) => d.parent);

/** t4x4-seed001 with one of the two T4-8Q on 18:00.0 stopped: 18 holds T4-8Q with one slot free. */
async function t4WithOneSlotOn18(): Promise<HostRoot> {
  const host = await fixtureHost('t4x4-seed001');
  await simJson(host, ['stop', '-u', T4_FREE]);
  expect([await avail(host, T18, 'nvidia-233'), await avail(host, T3B, 'nvidia-233'), await avail(host, TAF, 'nvidia-233')]).toEqual([1, 2, 2]);
  return host;
}

describe('t4x4-seed001: packing and --spread', () => {
  it('without -p, the GPU that already holds T4-8Q is filled first, then the empty ones in address order', async () => {
    const host = await t4WithOneSlotOn18();
    const out = await simJson(host, ['create', '--profile', 'T4-8Q', '--count', '3', '-u', U[0], U[1], U[2]]);
    expect(parentsOf(out)).toEqual([T18, T3B, T3B]);
    expect(out.created.every((d: any) => d.type === 'nvidia-233' && d.profile === 'T4-8Q')).toBe(true);
    await expectActive(host, U[0], T18, 'nvidia-233');
    await expectActive(host, U[1], T3B, 'nvidia-233');
    await expectActive(host, U[2], T3B, 'nvidia-233');
    expect([await avail(host, T18, 'nvidia-233'), await avail(host, T3B, 'nvidia-233'), await avail(host, TAF, 'nvidia-233')]).toEqual([0, 0, 2]);
    // af stayed empty: every type there is still open.
    expect(await avail(host, TAF, 'nvidia-230')).toBe(16);
  });

  it('the GPU holding the type comes first even when an empty GPU has a lower address', async () => {
    const host = await fixtureHost('t4x4-seed001');
    await simJson(host, ['create', '--profile', 'T4-1Q', '-p', TAF, '-u', U[0]]);
    const out = await simJson(host, ['create', '--profile', 'T4-1Q', '--count', '2']);
    expect(parentsOf(out)).toEqual([TAF, TAF]);
    expect(await avail(host, TAF, 'nvidia-230')).toBe(13);
    expect(await avail(host, T3B, 'nvidia-230')).toBe(16);
    // --spread prefers the empty GPU, then deals round-robin.
    const spread = await simJson(host, ['create', '--profile', 'T4-1Q', '--count', '3', '--spread']);
    expect(parentsOf(spread)).toEqual([T3B, TAF, T3B]);
  });

  it('--spread uses the empty GPUs first and deals the devices out round-robin', async () => {
    const host = await t4WithOneSlotOn18();
    const three = await simJson(host, ['create', '--profile', 'T4-8Q', '--count', '3', '--spread', '--dry-run']);
    expect(parentsOf(three)).toEqual([T3B, TAF, T18]);
    const out = await simJson(host, ['create', '--profile', 'T4-8Q', '--count', '5', '--spread']);
    expect(parentsOf(out)).toEqual([T3B, TAF, T18, T3B, TAF]);
    for (const p of [T18, T3B, TAF]) expect(await avail(host, p, 'nvidia-233')).toBe(0);
    const list = await simJson(host, ['list']);
    expect(list.devices.filter((d: any) => d.type === 'nvidia-233').map((d: any) => d.parent).sort()).toEqual([T18, T18, T3B, T3B, TAF, TAF]);
  });

  it('a GPU carrying another type is skipped; the passthrough GPU is never used; the refusal lists every GPU', async () => {
    const host = await fixtureHost('t4x4-seed001');
    await simJson(host, ['create', '--profile', 'T4-1Q', '-p', TAF, '-u', U[0]]);
    const two = await simJson(host, ['create', '--profile', 'T4-8Q', '--count', '2', '--dry-run']);
    expect(parentsOf(two)).toEqual([T3B, T3B]);
    const before = await snapshotTree(host.root);
    const r = await sim(host, ['create', '--profile', 'T4-8Q', '--count', '3']);
    expectFailure(
      r,
      1,
      new RegExp(
        `^vgpuctl: error: cannot place 3 x T4-8Q: only 2 fit \\(${T18}: 0 free, 2 of 2 in use by VMs vdi-t4-01; ${T3B}: 2 free; ${TAF}: 0 free, the GPU already carries nvidia-230 and allows one vGPU type per GPU\\); lower --count or free devices first\\n$`,
      ),
    );
    expect(r.stderr).not.toContain(T86);
    expect(treeDiff(before, await snapshotTree(host.root))).toEqual({ added: [], removed: [], changed: [] });
  });

  it('with -p the request goes to that GPU only', async () => {
    const host = await fixtureHost('t4x4-seed001');
    const out = await simJson(host, ['create', '--profile', 'T4-8Q', '-p', 'af:00.0', '--count', '2']);
    expect(parentsOf(out)).toEqual([TAF, TAF]);
    expect(await avail(host, T3B, 'nvidia-233')).toBe(2);
  });
});

describe('a100d-sriov-seed002: one vGPU per VF, MIG slices, no time-sliced/MIG mix', () => {
  const GPU21_DEVICES = ['5c630867-a673-5d75-aa31-a499e6c7cb19', 'eaa6e018-308e-58e2-b351-aadbcf01f5a8', 'da3566e4-df16-5aee-962c-bf1d02ac624b', 'e14355f9-33b9-590e-b65a-876490a15407'];

  /** The fixture with one A100D-2-20C of GPU 81 destroyed: two of its seven slices free, VF 81:00.5 idle. */
  async function a100dTwoSlicesFree(): Promise<HostRoot> {
    const host = await fixtureHost('a100d-sriov-seed002');
    await simJson(host, ['destroy', '-u', '0a47ffd1-392e-5373-8428-707a4e0ce31a']);
    return host;
  }

  it('--count 2 puts the two devices on two free VFs of the GPU with room, never two on one VF', async () => {
    const host = await a100dTwoSlicesFree();
    const out = await simJson(host, ['create', '--profile', 'A100D-1-10C', '--count', '2', '-u', U[0], U[1]]);
    expect(out.created).toEqual([
      { uuid: U[0], parent: '0000:81:00.5', type: 'nvidia-699', profile: 'A100D-1-10C' },
      { uuid: U[1], parent: '0000:81:01.0', type: 'nvidia-699', profile: 'A100D-1-10C' },
    ]);
    await expectActive(host, U[0], '0000:81:00.5', 'nvidia-699');
    await expectActive(host, U[1], '0000:81:01.0', 'nvidia-699');
    // Each used VF offers nothing more; the GPU's seven slices are used up, so no VF of 81 offers a MIG type.
    expect(Object.values(await availAll(host, '0000:81:00.5')).every((n) => n === 0)).toBe(true);
    expect(Object.values(await availAll(host, '0000:81:01.0')).every((n) => n === 0)).toBe(true);
    expect(await avail(host, '0000:81:01.1', 'nvidia-699')).toBe(0);
  });

  it('a request over the free MIG slices is refused whole, naming the slices; nothing is created', async () => {
    const host = await a100dTwoSlicesFree();
    const before = await snapshotTree(host.root);
    const three = await sim(host, ['create', '--profile', 'A100D-1-10C', '--count', '3']);
    expectFailure(
      three,
      1,
      /cannot place 3 x A100D-1-10C: only 2 fit \(0000:21:00\.0: 0 free, 7 of the GPU's 7 MIG slices are in use and A100D-1-10C needs 1; 0000:81:00\.0: 2 free\)/,
    );
    const twoBig = await sim(host, ['create', '--profile', 'A100D-2-20C', '--count', '2']);
    expectFailure(twoBig, 1, /cannot place 2 x A100D-2-20C: only 1 fit \(.*0000:81:00\.0: 1 free\)/);
    const threeSlices = await sim(host, ['create', '--profile', 'A100D-3-40C']);
    expectFailure(threeSlices, 1, /0000:81:00\.0: 0 free, 5 of the GPU's 7 MIG slices are in use and A100D-3-40C needs 3/);
    expect(treeDiff(before, await snapshotTree(host.root))).toEqual({ added: [], removed: [], changed: [] });
    // One 2-slice profile does fit, on the first free VF.
    const one = await simJson(host, ['create', '--profile', 'A100D-2-20C']);
    expect(parentsOf(one)).toEqual(['0000:81:00.5']);
  });

  it('-p on a VF that already carries a vGPU is refused: one vGPU per VF', async () => {
    const host = await a100dTwoSlicesFree();
    const r = await sim(host, ['create', '--profile', 'A100D-1-10C', '-p', '0000:81:00.4']);
    expectFailure(r, 1, /no instances of A100D-1-10C left on 0000:81:00\.4: the virtual function already carries a vGPU \(one vGPU per virtual function\)/);
    const two = await sim(host, ['create', '--profile', 'A100D-1-10C', '-p', '0000:81:00.5', '--count', '2']);
    expectFailure(two, 1, /cannot place 2 x A100D-1-10C: only 1 fit/);
  });

  it('time-sliced on a MIG GPU is refused, and MIG-backed on a time-sliced GPU', async () => {
    const host = await a100dTwoSlicesFree();
    const onMig = await sim(host, ['create', '--profile', 'A100D-4C', '-p', '0000:81:00.5']);
    expectFailure(onMig, 1, /no instances of A100D-4C left on 0000:81:00\.5: the GPU carries MIG-backed vGPUs and cannot take time-sliced ones/);
    const anywhere = await sim(host, ['create', '--profile', 'A100D-4C']);
    expectFailure(anywhere, 1, /0000:21:00\.0: 0 free, the GPU carries MIG-backed vGPUs and cannot take time-sliced ones; 0000:81:00\.0: 0 free, the GPU carries MIG-backed vGPUs/);

    // Empty GPU 21: time-sliced vGPUs go there, one per VF, and then MIG-backed ones are shut out of it.
    for (const u of GPU21_DEVICES) await simJson(host, ['destroy', '-u', u]);
    expect(await avail(host, '0000:21:00.4', 'nvidia-692')).toBe(1);
    const ts = await simJson(host, ['create', '--profile', 'A100D-4C', '--count', '3']);
    expect(parentsOf(ts)).toEqual(['0000:21:00.4', '0000:21:00.5', '0000:21:00.6']);
    expect(await avail(host, '0000:21:00.7', 'nvidia-692')).toBe(1);
    expect(await avail(host, '0000:21:00.7', 'nvidia-699')).toBe(0); // the simulated driver agrees
    const mig = await sim(host, ['create', '--profile', 'A100D-1-10C', '-p', '0000:21:00.7']);
    expectFailure(mig, 1, /no instances of A100D-1-10C left on 0000:21:00\.7: the GPU carries time-sliced vGPUs and cannot take MIG-backed ones/);
    // Without -p the MIG request goes to GPU 81, which has MIG room.
    const migElsewhere = await simJson(host, ['create', '--profile', 'A100D-1-10C']);
    expect(parentsOf(migElsewhere)).toEqual(['0000:81:00.5']);
  });
});

describe('p40-seed004 and samples-mtty', () => {
  it('P40: --count fills the one GPU up to the type\'s limit, one more is refused', async () => {
    const host = await fixtureHost('p40-seed004');
    const out = await simJson(host, ['create', '--profile', 'P40-6Q', '--count', '4']);
    expect(parentsOf(out)).toEqual(Array(4).fill('0000:82:00.0'));
    expect(await avail(host, '0000:82:00.0', 'nvidia-50')).toBe(0);
    expectFailure(await sim(host, ['create', '--profile', 'P40-6Q']), 1, /no instances of P40-6Q left on 0000:82:00\.0: 4 of 4 in use/);
  });

  it('sample drivers: a type is placed on the one parent that offers it, with no NVIDIA rule', async () => {
    const host = await fixtureHost('samples-mtty');
    const a = await simJson(host, ['create', '-t', 'mbochs-medium', '--count', '2']);
    expect(parentsOf(a)).toEqual(['mbochs', 'mbochs']);
    const b = await simJson(host, ['create', '-t', 'mbochs-small', '--count', '3', '--spread']);
    expect(parentsOf(b)).toEqual(['mbochs', 'mbochs', 'mbochs']);
    // mbochs' 64 memory units: medium takes 4, small 1 → 11 used, 53 left (small 53, medium 13, large 3).
    expect(await availAll(host, 'mbochs')).toEqual({ 'mbochs-large': 3, 'mbochs-medium': 13, 'mbochs-small': 53 });
  });
});
