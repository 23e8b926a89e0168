/** define / undefine / modify on vendor-VFIO vGPUs: named by VF address or handle, kept in /etc/vgpuctl/vendor-vgpus.json. */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, snapshotTree } from '../helpers/hosts.js';
import { vfHandle } from '../../src/vendor-vfio/discovery.js';
import { loadFixture } from '../../src/simulator/layout.js';

const STATE = 'etc/vgpuctl/vendor-vgpus.json';
const defs = (root: string) => JSON.parse(readFileSync(path.join(root, STATE), 'utf8')).vgpus as Array<{ vf: string; type: string; profile: string | null; start: string }>;
const current = (root: string, vf: string) => readFileSync(path.join(root, 'sys/bus/pci/devices', vf, 'nvidia/current_vgpu_type'), 'utf8').trim();

describe('define on vendor-VFIO VFs', () => {
  it('defines an active vGPU as it is (by VF), another by handle with a profile; the other definition is kept', async () => {
    const host = await hostFrom('l40s-vfio');
    expect((await cli(['--root', host.root, '--simulate', 'create', '--profile', 'L40S-8Q', '-p', '0000:41:00.4'])).code).toBe(0);
    const a = await cli(['--root', host.root, '--simulate', 'define', '-u', '41:00.4', '--auto', '-o', 'json']);
    expect(a.stderr).toBe('');
    expect(a.code).toBe(0);
    expect(a.json().defined).toEqual({ uuid: vfHandle('0000:41:00.4'), parent: '0000:41:00.4', vf: '0000:41:00.4', type: 'nvidia-1152', profile: 'L40S-8Q', start: 'auto', replaced: false });
    expect(a.json().actions).toEqual([expect.objectContaining({ kind: 'write-file', path: '/etc/vgpuctl/vendor-vgpus.json' })]);
    // By handle, on a free VF: nothing is created, the definition is written.
    const b = await cli(['--root', host.root, '--simulate', 'define', '-u', vfHandle('0000:41:00.5'), '-p', '0000:41:00.5', '--profile', 'L40S-8Q', '-o', 'json']);
    expect(b.stderr).toBe('');
    expect(b.json().defined).toMatchObject({ vf: '0000:41:00.5', type: 'nvidia-1152', start: 'manual' });
    expect(current(host.root, '0000:41:00.5')).toBe('0');
    expect(defs(host.root)).toEqual([
      { vf: '0000:41:00.4', type: 'nvidia-1152', profile: 'L40S-8Q', start: 'auto' },
      { vf: '0000:41:00.5', type: 'nvidia-1152', profile: 'L40S-8Q', start: 'manual' },
    ]);
    const list = (await cli(['--root', host.root, 'list', '--defined', '-o', 'json'])).json();
    expect(list.devices.map((d: any) => [d.vf, d.active, d.defined, d.autostart])).toEqual([['0000:41:00.4', true, true, true], ['0000:41:00.5', false, true, false]]);
    // start -u VF creates the defined vGPU.
    expect((await cli(['--root', host.root, '--simulate', 'start', '-u', vfHandle('0000:41:00.5')])).code).toBe(0);
    expect(current(host.root, '0000:41:00.5')).toBe('1152');
  });

  it('refuses what cannot apply to a VF, with exit 2 for bad input and 1 for refusals, writing nothing', async () => {
    const host = await hostFrom('l40s-vfio');
    await cli(['--root', host.root, '--simulate', 'create', '--profile', 'L40S-8Q', '-p', '0000:41:00.4', '--define']);
    const before = await snapshotTree(host.root);
    const cases: Array<[string[], number, RegExp]> = [
      [['define', '-u', '0000:41:00.4', '--auto'], 1, /0000:41:00.4 is already defined \(nvidia-1152 on 0000:41:00.4, start manual, \/etc\/vgpuctl\/vendor-vgpus.json\); use --force/],
      [['define', '-u', '0000:41:00.4', '-t', 'nvidia-1153', '--force'], 1, /0000:41:00.4 carries nvidia-1152 now, not nvidia-1153; define it as it is/],
      [['define', '-u', '0000:41:00.5'], 2, /0000:41:00.5 carries no vGPU now, so its type must be given/],
      [['define', '-u', '0000:41:00.5', '-t', 'nvidia-286'], 1, /the GPU of 0000:41:00.5 has no vGPU type nvidia-286; nothing was written\. Its types: .*1152 \(L40S-8Q\)/],
      [['define', '-u', '334852fe-079b-11ee-9fc7-77463608f467', '-p', '0000:41:00.5', '-t', 'nvidia-1152'], 2, new RegExp(`its vGPU is named by the VF, with the handle ${vfHandle('0000:41:00.5')}; give -u 0000:41:00.5`)],
      [['define', '-u', '0000:41:00.5', '-p', '0000:41:00.6', '-t', 'nvidia-1152'], 2, /-u 0000:41:00.5 names the virtual function already/],
      [['define', '-u', '0000:41:00.5', '-t', 'nvidia-1152', '--backend', 'mdevctl'], 2, /mdevctl cannot define vGPUs on vendor-VFIO virtual functions/],
      [['define', '-u', '0000:41:00.5', '-t', 'nvidia-1152', '--dry-run'], 0, /^$/],
      [['modify', '-u', '0000:41:00.5', '--auto'], 1, /no definition of 0000:41:00.5; see 'vgpuctl list --defined'/],
      [['undefine', '-u', vfHandle('0000:41:00.6')], 1, /no definition of .* \(0000:41:00.6\)/],
      [['modify', '-u', '0000:41:00.4', '--auto', '--dry-run'], 0, /^$/],
      [['undefine', '-u', '0000:41:00.4', '--dry-run'], 0, /stays active until destroyed/],
    ];
    for (const [args, code, err] of cases) {
      const r = await cli(['--root', host.root, '--simulate', ...args]);
      expect([args.join(' '), r.code]).toEqual([args.join(' '), code]);
      expect(r.stderr.trim()).toMatch(err);
    }
    expect(await snapshotTree(host.root)).toEqual(before);
  });

  it('--force replaces, modify and undefine touch only their VF; an unreadable file is never overwritten', async () => {
    const host = await hostFrom('l40s-vfio');
    await cli(['--root', host.root, '--simulate', 'create', '--profile', 'L40S-12Q', '--count', '3', '--define', '--auto']);
    const r = await cli(['--root', host.root, '--simulate', 'define', '-u', '0000:41:00.5', '--manual', '--force', '-o', 'json']);
    expect(r.json().defined).toMatchObject({ vf: '0000:41:00.5', start: 'manual', replaced: true });
    const m = await cli(['--root', host.root, '--simulate', 'modify', '-u', vfHandle('0000:41:00.6'), '--manual', '-o', 'json']);
    expect(m.json().modified).toEqual([{ uuid: vfHandle('0000:41:00.6'), parent: '0000:41:00.6', vf: '0000:41:00.6', start: 'manual' }]);
    const same = await cli(['--root', host.root, '--simulate', 'modify', '-u', '0000:41:00.6', '--manual']);
    expect(same.stderr).toMatch(/0000:41:00.6 already starts manual/);
    expect(defs(host.root).map((d) => [d.vf, d.start])).toEqual([['0000:41:00.4', 'auto'], ['0000:41:00.5', 'manual'], ['0000:41:00.6', 'manual']]);
    const u = await cli(['--root', host.root, '--simulate', 'undefine', '-u', '0000:41:00.5', '-o', 'json']);
    expect(u.json().undefined).toEqual([{ uuid: vfHandle('0000:41:00.5'), parent: '0000:41:00.5', vf: '0000:41:00.5', type: 'nvidia-1153' }]);
    expect(u.json().notes).toEqual(['the vGPU on 0000:41:00.5 stays active until destroyed (vgpuctl destroy -u 0000:41:00.5)']);
    expect(current(host.root, '0000:41:00.5')).toBe('1153');
    expect(defs(host.root).map((d) => d.vf)).toEqual(['0000:41:00.4', '0000:41:00.6']);

    // A definitions file vgpuctl cannot parse: refused, left as it is.
    writeFileSync(path.join(host.root, STATE), '{"version":1,"vgpus":[{"vf":"0000:41:00.4"');
    const broken = readFileSync(path.join(host.root, STATE), 'utf8');
    for (const args of [['define', '-u', '0000:41:00.7', '-t', 'nvidia-1153'], ['modify', '-u', '0000:41:00.4', '--manual'], ['create', '--profile', 'L40S-12Q', '--define']]) {
      const x = await cli(['--root', host.root, '--simulate', ...args]);
      expect([args[0], x.code]).toEqual([args[0], 1]);
      expect(x.stderr).toMatch(/vendor-vgpus.json: invalid .*nothing was written/);
    }
    expect(readFileSync(path.join(host.root, STATE), 'utf8')).toBe(broken);
  });

  it('defines a VF that is not present yet (SR-IOV off) by address and type, with a warning', async () => {
    const spec = loadFixture('h100-vfio');
    spec.pci[0]!.sriov!.numvfs = 0;
    const host = await hostFrom(spec);
    const r = await cli(['--root', host.root, '--simulate', 'define', '-u', '0000:c1:00.4', '-t', 'nvidia-1306', '--auto', '-o', 'json']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/0000:c1:00.4 is not present now \(SR-IOV not enabled yet\?\)/);
    // No VF names the type yet and the catalogue has no public id for it: the profile is not guessed.
    expect(defs(host.root)).toEqual([{ vf: '0000:c1:00.4', type: 'nvidia-1306', profile: null, start: 'auto' }]);
    // After sriov enable, the boot job starts it.
    expect((await cli(['--root', host.root, '--simulate', 'sriov', 'enable'])).code).toBe(0);
    const s = await cli(['--root', host.root, '--simulate', 'start', '--autostart', '-o', 'json']);
    expect(s.json().started.map((x: any) => x.parent)).toEqual(['0000:c1:00.4']);
    expect(current(host.root, '0000:c1:00.4')).toBe('1306');
    // On a host with no SR-IOV GPU, a PCI address in -u is refused.
    const p40 = await hostFrom('p40-seed004');
    const x = await cli(['--root', p40.root, 'define', '-u', '0000:82:00.4', '-t', 'nvidia-286']);
    expect(x.code).toBe(1);
    expect(x.stderr).toMatch(/0000:82:00.4 is not a virtual function of an SR-IOV NVIDIA GPU on this host/);
  });

  it('concurrent defines, modifies and creates on different VFs lose no definition (each rewrites the file under the host lock)', async () => {
    const host = await hostFrom('l40s-vfio');
    const vfs = ['0000:41:00.4', '0000:41:00.5', '0000:41:00.6', '0000:41:00.7', '0000:41:01.0', '0000:41:01.1'];
    const runs = await Promise.all([
      ...vfs.map((vf, i) => cli(['--root', host.root, '--simulate', 'define', '-u', vf, '-t', 'nvidia-1152', ...(i % 2 ? ['--auto'] : []), '--lock-timeout', '60'])),
      cli(['--root', host.root, '--simulate', 'create', '--profile', 'L40S-8Q', '-p', '0000:41:01.2', '--define', '--lock-timeout', '60']),
    ]);
    expect(runs.map((r) => [r.code, r.stderr])).toEqual(runs.map(() => [0, '']));
    expect(defs(host.root).map((d) => [d.vf, d.start])).toEqual([...vfs.map((vf, i) => [vf, i % 2 ? 'auto' : 'manual']), ['0000:41:01.2', 'manual']]);
    const mods = await Promise.all(vfs.map((vf) => cli(['--root', host.root, '--simulate', 'modify', '-u', vf, '--auto', '--lock-timeout', '60'])));
    expect(mods.map((r) => r.code)).toEqual(vfs.map(() => 0));
    expect(defs(host.root).filter((d) => d.start === 'auto').map((d) => d.vf)).toEqual(vfs);
  });

  it('a definition of a type the VF cannot create now is written with a warning; starting it is refused before the write, with the creatable list', async () => {
    const host = await hostFrom('l40s-vfio');
    expect((await cli(['--root', host.root, '--simulate', 'create', '--profile', 'L40S-8Q', '-p', '0000:41:00.4'])).code).toBe(0);
    const d = await cli(['--root', host.root, '--simulate', 'define', '-u', '0000:41:00.5', '--profile', 'L40S-48Q', '--auto']);
    expect(d.code).toBe(0);
    expect(d.stderr).toMatch(/warning: L40S-48Q is not creatable on 0000:41:00.5 now \(the GPU holds other sizes or is full\); the definition is written/);
    const before = await snapshotTree(host.root);
    const s = await cli(['--root', host.root, '--simulate', 'start', '-u', '0000:41:00.5']);
    expect(s.code).toBe(1);
    expect(s.stderr).toMatch(/type L40S-48Q \(1156\) is not creatable on 0000:41:00.5; nothing was written\. Creatable there now: 1152 \(L40S-8Q\), 1162 \(L40S-8A\)/);
    const boot = await cli(['--root', host.root, '--simulate', 'start', '--autostart', '-o', 'json']);
    expect(boot.code).toBe(1);
    expect(boot.json().failed).toEqual([{ uuid: vfHandle('0000:41:00.5'), parent: '0000:41:00.5', error: expect.stringMatching(/is not creatable on 0000:41:00.5; nothing was written/) }]);
    expect(await snapshotTree(host.root)).toEqual(before);
  });

  it('mdev define keeps working beside vendor definitions on a mixed host', async () => {
    const host = await hostFrom('mixed-mdev-vfio');
    await cli(['--root', host.root, '--simulate', 'create', '--profile', 'L40S-8Q', '--define']);
    const uuid = '334852fe-079b-11ee-9fc7-77463608f467';
    const r = await cli(['--root', host.root, '--simulate', 'define', '-u', uuid, '-p', '0000:82:00.0', '--profile', 'P40-12C', '-o', 'json']);
    expect(r.stderr).toBe('');
    expect(r.json().defined).toMatchObject({ uuid, parent: '0000:82:00.0', type: 'nvidia-286' });
    expect(JSON.parse(readFileSync(path.join(host.root, 'etc/mdevctl.d/0000:82:00.0', uuid), 'utf8')).mdev_type).toBe('nvidia-286');
    expect(defs(host.root)).toHaveLength(1);
  });
});
