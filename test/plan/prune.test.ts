/**
 * --prune on the leftovers host: it removes what the plan does not hold and no VM uses, never a device in
 * use — 334855e2 runs in guest y-k8s-n-1 (qemu holds it), 33485650 is named by the shut-off y-k8s-n-2 —
 * and reports those. Without --prune nothing unplanned is touched; everything is listed in `unplanned`.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { HostRoot } from '../../src/host/host-root.js';
import { hostFrom, snapshotTree } from '../helpers/hosts.js';
import { cloneHost, devices, exists, sim, treeDiff, writePlan } from './plan-helpers.js';

const RUNNING = '334855e2-079b-11ee-9fc9-83e0dccb6713'; // active, defined auto, in running guest y-k8s-n-1
const NAMED_OFF = '33485650-079b-11ee-9fca-8f6415d2734c'; // defined auto, not active, named by shut-off y-k8s-n-2
const UNDEFINED = '3348556a-079b-11ee-9fc8-7fb0c612aedd'; // active, never defined, no domain
const BAD_TYPE = 'd5603837-d2d2-44e5-9e5b-1395873a6579'; // definition of nvidia-999 on 0000:82:00.0
const ORPHANS = ['69dd62f7-7825-4dc6-89a2-be4c9bcea5bc', '98198e75-9728-42dc-96c3-87eefe76a96d']; // under the absent 0000:83:00.0

// Keep only the undefined device (adopted through its explicit UUID); everything else is unplanned.
const PLAN = writePlan(`version: 1
gpus:
  - select: { address: "0000:82:00.0" }
    profile: P40-6Q
    count: 1
    uuids: ["${UNDEFINED}"]
`);

let leftovers: HostRoot;
beforeAll(async () => {
  leftovers = await hostFrom('leftovers');
});

const byUuid = (rows: Array<{ uuid: string }>): Record<string, any> => Object.fromEntries(rows.map((r) => [r.uuid, r]));

describe('apply --prune on the leftovers host', () => {
  it('removes what no VM uses, keeps and reports the devices in use', async () => {
    const host = cloneHost(leftovers);
    const r = await sim(host, 'apply', '-f', PLAN, '--prune', '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    const report = r.json();
    const u = byUuid(report.unplanned);

    // In use: reported with who uses them, not pruned.
    expect(u[RUNNING]).toMatchObject({ active: true, defined: true, pruned: false, in_use: expect.arrayContaining(['domain y-k8s-n-1']) });
    expect(u[RUNNING].in_use.some((x: string) => /^qemu .*pid 41977/.test(x))).toBe(true);
    expect(u[NAMED_OFF]).toMatchObject({ active: false, defined: true, pruned: false, in_use: ['domain y-k8s-n-2 (off)'] });
    // Not in use: pruned.
    for (const uuid of [BAD_TYPE, ...ORPHANS]) expect(u[uuid]).toMatchObject({ pruned: true, in_use: [] });

    const changes = report.changes.map((c: { action: string; uuid: string }) => `${c.action} ${c.uuid}`).sort();
    expect(changes).toEqual([`define ${UNDEFINED}`, `undefine ${BAD_TYPE}`, `undefine ${ORPHANS[0]}`, `undefine ${ORPHANS[1]}`].sort());
    expect(changes.some((c: string) => c.includes(RUNNING) || c.includes(NAMED_OFF))).toBe(false);

    // On the host: the devices in use are exactly as they were.
    const rows = byUuid(await devices(host));
    expect(rows[RUNNING]).toMatchObject({ active: true, defined: true, autostart: true });
    expect(rows[NAMED_OFF]).toMatchObject({ active: false, defined: true, autostart: true });
    expect(rows[UNDEFINED]).toMatchObject({ active: true, defined: true, autostart: true });
    expect(Object.keys(rows).sort()).toEqual([RUNNING, NAMED_OFF, UNDEFINED].sort());
    expect(await exists(host.path(`/etc/mdevctl.d/0000:82:00.0/${BAD_TYPE}`))).toBe(false);
    expect(await exists(host.path(`/etc/mdevctl.d/0000:83:00.0/${ORPHANS[0]}`))).toBe(false);

    // The table output says what was left alone and why.
    const again = await sim(host, 'apply', '-f', PLAN, '--prune');
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/No changes/);
    expect(again.stdout).toMatch(new RegExp(`${RUNNING}.*active\\+defined.*domain y-k8s-n-1`));
    expect(again.stdout).toMatch(new RegExp(`${NAMED_OFF}.*defined.*domain y-k8s-n-2 \\(off\\)`));
    expect((await sim(host, 'assert', '-f', PLAN)).code).toBe(0);
  });

  it('prunes an active device no VM uses (remove, then nothing left of it)', async () => {
    const host = cloneHost(leftovers);
    // This time the plan keeps the running guest's device; the undefined active one goes.
    const plan = writePlan(`version: 1\ngpus:\n  - { select: { address: "0000:82:00.0" }, profile: P40-6Q, count: 1, uuids: ["${RUNNING}"] }\n`);
    const r = await sim(host, 'apply', '-f', plan, '--prune', '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().changes).toContainEqual({ action: 'remove', uuid: UNDEFINED, parent: '0000:82:00.0', type: 'nvidia-50' });
    expect(byUuid(r.json().unplanned)[NAMED_OFF]).toMatchObject({ pruned: false });
    expect(await exists(host.path(`/sys/bus/mdev/devices/${UNDEFINED}`))).toBe(false);
    expect((await devices(host)).map((d) => d.uuid).sort()).toEqual([RUNNING, NAMED_OFF].sort());
  });

  it('refuses a plan that needs a device in use to go, naming the device and its VM, and changes nothing', async () => {
    const host = cloneHost(leftovers);
    const plan = writePlan('version: 1\ngpus:\n  - { select: { address: "0000:82:00.0" }, profile: P40-12C, count: 1 }\n');
    const before = await snapshotTree(host.root);
    const r = await sim(host, 'apply', '-f', plan, '--prune');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the GPU already carries nvidia-50 and allows one vGPU type per GPU \(in use, cannot be pruned: /);
    expect(r.stderr).toMatch(new RegExp(`${RUNNING} by domain y-k8s-n-1`));
    expect(r.stderr).toMatch(new RegExp(`${NAMED_OFF} by domain y-k8s-n-2 \\(off\\)`));
    expect(treeDiff(before, await snapshotTree(host.root))).toEqual([]);
  });
});

describe('apply without --prune', () => {
  it('leaves every unplanned device alone and lists it in `unplanned`', async () => {
    const host = cloneHost(leftovers);
    const before = await devices(host);
    const r = await sim(host, 'apply', '-f', PLAN, '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().changes).toEqual([{ action: 'define', uuid: UNDEFINED, parent: '0000:82:00.0', type: 'nvidia-50' }]);
    const u = r.json().unplanned;
    expect(u.map((x: { uuid: string }) => x.uuid).sort()).toEqual([RUNNING, NAMED_OFF, BAD_TYPE, ...ORPHANS].sort());
    expect(u.every((x: { pruned: boolean }) => !x.pruned)).toBe(true);
    expect(byUuid(u)[ORPHANS[0]!]).toMatchObject({ reason: 'on a GPU the plan does not manage', defined: true, active: false });
    expect(byUuid(u)[BAD_TYPE]).toMatchObject({ reason: 'on 0000:82:00.0, which the plan manages' });

    // Only the planned device changed (it is now defined); the rest is as it was.
    const after = await devices(host);
    expect(after.filter((d) => d.uuid !== UNDEFINED)).toEqual(before.filter((d) => d.uuid !== UNDEFINED));
    expect(byUuid(after)[UNDEFINED]).toMatchObject({ active: true, defined: true });
    const table = await sim(host, 'apply', '-f', PLAN);
    expect(table.stdout).toMatch(/Not in the plan, left alone \(use --prune to remove what no VM uses\):/);
    for (const uuid of [RUNNING, NAMED_OFF, BAD_TYPE, ...ORPHANS]) expect(table.stdout).toContain(uuid);
  });
});
