/**
 * Deterministic UUIDs: the same plan on two copies of a host gives the same UUIDs (derived from the host's
 * machine-id, or the plan's uuid_namespace), a re-apply after a reboot brings back the very same UUIDs,
 * and devices of the planned type that are already there are adopted, not recreated.
 */
import { promises as fs } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { HostRoot } from '../../src/host/host-root.js';
import { hostNamespace, slotUuid } from '../../src/plan/converge.js';
import { hostFrom } from '../helpers/hosts.js';
import { activeUuids, cloneHost, devices, rebootHost, sim, writePlan } from './plan-helpers.js';

const P40 = '0000:82:00.0';
const P40_PLAN = writePlan(`version: 1
gpus:
  - select: { address: "${P40}" }
    profile: P40-12C
    count: 2
`);
// Seed 002's host with its first GPU re-cut to 2 x A100D-3-40C (MIG 3g.40gb): its four vGPUs go, two come.
const A100_PLAN = writePlan(`version: 1
gpus:
  - { select: { pf: "0000:21:00.0" }, profile: A100D-3-40C, count: 2 }
  - { select: { pf: "0000:81:00.0" }, type: nvidia-700, count: 3 }
  - { select: { pf: "0000:81:00.0" }, type: nvidia-699, count: 1 }
`);

/** The SR-IOV host's simulated writes each rescan 40 VFs: slow on a busy machine. */
const SLOW = 180_000;

let p40: HostRoot;
let a100: HostRoot;
beforeAll(async () => {
  [p40, a100] = await Promise.all([hostFrom('p40-seed004'), hostFrom('a100d-sriov-seed002')]);
}, SLOW);

const plannedUuids = (r: { json: () => any }): string[] => r.json().devices.map((d: { uuid: string }) => d.uuid).sort();

describe('deterministic UUIDs', () => {
  it('the same plan on two fresh copies of a host gives the same UUIDs, derived from machine-id and slot', async () => {
    const [a, b] = [cloneHost(p40), cloneHost(p40)];
    const ra = await sim(a, 'apply', '-f', P40_PLAN, '-o', 'json');
    const rb = await sim(b, 'apply', '-f', P40_PLAN, '-o', 'json');
    expect([ra.code, rb.code]).toEqual([0, 0]);
    expect(plannedUuids(ra)).toEqual(plannedUuids(rb));
    expect(await activeUuids(a)).toEqual(await activeUuids(b));
    // The fixtures have no /etc/machine-id: the default host namespace.
    expect(ra.json().namespace).toBe(hostNamespace(null));
    expect(plannedUuids(ra)).toEqual([slotUuid(hostNamespace(null), P40, 0), slotUuid(hostNamespace(null), P40, 1)].sort());

    // Two hosts with their own machine-id: same UUIDs per machine-id, other UUIDs on another host.
    const [c, d, e] = [cloneHost(p40), cloneHost(p40), cloneHost(p40)];
    await fs.writeFile(c.path('/etc/machine-id'), '4f1c0d6a2b7e4e0f9d3c8b5a6e7f8091\n');
    await fs.writeFile(d.path('/etc/machine-id'), '4f1c0d6a2b7e4e0f9d3c8b5a6e7f8091\n');
    await fs.writeFile(e.path('/etc/machine-id'), '0a9b8c7d6e5f40312a3b4c5d6e7f8090\n');
    const [rc, rd, re] = [await sim(c, 'apply', '-f', P40_PLAN, '-o', 'json'), await sim(d, 'apply', '-f', P40_PLAN, '-o', 'json'), await sim(e, 'apply', '-f', P40_PLAN, '-o', 'json')];
    expect(plannedUuids(rc)).toEqual(plannedUuids(rd));
    expect(rc.json().namespace).toBe(hostNamespace('4f1c0d6a2b7e4e0f9d3c8b5a6e7f8091'));
    expect(plannedUuids(re)).not.toEqual(plannedUuids(rc));
    expect(plannedUuids(rc)).not.toEqual(plannedUuids(ra));

    // uuid_namespace in the plan wins over the machine-id.
    const ns = '8d7c6b5a-4e3f-4a1b-9c8d-7e6f5a4b3c2d';
    const pinned = writePlan(`version: 1\nuuid_namespace: "${ns}"\ngpus:\n  - { select: { address: "${P40}" }, profile: P40-12C, count: 2 }\n`);
    const rf = await sim(cloneHost(p40), 'apply', '-f', pinned, '-o', 'json');
    expect(plannedUuids(rf)).toEqual([slotUuid(ns, P40, 0), slotUuid(ns, P40, 1)].sort());
  });

  it('two fresh copies of the SR-IOV host get the same UUIDs for the new MIG vGPUs (slot 0 of each VF)', async () => {
    const [a, b] = [cloneHost(a100), cloneHost(a100)];
    const ra = await sim(a, 'apply', '-f', A100_PLAN, '--prune', '-o', 'json');
    const rb = await sim(b, 'apply', '-f', A100_PLAN, '--prune', '-o', 'json');
    expect([ra.code, rb.code], ra.stderr + rb.stderr).toEqual([0, 0]);
    const created = ra.json().changes.filter((c: { action: string }) => c.action === 'create');
    expect(created).toHaveLength(2);
    expect(rb.json().changes).toEqual(ra.json().changes);
    expect(await devices(a)).toEqual(await devices(b));
    // Each new vGPU's UUID is slot 0 of its VF.
    for (const c of created) expect(c.uuid).toBe(slotUuid(hostNamespace(null), c.parent, 0));
  }, SLOW);
});

