/**
 * What the next run does with the intent record of a killed lifecycle command (src/lifecycle/intent.ts),
 * beyond the crash-consistency sweep: the rules an operator relies on.
 *   - A rollback never removes a device a running VM uses, and says so.
 *   - A definition the killed run replaced or removed on the way comes back byte for byte.
 *   - A re-run that cannot finish (the device was changed meanwhile) refuses, keeps the record, and the
 *     next other command rolls it back.
 *   - A record that cannot be written stops the command before its first change.
 *   - A record vgpuctl did not write is refused with its path, never guessed around.
 *   - A dry run shows what a real run would do with a record; cleanup rolls one back too.
 */
import { promises as fs } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostRoot } from '../../src/host/host-root.js';
import { snapshotTree } from '../helpers/hosts.js';
import { parseVendorDefinitions, VENDOR_STATE_PATH } from '../../src/vendor-vfio/state.js';
import { INTENT, P40, U, buildCli, copyHost, fixtureHost, killInsideWriteEnv, lexists, listTmpLitter, put, readState, sim, spawnCli, withFileFault } from '../helpers/hardening.js';

let bin: string;
let base: HostRoot;

beforeAll(async () => {
  bin = await buildCli();
  base = await fixtureHost('p40-seed004');
}, 120_000);

const def = (type: string, start: 'auto' | 'manual') => `{\n  "mdev_type": "${type}",\n  "start": "${start}",\n  "attrs": []\n}`;
const running = (name: string, uuid: string) =>
  `<domstatus state='running' reason='booted' pid='4242'><domain type='kvm' id='7'><name>${name}</name><devices><hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci'><source><address uuid='${uuid}'/></source></hostdev></devices></domain></domstatus>`;

/** Runs `args` in a child that kills itself right after step `step` (1: the intent record). */
async function killedAt(host: HostRoot, args: string[], step: number): Promise<void> {
  const r = await spawnCli(bin, host, args, { env: { VGPUCTL_SIM_CRASH_AFTER: `step:${step}` } });
  expect(r.signal, r.stderr).toBe('SIGKILL');
  expect(await lexists(host.path(INTENT))).toBe(true);
}

