/** assert and apply --prune with vendor-VFIO vGPUs, on the mixed host (one mdev GPU, one vendor-VFIO GPU). */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, snapshotTree, writePlanFile } from '../helpers/hosts.js';
import { MIXED_PLAN_TEXT } from './mixed-plan.js';
import type { HostRoot } from '../../src/host/host-root.js';
import { vfHandle } from '../../src/vendor-vfio/discovery.js';

const current = (root: string, vf: string) => readFileSync(path.join(root, 'sys/bus/pci/devices', vf, 'nvidia/current_vgpu_type'), 'utf8').trim();
const defs = (root: string) => JSON.parse(readFileSync(path.join(root, 'etc/vgpuctl/vendor-vgpus.json'), 'utf8')).vgpus as Array<{ vf: string; type: string; start: string }>;
const sim = (host: HostRoot, ...args: string[]) => cli(['--root', host.root, '--simulate', ...args]);

const planFile = writePlanFile;

const MIXED = planFile(MIXED_PLAN_TEXT);

/** A running libvirt domain with the VF as a PCI hostdev. */
function runningVm(host: HostRoot, name: string, vf: string): void {
  const [, bus, slotFn] = vf.split(':');
  const [slot, fn] = slotFn!.split('.');
  const xml = `<domain type='kvm'><name>${name}</name><devices><hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' bus='0x${bus}' slot='0x${slot}' function='0x${fn}'/></source></hostdev></devices></domain>`;
  mkdirSync(path.join(host.root, 'run/libvirt/qemu'), { recursive: true });
  writeFileSync(path.join(host.root, `run/libvirt/qemu/${name}.xml`), xml);
}