describe('after a reboot', () => {
  it('a re-apply starts the same UUIDs again (P40), and recreates them even when the definitions are gone', async () => {
    const host = cloneHost(p40);
    const first = await sim(host, 'apply', '-f', P40_PLAN, '-o', 'json');
    expect(first.code).toBe(0);
    const uuids = plannedUuids(first);

    expect(await rebootHost(host)).toEqual(uuids);
    expect(await activeUuids(host)).toEqual([]);
    const differs = await sim(host, 'assert', '-f', P40_PLAN, '-o', 'json');
    expect(differs.code).toBe(1);
    expect(differs.json().differences.map((d: { action: string }) => d.action)).toEqual(['start', 'start']);

    const again = await sim(host, 'apply', '-f', P40_PLAN, '-o', 'json');
    expect(again.code, again.stderr).toBe(0);
    expect(again.json().changes.map((c: { action: string; uuid: string }) => `${c.action} ${c.uuid}`).sort()).toEqual(uuids.map((u) => `start ${u}`));
    expect(await activeUuids(host)).toEqual(uuids);
    expect((await sim(host, 'assert', '-f', P40_PLAN)).code).toBe(0);

    // A reinstalled host: no definitions and no devices. The same UUIDs are created again.
    await rebootHost(host);
    await fs.rm(host.path(`/etc/mdevctl.d/${P40}`), { recursive: true });
    const fresh = await sim(host, 'apply', '-f', P40_PLAN, '-o', 'json');
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(fresh.json().changes.filter((c: { action: string }) => c.action === 'create').map((c: { uuid: string }) => c.uuid).sort()).toEqual(uuids);
    expect(await activeUuids(host)).toEqual(uuids);
  });

  it('a re-apply starts the same UUIDs on every VF of the SR-IOV host (StackHPC UUIDs kept, new ones deterministic)', async () => {
    const host = cloneHost(a100);
    const first = await sim(host, 'apply', '-f', A100_PLAN, '--prune', '-o', 'json');
    expect(first.code, first.stderr).toBe(0);
    const before = await devices(host);
    expect(before).toHaveLength(6);
    // The second GPU keeps StackHPC's UUIDs (uuid5 of the VF address).
    expect(before.filter((d) => d.parent.startsWith('0000:81:')).map((d) => d.uuid)).toContain('72291b01-689b-5b7a-9171-6b3480deabf4');

    await rebootHost(host);
    expect(await activeUuids(host)).toEqual([]);
    const again = await sim(host, 'apply', '-f', A100_PLAN, '--prune', '-o', 'json');
    expect(again.code, again.stderr).toBe(0);
    expect(new Set(again.json().changes.map((c: { action: string }) => c.action))).toEqual(new Set(['start']));
    expect(await devices(host)).toEqual(before);
  }, SLOW);

  it('a destroyed planned device comes back with its own UUID (no clash with the device adopted into its slot)', async () => {
    const host = cloneHost(p40);
    const uuids = plannedUuids(await sim(host, 'apply', '-f', P40_PLAN, '-o', 'json'));
    const slot0 = slotUuid(hostNamespace(null), P40, 0);
    expect(uuids).toContain(slot0);
    expect((await sim(host, 'destroy', '-u', slot0)).code).toBe(0);

    const r = await sim(host, 'apply', '-f', P40_PLAN, '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().changes.map((c: { action: string; uuid: string }) => `${c.action} ${c.uuid}`)).toEqual([`create ${slot0}`, `define ${slot0}`]);
    expect(await activeUuids(host)).toEqual(uuids);
    expect((await sim(host, 'assert', '-f', P40_PLAN)).code).toBe(0);
  });
});

describe('adoption', () => {
  it('a device made by hand with the planned type is adopted (defined, not recreated); the plan adds the rest', async () => {
    const host = cloneHost(p40);
    const made = await sim(host, 'create', '--profile', 'P40-12C');
    expect(made.code, made.stderr).toBe(0);
    const handMade = made.stdout.trim();
    const groupBefore = await fs.readlink(host.path(`/sys/bus/mdev/devices/${handMade}/iommu_group`));

    const r = await sim(host, 'apply', '-f', P40_PLAN, '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    const adopted = r.json().devices.find((d: { uuid: string }) => d.uuid === handMade);
    expect(adopted).toMatchObject({ adopted: true, needs: ['define'], type: 'nvidia-286', parent: P40 });
    const changes = r.json().changes.map((c: { action: string; uuid: string }) => `${c.action} ${c.uuid}`);
    expect(changes).not.toContain(`create ${handMade}`);
    expect(changes).not.toContain(`remove ${handMade}`);
    // The new device takes slot 0's UUID: the hand-made one holds none of the derived UUIDs.
    const slot0 = slotUuid(hostNamespace(null), P40, 0);
    expect(changes.sort()).toEqual([`create ${slot0}`, `define ${handMade}`, `define ${slot0}`].sort());
    // Same device, not a new one: its IOMMU group (allocated at creation) is unchanged.
    expect(await fs.readlink(host.path(`/sys/bus/mdev/devices/${handMade}/iommu_group`))).toBe(groupBefore);
    expect((await devices(host)).find((d) => d.uuid === handMade)).toMatchObject({ active: true, defined: true, autostart: true });

    // Idempotent from there, and a reboot brings the adopted UUID back too.
    expect((await sim(host, 'apply', '-f', P40_PLAN, '-o', 'json')).json().changed).toBe(false);
    await rebootHost(host);
    expect((await sim(host, 'apply', '-f', P40_PLAN)).code).toBe(0);
    expect(await activeUuids(host)).toEqual([handMade, slot0].sort());
  });

  it('a defined, stopped device of the planned type is started and its start mode set, not replaced', async () => {
    const host = cloneHost(p40);
    const made = await sim(host, 'create', '--profile', 'P40-12C', '--define', '--manual');
    const uuid = made.stdout.trim();
    expect((await sim(host, 'stop', '-u', uuid)).code).toBe(0);
    const r = await sim(host, 'apply', '-f', P40_PLAN, '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().devices.find((d: { uuid: string }) => d.uuid === uuid)).toMatchObject({ adopted: true, needs: ['start', 'set-start'] });
    expect((await devices(host)).find((d) => d.uuid === uuid)).toMatchObject({ active: true, defined: true, autostart: true });
  });

  it('a device of another type is not adopted: the plan is refused while it stays, and --prune replaces it', async () => {
    const host = cloneHost(p40);
    const other = (await sim(host, 'create', '--profile', 'P40-6Q', '--define', '--auto')).stdout.trim();
    const refused = await sim(host, 'apply', '-f', P40_PLAN);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/carries nvidia-50 and allows one vGPU type per GPU; run with --prune/);
    const r = await sim(host, 'apply', '-f', P40_PLAN, '--prune', '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().unplanned).toEqual([expect.objectContaining({ uuid: other, pruned: true })]);
    expect(await activeUuids(host)).toEqual([slotUuid(hostNamespace(null), P40, 0), slotUuid(hostNamespace(null), P40, 1)].sort());
  });
});