describe('the intent record of a killed command', () => {
  it('a rollback never removes a device a running VM uses; it says which it kept and why', async () => {
    const host = copyHost(base);
    // Killed after the record and two of three creates, before any definition.
    await killedAt(host, ['create', '--profile', 'P40-6Q', '--count', '3', '--define', '-u', U[0], U[1], U[2]], 3);
    expect((await readState(host)).active).toEqual([`${U[0]} ${P40} nvidia-50`, `${U[1]} ${P40} nvidia-50`]);
    await put(host, '/run/libvirt/qemu/vm-a.xml', running('vm-a', U[0]));
    const r = await sim(host, ['define', '-u', U[4], '-p', P40, '-t', 'nvidia-286']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`a previous 'create' \\(pid \\d+, started [^)]+\\) was interrupted; rolled back: remove ${U[1]} \\(P40-6Q on ${P40}\\); ${U[0]} stays: in use by domain vm-a`));
    const s = await readState(host);
    expect(s.active).toEqual([`${U[0]} ${P40} nvidia-50`]);
    expect(Object.keys(s.defs)).toEqual([`etc/mdevctl.d/${P40}/${U[4]}`]);
    expect(s.intent).toBe(false);
  });

  it('define --force killed after it wrote: another command puts the replaced definition back byte for byte', async () => {
    const host = copyHost(base);
    const old = `${def('nvidia-50', 'manual')}\n`; // a StackHPC-written file, with its newline
    await put(host, `/etc/mdevctl.d/${P40}/${U[0]}`, old);
    await killedAt(host, ['define', '-u', U[0], '-p', P40, '-t', 'nvidia-286', '--auto', '--force'], 2);
    expect(await fs.readFile(host.path(`/etc/mdevctl.d/${P40}/${U[0]}`), 'utf8')).toBe(def('nvidia-286', 'auto'));
    const r = await sim(host, ['create', '-t', 'nvidia-50', '-p', P40, '-u', U[3]]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/was interrupted; rolled back: put back [0-9a-f-]{36} under 0000:82:00\.0 as it was/);
    expect(await fs.readFile(host.path(`/etc/mdevctl.d/${P40}/${U[0]}`), 'utf8')).toBe(old);
    expect((await readState(host)).intent).toBe(false);
  });

  it('a definition the killed run had removed on the way (mdevctl undefine, then define) comes back', async () => {
    // What `define --force --backend mdevctl` leaves when killed between its two mdevctl runs: the old file
    // gone, the new one not written yet, the record saying what was there.
    const host = copyHost(base);
    const old = def('nvidia-50', 'manual');
    const file = `/etc/mdevctl.d/${P40}/${U[0]}`;
    await put(
      host,
      INTENT,
      JSON.stringify({ version: 1, pid: 999999, started: '2026-11-25T10:00:00.000Z', command: 'define', key: '{}', creates: [], files: [{ file, before: old, after: { type: 'nvidia-286', start: 'auto' } }] }),
    );
    const r = await sim(host, ['create', '-t', 'nvidia-50', '-p', P40, '-u', U[3]]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`a previous 'define' (pid 999999, started 2026-11-25T10:00:00.000Z) was interrupted; rolled back: put back ${U[0]} under ${P40} as it was`);
    expect(await fs.readFile(host.path(file), 'utf8')).toBe(old);
    expect((await readState(host)).active).toEqual([`${U[3]} ${P40} nvidia-50`]);
  });

  it('a re-run that cannot finish refuses and keeps the record; the next other command rolls it back', async () => {
    const host = copyHost(base);
    const args = ['create', '--profile', 'P40-6Q', '--count', '2', '-u', U[0], U[1]];
    await killedAt(host, args, 2); // the record and U0
    // Meanwhile someone defines U1 as another device (mdevctl define, not a vgpuctl run).
    await put(host, `/etc/mdevctl.d/${P40}/${U[1]}`, def('nvidia-286', 'auto'));
    const again = await sim(host, args);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(
      `vgpuctl: error: UUID ${U[1]} is already defined (nvidia-286 on ${P40}, start auto, /etc/mdevctl.d/${P40}/${U[1]}), not as the interrupted create asked; undefine it or create with other UUIDs`,
    );
    expect((await readState(host)).intent).toBe(true);
    const other = await sim(host, ['undefine', '-u', U[1]]);
    expect(other.code, other.stderr).toBe(0);
    expect(other.stderr).toMatch(new RegExp(`rolled back: remove ${U[0]} \\(P40-6Q on ${P40}\\)`));
    const s = await readState(host);
    expect(s.active).toEqual([]);
    expect(s.intent).toBe(false);
  });

  it('a dry run of the re-run shows the actions that finish it, with the UUIDs the killed run generated; it changes nothing', async () => {
    const host = copyHost(base);
    const args = ['create', '--profile', 'P40-6Q', '--count', '2', '--define'];
    await killedAt(host, args, 2); // the record and the first device
    const record = JSON.parse(await fs.readFile(host.path(INTENT), 'utf8')) as { creates: Array<{ uuid: string }> };
    const [first, second] = record.creates.map((c) => c.uuid);
    const before = await readState(host);
    const dry = await sim(host, [...args, '--dry-run', '-o', 'json']);
    expect(dry.code, dry.stderr).toBe(0);
    const out = dry.json();
    expect(out.notes[0]).toMatch(/^a previous 'create' \(pid \d+, started [^)]+\) was interrupted; these actions finish it$/);
    expect(out.notes[1]).toBe(`took over 1 device(s) the interrupted create had made: ${first}`);
    expect(out.actions.map((a: { summary: string }) => a.summary)).toEqual([
      `create ${second} (P40-6Q on ${P40})`,
      `define ${first} (P40-6Q on ${P40}), start manual`,
      `define ${second} (P40-6Q on ${P40}), start manual`,
    ]);
    expect(await readState(host)).toEqual(before);
    const other = await sim(host, ['stop', '-u', first!, '--dry-run']);
    expect(other.stderr).toMatch(/was interrupted; a real run first rolls it back \(not shown in these actions\)/);
    expect(await readState(host)).toEqual(before);
  });

  it('cleanup rolls an interrupted create back before it looks for leftovers', async () => {
    const host = copyHost(base);
    await killedAt(host, ['create', '--profile', 'P40-6Q', '--count', '2', '--define', '-u', U[0], U[1]], 4); // both devices, the first definition
    const r = await sim(host, ['cleanup', '--orphans', '--nvidia-smi', '/nonexistent/nvidia-smi']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`rolled back: remove ${U[0]} (P40-6Q on ${P40}); remove ${U[1]} (P40-6Q on ${P40}); remove /etc/mdevctl.d/${P40}/${U[0]}, written by the interrupted run`);
    const s = await readState(host);
    expect(s.active).toEqual([]);
    expect(s.defs).toEqual({});
    expect(s.intent).toBe(false);
  });

  it('the record cannot be written (full disk, I/O error at open, write or rename): refused before any change, nothing left', async () => {
    const stages = ['open', 'write', 'rename'] as const;
    for (const stage of stages) {
      for (const errno of ['ENOSPC', 'EIO']) {
        const host = copyHost(base);
        const before = await readState(host);
        const tree = await snapshotTree(host.root);
        const { result: r, fired } = await withFileFault({ file: host.path(INTENT), stage, errno }, () => sim(host, ['create', '--profile', 'P40-6Q', '--count', '2', '--define', '-u', U[0], U[1]]));
        expect(fired, `${stage} ${errno}`).toBe(true);
        expect(r.code, `${stage} ${errno}`).toBe(1);
        expect(r.stderr).toBe(`vgpuctl: error: cannot write the intent record /var/lib/vgpuctl/intent.json: ${errno}; nothing was changed\n`);
        expect(await readState(host)).toEqual(before);
        expect(await listTmpLitter(host)).toEqual([]);
        expect(await snapshotTree(host.root)).toEqual(tree);
      }
    }
  });

  it('a record vgpuctl did not write is refused with its path, and nothing is changed', async () => {
    const host = copyHost(base);
    await put(host, INTENT, '{"creates": "all of them"}');
    const before = await readState(host);
    const r = await sim(host, ['create', '-t', 'nvidia-50', '-p', P40, '-u', U[0]]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^vgpuctl: error: \/var\/lib\/vgpuctl\/intent\.json is not an intent record of vgpuctl \(.+\); look at it, and remove it if no vgpuctl run was interrupted\n$/);
    expect(await readState(host)).toEqual({ ...before, lock: false });
  });
});

