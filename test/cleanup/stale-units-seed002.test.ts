/**
 * Seed 002 (StackHPC's kayobe role): one `nvidia-mdev@<uuid>.service` unit file per UUID plus its
 * multi-user.target.wants link. Once a device is undefined and stopped its unit stays behind; cleanup
 * removes exactly that unit and its link and keeps every unit whose UUID is still defined.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { snapshotTree } from '../helpers/hosts.js';
import { SEED002_UUIDS } from '../helpers/seed002.js';
import { freshCopyOf } from './host-copies.js';
import { fakeNvidiaSmi, vgpuQuery } from './fake-tools.js';

const UUIDS = SEED002_UUIDS;
const GONE = 'e14355f9-33b9-590e-b65a-876490a15407'; // A100D-1-10C on VF 0000:21:00.7
const SYSTEMD = 'etc/systemd/system';
const unitFile = (u: string) => `${SYSTEMD}/nvidia-mdev@${u}.service`;
const wantsLink = (u: string) => `${SYSTEMD}/multi-user.target.wants/nvidia-mdev@${u}.service`;

/** No VM runs on seed 002's compute node: the driver lists both GPUs without vGPUs. */
const NO_VGPUS = vgpuQuery([
  { busId: '00000000:21:00.0', vgpus: [] },
  { busId: '00000000:81:00.0', vgpus: [] },
]);

describe('cleanup on a100d-sriov-seed002', () => {
  it('finds no stale unit while every UUID is defined, and changes nothing', async () => {
    const host = await freshCopyOf('a100d-sriov-seed002');
    const tools = ['--nvidia-smi', fakeNvidiaSmi(NO_VGPUS)];
    const before = await snapshotTree(host.root);
    const dry = await cli(['--root', host.root, 'cleanup', '--dry-run', '-o', 'json', ...tools]);
    expect(dry.code).toBe(0);
    expect(dry.json().findings).toEqual([]);
    expect(dry.json().actions).toEqual([]);
    const real = await cli(['--root', host.root, '--simulate', 'cleanup', ...tools]);
    expect(real.code).toBe(0);
    expect(real.stdout.trim()).toBe('Nothing to clean up.');
    const after = await snapshotTree(host.root);
    for (const [p, v] of before) expect(after.get(p), p).toBe(v);
  });

  it('removes the unit file and wants link of an undefined, stopped device and keeps the others', async () => {
    const host = await freshCopyOf('a100d-sriov-seed002');
    const root = host.root;
    const tools = ['--nvidia-smi', fakeNvidiaSmi(NO_VGPUS)];
    const undef = await cli(['--root', root, '--simulate', 'undefine', '-u', GONE]);
    expect(undef.code, undef.stderr).toBe(0);
    const stop = await cli(['--root', root, '--simulate', 'stop', '-u', GONE]);
    expect(stop.code, stop.stderr).toBe(0);
    expect(await fs.readdir(path.join(root, 'etc/mdevctl.d/0000:21:00.7')).catch(() => [])).toEqual([]);

    const before = await snapshotTree(root);
    expect(before.get(wantsLink(GONE))).toBe(`-> /${unitFile(GONE)}`);
    expect(before.get(unitFile(GONE))).toContain('ExecStart=-/usr/sbin/mdevctl start --uuid %i');

    const dry = await cli(['--root', root, 'cleanup', '--dry-run', '-o', 'json', ...tools]);
    expect(dry.code).toBe(0);
    expect(dry.json().findings.map((f: any) => [f.kind, f.subject, f.detail.split(':')[0]])).toEqual([
      ['stale-unit', GONE, `/${wantsLink(GONE)}`],
      ['stale-unit', GONE, `/${unitFile(GONE)}`],
    ]);

    const r = await cli(['--root', root, '--simulate', 'cleanup', '-o', 'json', ...tools]);
    expect(r.code).toBe(0);
    expect(r.json().actions.map((a: any) => a.line)).toEqual([`rm /${wantsLink(GONE)}`, `rm /${unitFile(GONE)}`]);
    const after = await snapshotTree(root);
    expect(after.has(wantsLink(GONE))).toBe(false);
    expect(after.has(unitFile(GONE))).toBe(false);
    // Every other device's unit and link, and the SR-IOV and MIG units, are as they were.
    for (const u of UUIDS.filter((x) => x !== GONE)) {
      expect(after.get(unitFile(u))).toBe(before.get(unitFile(u)));
      expect(after.get(wantsLink(u))).toBe(`-> /${unitFile(u)}`);
    }
    const removed = [...before.keys()].filter((k) => !after.has(k));
    expect(removed.sort()).toEqual([unitFile(GONE), wantsLink(GONE)].sort());
    for (const k of [...before.keys()].filter((k) => k.startsWith('etc/'))) if (after.has(k)) expect(after.get(k), k).toBe(before.get(k));
    expect(after.get(`${SYSTEMD}/multi-user.target.wants/nvidia-sriov-0000:21:00.0.service`)).toBe(`-> /${SYSTEMD}/nvidia-sriov-0000:21:00.0.service`);

    // Idempotent: nothing left to do.
    const again = await cli(['--root', root, 'cleanup', '--dry-run', '-o', 'json', ...tools]);
    expect(again.json().findings).toEqual([]);
  });

  it('keeps the unit of a device that is undefined but still active (its UUID is not gone)', async () => {
    const host = await freshCopyOf('a100d-sriov-seed002');
    const tools = ['--nvidia-smi', fakeNvidiaSmi(NO_VGPUS)];
    expect((await cli(['--root', host.root, '--simulate', 'undefine', '-u', GONE])).code).toBe(0);
    const dry = await cli(['--root', host.root, 'cleanup', '--dry-run', '-o', 'json', ...tools]);
    // Active, undefined, no VM: an orphan mdev (kept without --orphans), but its boot unit is not stale.
    expect(dry.json().findings.map((f: any) => [f.kind, f.subject, f.resolution])).toEqual([['undefined-active-mdev', GONE, 'kept']]);
  });
});