describe('assert on a mixed host', () => {
  it('differs before apply, matches after, and reports vendor drift (stopped VF, changed start, unplanned vGPU)', async () => {
    const host = await hostFrom('mixed-mdev-vfio');
    const before = await cli(['--root', host.root, 'assert', '-f', MIXED, '-o', 'json']);
    expect(before.stderr).toBe('');
    expect(before.code).toBe(1);
    const d0 = before.json().differences;
    // plan shows the capacity left on both GPUs after the plan: 48 GiB / 8 GiB = 6, 3 planned.
    const p = (await cli(['--root', host.root, 'plan', '-f', MIXED, '-o', 'json'])).json();
    expect(p.capacity).toEqual([
      { parent: '0000:82:00.0', type: 'nvidia-286', profile: 'P40-12C', available_after: 0 },
      { parent: '0000:41:00.0', type: 'nvidia-1152', profile: 'L40S-8Q', available_after: 3 },
    ]);
    expect(d0.filter((d: any) => d.parent.startsWith('0000:41:')).map((d: any) => `${d.action} ${d.parent}`)).toEqual(
      ['0000:41:00.4', '0000:41:00.5', '0000:41:00.6'].flatMap((vf) => [`create ${vf}`, `define ${vf}`]),
    );
    expect(d0.filter((d: any) => d.parent === '0000:82:00.0' && d.action === 'create')).toHaveLength(2);

    expect((await sim(host, 'apply', '-f', MIXED)).code).toBe(0);
    const ok = await cli(['--root', host.root, 'assert', '-f', MIXED, '-o', 'json']);
    expect(ok.json()).toEqual({ matches: true, differences: [], unplanned: [] });
    expect((await cli(['--root', host.root, 'assert', '-f', MIXED])).stdout).toMatch(/The host matches the plan\./);

    // Drift: one vendor vGPU stopped (definition kept), another set to start manual, one more vGPU nobody planned.
    expect((await sim(host, 'stop', '-u', vfHandle('0000:41:00.5'))).code).toBe(0);
    expect((await sim(host, 'modify', '-u', '0000:41:00.6', '--manual')).code).toBe(0);
    expect((await sim(host, 'create', '--profile', 'L40S-8Q', '-p', '0000:41:01.0')).code).toBe(0);
    const drift = await cli(['--root', host.root, 'assert', '-f', MIXED, '-o', 'json']);
    expect(drift.code).toBe(1);
    // The fewest changes: the vGPU present on 41:01.0 is adopted (a definition to write) rather than the
    // stopped 41:00.5 started again; 41:00.5 is then a definition the plan does not hold.
    expect(drift.json().differences).toEqual([
      { action: 'set-start', uuid: vfHandle('0000:41:00.6'), parent: '0000:41:00.6', type: 'nvidia-1152' },
      { action: 'define', uuid: vfHandle('0000:41:01.0'), parent: '0000:41:01.0', type: 'nvidia-1152' },
    ]);
    expect(drift.json().unplanned).toEqual([
      { uuid: vfHandle('0000:41:00.5'), parent: '0000:41:00.5', type: 'nvidia-1152', active: false, defined: true, in_use: [], reason: 'on 0000:41:00.0, which the plan manages', pruned: false },
    ]);
    const table = await cli(['--root', host.root, 'assert', '-f', MIXED]);
    expect(table.stdout).toMatch(/set-start\s+.*0000:41:00\.6\s+nvidia-1152/);
    // apply repairs the drift; assert matches again (the unplanned definition is listed, not a difference).
    expect((await sim(host, 'apply', '-f', MIXED)).code).toBe(0);
    const again = (await cli(['--root', host.root, 'assert', '-f', MIXED, '-o', 'json'])).json();
    expect(again.matches).toBe(true);
    expect(again.unplanned.map((u: any) => u.parent)).toEqual(['0000:41:00.5']);
    // Only a stopped vGPU and nothing else: assert names the start.
    expect((await sim(host, 'undefine', '-u', '0000:41:00.5')).code).toBe(0);
    expect((await sim(host, 'stop', '-u', '0000:41:00.4')).code).toBe(0);
    const stopped = (await cli(['--root', host.root, 'assert', '-f', MIXED, '-o', 'json'])).json();
    expect(stopped.differences).toEqual([{ action: 'start', uuid: vfHandle('0000:41:00.4'), parent: '0000:41:00.4', type: 'nvidia-1152' }]);
  });

  it('a vendor entry the host can never carry is bad input (exit 2)', async () => {
    const host = await hostFrom('mixed-mdev-vfio');
    const r = await cli(['--root', host.root, 'assert', '-f', planFile('version: 1\ngpus:\n  - select: { pf: "0000:41:00.0" }\n    profile: L40S-48Q\n    count: 2\n')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/gpus\[0\] \(L40S-48Q\): 0000:41:00.0 has room for 1 more L40S-48Q/);
  });
});

describe('apply --prune with vendor-VFIO vGPUs', () => {
  it('removes unplanned vendor vGPUs no VM uses, keeps the planned ones and the one a VM uses', async () => {
    const host = await hostFrom('mixed-mdev-vfio');
    expect((await sim(host, 'apply', '-f', MIXED)).code).toBe(0);
    // Unplanned: 41:00.7 (defined, no VM), 41:01.0 (active only, in a running VM), 41:01.1 (a definition only).
    expect((await sim(host, 'create', '--profile', 'L40S-8Q', '-p', '0000:41:00.7', '--define')).code).toBe(0);
    expect((await sim(host, 'create', '--profile', 'L40S-8Q', '-p', '0000:41:01.0')).code).toBe(0);
    expect((await sim(host, 'define', '-u', '0000:41:01.1', '-t', 'nvidia-1152')).code).toBe(0);
    runningVm(host, 'busy-vm', '0000:41:01.0');

    // Without --prune: listed, nothing touched.
    const untouched = await snapshotTree(host.root);
    const plain = (await sim(host, 'apply', '-f', MIXED, '-o', 'json')).json();
    expect(plain.changed).toBe(false);
    expect(plain.unplanned.map((u: any) => [u.parent, u.pruned])).toEqual([['0000:41:00.7', false], ['0000:41:01.0', false], ['0000:41:01.1', false]]);
    expect(await snapshotTree(host.root)).toEqual(untouched);

    // --dry-run shows the prune, changes nothing.
    const dry = (await sim(host, 'apply', '-f', MIXED, '--prune', '--dry-run', '-o', 'json')).json();
    expect(dry.changes.map((c: any) => `${c.action} ${c.parent}`)).toEqual(['remove 0000:41:00.7', 'undefine 0000:41:00.7', 'undefine 0000:41:01.1']);
    expect(await snapshotTree(host.root)).toEqual(untouched);

    const r = await sim(host, 'apply', '-f', MIXED, '--prune', '-o', 'json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const u = Object.fromEntries(r.json().unplanned.map((x: any) => [x.parent, x]));
    expect(u['0000:41:01.0']).toMatchObject({ pruned: false, in_use: ['domain busy-vm'], active: true });
    expect(u['0000:41:00.7']).toMatchObject({ pruned: true, active: true, defined: true });
    expect(current(host.root, '0000:41:00.7')).toBe('0');
    expect(current(host.root, '0000:41:01.0')).toBe('1152'); // a VM uses it: never touched
    for (const vf of ['0000:41:00.4', '0000:41:00.5', '0000:41:00.6']) expect(current(host.root, vf)).toBe('1152');
    expect(defs(host.root).map((d) => d.vf)).toEqual(['0000:41:00.4', '0000:41:00.5', '0000:41:00.6']);
    // The mdev side of the plan is untouched by the vendor prune.
    const list = (await cli(['--root', host.root, 'list', '--all', '-o', 'json'])).json();
    expect(list.devices.filter((d: any) => d.parent === '0000:82:00.0' && d.active && d.defined)).toHaveLength(2);
  });

  it('a vGPU of another size blocks the plan (exit 1, nothing written); --prune frees the GPU and creates the plan', async () => {
    const host = await hostFrom('mixed-mdev-vfio');
    expect((await sim(host, 'create', '--profile', 'L40S-24Q', '-p', '0000:41:00.4', '--define')).code).toBe(0);
    const before = await snapshotTree(host.root);
    const blocked = await sim(host, 'apply', '-f', MIXED);
    expect(blocked.code).toBe(1);
    expect(blocked.stderr).toMatch(/gpus\[1\] \(L40S-8Q\): 0000:41:00.0 has room for 0 more L40S-8Q/);
    expect(await snapshotTree(host.root)).toEqual(before);
    const r = await sim(host, 'apply', '-f', MIXED, '--prune', '-o', 'json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.json().changes.filter((c: any) => c.parent.startsWith('0000:41:')).map((c: any) => `${c.action} ${c.parent}`)).toEqual([
      'remove 0000:41:00.4', 'undefine 0000:41:00.4',
      'create 0000:41:00.4', 'define 0000:41:00.4', 'create 0000:41:00.5', 'define 0000:41:00.5', 'create 0000:41:00.6', 'define 0000:41:00.6',
    ]);
    for (const vf of ['0000:41:00.4', '0000:41:00.5', '0000:41:00.6']) expect(current(host.root, vf)).toBe('1152');
    expect((await cli(['--root', host.root, 'assert', '-f', MIXED])).code).toBe(0);
  });

  it('a VF carrying the planned type under a definition of another type (an apply killed before its definitions write): assert differs, apply rewrites the definition', async () => {
    const host = await hostFrom('mixed-mdev-vfio');
    expect((await sim(host, 'apply', '-f', MIXED)).code).toBe(0);
    const f = path.join(host.root, 'etc/vgpuctl/vendor-vgpus.json');
    writeFileSync(f, readFileSync(f, 'utf8').replace('"vf": "0000:41:00.4",\n      "type": "nvidia-1152",\n      "profile": "L40S-8Q"', '"vf": "0000:41:00.4",\n      "type": "nvidia-1150",\n      "profile": "L40S-4Q"'));
    expect(defs(host.root).find((d) => d.vf === '0000:41:00.4')!.type).toBe('nvidia-1150');
    const a = await cli(['--root', host.root, 'assert', '-f', MIXED, '-o', 'json']);
    expect(a.code).toBe(1);
    expect(a.json().differences).toEqual([{ action: 'define', uuid: vfHandle('0000:41:00.4'), parent: '0000:41:00.4', type: 'nvidia-1152' }]);
    expect((await sim(host, 'apply', '-f', MIXED)).code).toBe(0);
    expect(current(host.root, '0000:41:00.4')).toBe('1152');
    expect(defs(host.root).map((d) => `${d.vf} ${d.type} ${d.start}`)).toEqual(['0000:41:00.4', '0000:41:00.5', '0000:41:00.6'].map((vf) => `${vf} nvidia-1152 auto`));
    expect((await cli(['--root', host.root, 'assert', '-f', MIXED, '-o', 'json'])).json().matches).toBe(true);
  });

  it('after an interrupted apply, the vendor vGPU it created and the plan does not hold is taken back, never one a VM runs on', async () => {
    const host = await hostFrom('mixed-mdev-vfio');
    // The interrupted run created 41:01.0 and 41:01.1 (no definitions written yet); a VM already runs on 41:01.1.
    expect((await sim(host, 'create', '--profile', 'L40S-8Q', '-p', '0000:41:01.0')).code).toBe(0);
    expect((await sim(host, 'create', '--profile', 'L40S-8Q', '-p', '0000:41:01.1')).code).toBe(0);
    runningVm(host, 'early-vm', '0000:41:01.1');
    const journal = path.join(host.root, 'var/lib/vgpuctl/apply-journal.json');
    mkdirSync(path.dirname(journal), { recursive: true });
    const creates = ['0000:41:01.0', '0000:41:01.1'].map((vf) => ({ uuid: vfHandle(vf), parent: vf, type: 'nvidia-1152' }));
    writeFileSync(journal, JSON.stringify({ pid: 999999, started: '2026-11-25T00:00:00Z', creates }));
    // The plan now holds one L40S-8Q: 41:01.0 is adopted, 41:01.1 is unplanned but a VM runs on it.
    const plan = planFile('version: 1\ngpus:\n  - select: { pf: "0000:41:00.0" }\n    profile: L40S-8Q\n    count: 1\n');
    const r = await sim(host, 'apply', '-f', plan, '-o', 'json');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/a previous apply \(pid 999999.*\) was interrupted/);
    expect(r.json().devices.map((d: any) => d.parent)).toEqual(['0000:41:01.0']);
    expect(r.json().unplanned).toEqual([expect.objectContaining({ parent: '0000:41:01.1', pruned: false, in_use: ['domain early-vm'] })]);
    expect(current(host.root, '0000:41:01.1')).toBe('1152');
    // Interrupted again, and the VM is gone: without --prune, the journal's vGPU is taken back.
    writeFileSync(journal, JSON.stringify({ pid: 999999, started: '2026-11-25T00:00:00Z', creates }));
    rmSync(path.join(host.root, 'run/libvirt/qemu/early-vm.xml'));
    const r2 = await sim(host, 'apply', '-f', plan, '-o', 'json');
    expect(r2.code).toBe(0);
    expect(r2.json().unplanned).toEqual([expect.objectContaining({ parent: '0000:41:01.1', pruned: true })]);
    expect(current(host.root, '0000:41:01.1')).toBe('0');
    expect(current(host.root, '0000:41:01.0')).toBe('1152');
    expect((await cli(['--root', host.root, 'assert', '-f', plan])).code).toBe(0);
  });
});