// ---------------------------------------------------------------------------------------------------
// vendor-VFIO (l40s-vfio): the VFs a killed run set and /etc/vgpuctl/vendor-vgpus.json.

const VF = ['0000:41:00.4', '0000:41:00.5', '0000:41:00.6', '0000:41:00.7'] as const;
const currentType = (host: HostRoot, vf: string) => fs.readFile(host.path(`/sys/bus/pci/devices/${vf}/nvidia/current_vgpu_type`), 'utf8').then((t) => t.trim());
const vendorFile = (host: HostRoot) => fs.readFile(host.path(VENDOR_STATE_PATH), 'utf8').catch(() => null);
const runningOnVf = (name: string, vf: string) => {
  const [, bus, sf] = vf.split(':');
  const [slot, fn] = sf!.split('.');
  return `<domstatus state='running' reason='booted' pid='4243'><domain type='kvm' id='8'><name>${name}</name><devices><hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' bus='0x${bus}' slot='0x${slot}' function='0x${fn}'/></source></hostdev></devices></domain></domstatus>`;
};
/** A definitions file written by hand (compact, no newline): a rollback must give back exactly these bytes. */
const HAND_WRITTEN = `{"version":1,"vgpus":[{"vf":"${VF[0]}","type":"nvidia-1150","profile":"L40S-4Q","start":"manual"},{"vf":"${VF[1]}","type":"nvidia-1150","profile":"L40S-4Q","start":"manual"}]}`;

let vendorBase: HostRoot;
beforeAll(async () => {
  vendorBase = await fixtureHost('l40s-vfio');
});

/** l40s-vfio with L40S-4Q on VF[0], VF[1] (defined by hand) and VF[2] (not defined). */
async function vendorHost(): Promise<HostRoot> {
  const host = copyHost(vendorBase);
  expect((await sim(host, ['create', '--profile', 'L40S-4Q', '--count', '3'])).code).toBe(0);
  await put(host, VENDOR_STATE_PATH, HAND_WRITTEN);
  return host;
}

describe('the intent record of a killed vendor-VFIO command', () => {
  it('a re-run of create --count 3 finishes it on the VFs the killed run chose, writing only the missing ones', async () => {
    const host = copyHost(vendorBase);
    await killedAt(host, ['create', '--profile', 'L40S-4Q', '--count', '3', '--define', '--auto'], 2); // the record, VF[0]
    expect(await Promise.all(VF.map((v) => currentType(host, v)))).toEqual(['1150', '0', '0', '0']);
    const record = JSON.parse(await fs.readFile(host.path(INTENT), 'utf8'));
    expect(record.vendor).toEqual({ creates: VF.slice(0, 3).map((vf) => ({ vf, type: 'nvidia-1150' })), file: { before: null, after: expect.stringContaining(VF[2]) } });
    const r = await sim(host, ['create', '--profile', 'L40S-4Q', '--count', '3', '--define', '--auto', '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/a previous 'create' \(pid \d+, started [^)]+\) was interrupted; finishing it/);
    const out = r.json();
    expect(out.created.map((c: { vf: string }) => c.vf)).toEqual(VF.slice(0, 3));
    expect(out.actions.map((a: { summary: string }) => a.summary)).toEqual([`create L40S-4Q on ${VF[1]}`, `create L40S-4Q on ${VF[2]}`, `define L40S-4Q on ${VF[0]}, L40S-4Q on ${VF[1]}, L40S-4Q on ${VF[2]}, start auto`]);
    expect(await Promise.all(VF.map((v) => currentType(host, v)))).toEqual(['1150', '1150', '1150', '0']);
    expect(JSON.parse((await vendorFile(host))!).vgpus.map((d: { vf: string; start: string }) => `${d.vf} ${d.start}`)).toEqual(VF.slice(0, 3).map((v) => `${v} auto`));
    expect((await readState(host)).intent).toBe(false);
  });

  it('another command empties the VFs the killed create set, except one a running VM uses (said), and removes the file it made', async () => {
    const host = copyHost(vendorBase);
    await killedAt(host, ['create', '--profile', 'L40S-4Q', '--count', '3', '--define'], 5); // every VF and the file
    expect(await vendorFile(host)).not.toBeNull();
    await put(host, '/run/libvirt/qemu/vm-v.xml', runningOnVf('vm-v', VF[1]));
    const r = await sim(host, ['create', '--profile', 'L40S-4Q', '-p', VF[3]]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `was interrupted; rolled back: destroy nvidia-1150 on ${VF[0]}; destroy nvidia-1150 on ${VF[2]}; remove ${VENDOR_STATE_PATH}, written by the interrupted run; the vGPU on ${VF[1]} stays: in use by domain vm-v`,
    );
    expect(await Promise.all(VF.map((v) => currentType(host, v)))).toEqual(['0', '1150', '0', '1150']);
    expect(await vendorFile(host)).toBeNull();
    expect((await readState(host)).intent).toBe(false);
  });

  it('define killed after its write: another command puts the hand-written vendor-vgpus.json back byte for byte; a vGPU the killed run did not make stays', async () => {
    const host = await vendorHost();
    await killedAt(host, ['define', '-u', VF[2], '--auto'], 2);
    expect(await vendorFile(host)).not.toBe(HAND_WRITTEN);
    const r = await sim(host, ['modify', '-u', VF[0], '--auto']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`rolled back: put back ${VENDOR_STATE_PATH} as it was`);
    // The rollback restored the file exactly, then modify rewrote it (canonical form) with VF[0] auto and no VF[2].
    expect(JSON.parse((await vendorFile(host))!).vgpus.map((d: { vf: string; start: string }) => `${d.vf} ${d.start}`)).toEqual([`${VF[0]} auto`, `${VF[1]} manual`]);
    expect(await Promise.all(VF.map((v) => currentType(host, v)))).toEqual(['1150', '1150', '1150', '0']);

    const host2 = await vendorHost();
    await killedAt(host2, ['define', '-u', VF[2], '--auto'], 2);
    // Another command that does not touch the file: the hand-written bytes come back unchanged.
    expect((await sim(host2, ['create', '--profile', 'L40S-4Q', '-p', VF[3]])).code).toBe(0);
    expect(await vendorFile(host2)).toBe(HAND_WRITTEN);
  });
});

describe('a kill inside the write of vendor-vgpus.json (open, half-written, synced, before the rename) never loses a definition', () => {
  const OTHER_VF = '0000:41:01.0';
  const cases = [
    { name: 'define -u VF --auto', args: ['define', '-u', VF[2], '--auto'], other: ['create', '--profile', 'L40S-4Q', '-p', OTHER_VF] },
    { name: 'create -p VF --define --auto', args: ['create', '--profile', 'L40S-4Q', '-p', VF[3], '--define', '--auto'], other: ['create', '--profile', 'L40S-4Q', '-p', OTHER_VF] },
    { name: 'destroy -u VF (its definition goes)', args: ['destroy', '-u', VF[0]], other: null },
  ];
  const stages = ['open', 'half-written', 'synced'] as const;
  const counts = { kills: 0, lost: 0, reRuns: 0, rollbacks: 0 };

  afterAll(() => {
    console.log(
      `vendor-vgpus.json kill inside its write: ${counts.kills} kills (${stages.join(', ')} x ${cases.length} commands), ${counts.reRuns} re-runs reached the uninterrupted result, ` +
        `${counts.rollbacks} other commands put the file back byte for byte; lost: ${counts.lost}`,
    );
  });

  for (const c of cases) {
    it(c.name, async () => {
      const ref = await vendorHost();
      expect((await sim(ref, c.args)).code).toBe(0);
      const finished = await vendorFile(ref);
      const wanted = JSON.parse(HAND_WRITTEN).vgpus.map((d: { vf: string }) => d.vf);
      for (const stage of stages) {
        const host = await vendorHost();
        const r = await spawnCli(bin, host, c.args, { env: killInsideWriteEnv(host.path(VENDOR_STATE_PATH), stage) });
        expect(r.signal, `${stage}: ${r.stderr}`).toBe('SIGKILL');
        counts.kills++;
        // The file is the one before, byte for byte: no definition is lost, none is torn.
        const after = await vendorFile(host);
        const kept = after === null ? [] : (parseVendorDefinitions(after) ?? []).map((d) => d.vf);
        counts.lost += wanted.filter((vf: string) => !kept.includes(vf)).length;
        expect(after, stage).toBe(HAND_WRITTEN);
        const litter = await listTmpLitter(host);
        expect(litter, stage).toEqual([expect.stringMatching(/^etc\/vgpuctl\/\.vendor-vgpus\.json\.vgpuctl-\d+\.tmp$/)]);
        expect((await readState(host)).intent, stage).toBe(true);

        // ONE re-run finishes it: the file an uninterrupted run writes, the temporary file gone.
        const again = copyHost(host);
        const a = await sim(again, c.args);
        expect(a.code, `${stage}: ${a.stderr}`).toBe(0);
        expect(await vendorFile(again), stage).toBe(finished);
        expect(await listTmpLitter(again), stage).toEqual([]);
        expect((await readState(again)).intent, stage).toBe(false);
        counts.reRuns++;

        // Another command rolls it back: the hand-written bytes, the VF the killed create set emptied.
        if (c.other) {
          const other = copyHost(host);
          const o = await sim(other, c.other);
          expect(o.code, `${stage}: ${o.stderr}`).toBe(0);
          expect(await vendorFile(other), stage).toBe(HAND_WRITTEN);
          expect(await listTmpLitter(other), stage).toEqual([]);
          expect(await Promise.all([...VF, OTHER_VF].map((v) => currentType(other, v))), stage).toEqual(['1150', '1150', '1150', '0', '1150']);
          counts.rollbacks++;
        }
      }
    });
  }
});
