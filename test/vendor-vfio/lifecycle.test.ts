/**
 * Issue 9: vGPUs on SR-IOV VFs through nvidia/current_vgpu_type (no mdev bus), on the l40s-vfio and
 * h100-vfio fixtures, with the same JSON contract as mdev hosts.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, snapshotTree } from '../helpers/hosts.js';
import { parseCreatableVgpuTypes } from '../../src/vendor-vfio/creatable.js';
import { vfHandle } from '../../src/vendor-vfio/discovery.js';

const creatable = (root: string, vf: string) => readFileSync(path.join(root, 'sys/bus/pci/devices', vf, 'nvidia/creatable_vgpu_types'), 'utf8');
const current = (root: string, vf: string) => readFileSync(path.join(root, 'sys/bus/pci/devices', vf, 'nvidia/current_vgpu_type'), 'utf8').trim();

describe('creatable_vgpu_types parser', () => {
  it('reads the driver table, with or without the header, and the header-only file', () => {
    expect(parseCreatableVgpuTypes('ID    : vGPU Name\n1428 : NVIDIA H200X-141C\n1414 : NVIDIA H200X-1-18C\n')).toMatchObject([
      { id: 1428, typeId: 'nvidia-1428', name: 'NVIDIA H200X-141C', profile: { profile: 'H200X-141C' } },
      { id: 1414, typeId: 'nvidia-1414', profile: { profile: 'H200X-1-18C', migSlices: 1 } },
    ]);
    expect(parseCreatableVgpuTypes('1145 : NVIDIA L40S-1B')).toHaveLength(1);
    expect(parseCreatableVgpuTypes('ID    : vGPU Name\n')).toEqual([]);
  });
});

describe('l40s-vfio: types, create, list, destroy', () => {
  it('gpus shows vendor-vfio; types lists every VF with the catalogue fields', async () => {
    const host = await hostFrom('l40s-vfio');
    const g = (await cli(['--root', host.root, 'gpus', '-o', 'json'])).json();
    expect(g.gpus).toEqual([expect.objectContaining({ address: '0000:41:00.0', board: 'L40S', mode: 'vendor-vfio', vgpus_active: 0 })]);
    const t = (await cli(['--root', host.root, 'types', '-p', '0000:41:00.4', '-o', 'json'])).json();
    expect(t.types).toHaveLength(23);
    expect(t.types.find((x: any) => x.type === 'nvidia-1150')).toEqual({
      parent: '0000:41:00.4', type: 'nvidia-1150', name: 'NVIDIA L40S-4Q', profile: 'L40S-4Q', series: 'Q', framebuffer_mib: 4096,
      max_instances: 12, available_instances: 1, device_api: 'vfio-pci', description: null, num_heads: null, max_resolution: null,
    });
    const byProfile = (await cli(['--root', host.root, 'types', '--profile', 'L40S-4Q', '-o', 'json'])).json();
    expect(byProfile.types).toHaveLength(32);
  });

  it('create --profile --count writes the id to free VFs; the creatable lists shrink; list and destroy follow the contract', async () => {
    const host = await hostFrom('l40s-vfio');
    const r = await cli(['--root', host.root, '--simulate', 'create', '--profile', 'L40S-4Q', '--count', '3', '--define', '--auto', '-o', 'json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = r.json();
    expect(out.created).toEqual(['0000:41:00.4', '0000:41:00.5', '0000:41:00.6'].map((vf) => ({ uuid: vfHandle(vf), parent: vf, vf, type: 'nvidia-1150', profile: 'L40S-4Q' })));
    expect(out.actions[0]).toMatchObject({ kind: 'sysfs-write', path: '/sys/bus/pci/devices/0000:41:00.4/nvidia/current_vgpu_type', data: '1150' });
    expect(current(host.root, '0000:41:00.4')).toBe('1150');
    expect(creatable(host.root, '0000:41:00.4')).toBe('ID    : vGPU Name\n');
    // Equal-size mode: only 4 GiB types stay creatable on the other VFs.
    const left = parseCreatableVgpuTypes(creatable(host.root, '0000:41:00.7')).map((t) => t.profile!.profile);
    expect(left.sort()).toEqual(['L40S-4A', 'L40S-4Q']);
    const state = JSON.parse(readFileSync(path.join(host.root, 'etc/vgpuctl/vendor-vgpus.json'), 'utf8'));
    expect(state.vgpus).toHaveLength(3);

    const list = (await cli(['--root', host.root, 'list', '--all', '-o', 'json'])).json();
    expect(list.devices[0]).toEqual({
      uuid: vfHandle('0000:41:00.4'), parent: '0000:41:00.4', type: 'nvidia-1150', profile: 'L40S-4Q', active: true, defined: true, autostart: true,
      attrs: [], vm: null, vm_running: false, vf: '0000:41:00.4',
    });
    // -u takes the VF address (short or upper case too) or its handle; an mdev-only UUID matches none of them.
    for (const ref of ['0000:41:00.5', '41:00.5', vfHandle('0000:41:00.5')]) {
      const one = (await cli(['--root', host.root, 'list', '--all', '-u', ref, '-o', 'json'])).json();
      expect(one.devices.map((d: any) => d.vf)).toEqual(['0000:41:00.5']);
    }
    expect((await cli(['--root', host.root, 'list', '-u', '0000:41:00.3', '-o', 'json'])).json().devices).toEqual([]);
    const badRef = await cli(['--root', host.root, 'list', '-u', 'gpu0']);
    expect(badRef.code).toBe(2);
    expect(badRef.stderr).toMatch(/"gpu0" is not a UUID/);
    const gpus = (await cli(['--root', host.root, 'gpus', '-o', 'json'])).json();
    expect(gpus.gpus[0].vgpus_active).toBe(3);

    // 12 x 4 GiB fill the 48 GiB GPU: 9 more fit, 10 do not, refused before any write.
    const before = await snapshotTree(host.root);
    const tooMany = await cli(['--root', host.root, '--simulate', 'create', '--profile', 'L40S-4Q', '--count', '10']);
    expect(tooMany.code).toBe(1);
    expect(tooMany.stderr).toMatch(/only 9 fit, nothing was written/);
    expect(await snapshotTree(host.root)).toEqual(before);

    const d = await cli(['--root', host.root, '--simulate', 'destroy', '-u', vfHandle('0000:41:00.5'), '-o', 'json']);
    expect(d.code).toBe(0);
    expect(d.json().destroyed).toMatchObject({ uuid: vfHandle('0000:41:00.5'), vf: '0000:41:00.5', stopped: true, undefined: ['0000:41:00.5'] });
    expect(current(host.root, '0000:41:00.5')).toBe('0');
    expect(parseCreatableVgpuTypes(creatable(host.root, '0000:41:00.5')).map((t) => t.id).sort()).toEqual([1150, 1160]);
  });

  it('a type id that is not creatable is refused before the write, with the creatable list', async () => {
    const host = await hostFrom('l40s-vfio');
    expect((await cli(['--root', host.root, '--simulate', 'create', '-t', 'nvidia-1150', '-p', '0000:41:00.4'])).code).toBe(0);
    const before = await snapshotTree(host.root);
    const r = await cli(['--root', host.root, '--simulate', 'create', '-t', 'nvidia-1156', '-p', '41:00.5']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/type L40S-48Q \(1156\) is not creatable on 0000:41:00\.5; nothing was written\. Creatable there now: 1150 \(L40S-4Q\), 1160 \(L40S-4A\)/);
    expect(await snapshotTree(host.root)).toEqual(before);
    // The simulated kernel refuses it too (EINVAL), if something else writes it.
    const { SimulatedSysfsWriter } = await import('../../src/simulator/sim-writer.js');
    await expect(new SimulatedSysfsWriter(host).write(host.path('/sys/bus/pci/devices/0000:41:00.5/nvidia/current_vgpu_type'), '1156')).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(new SimulatedSysfsWriter(host).write(host.path('/sys/bus/pci/devices/0000:41:00.4/nvidia/current_vgpu_type'), '1150')).rejects.toMatchObject({ code: 'EBUSY' });
  });

  it('a VF in use by a VM is never destroyed (libvirt PCI hostdev, qemu command line)', async () => {
    const host = await hostFrom('l40s-vfio');
    await cli(['--root', host.root, '--simulate', 'create', '--profile', 'L40S-8Q', '--count', '2']);
    const xml = `<domain type='kvm'><name>gpu-vm</name><devices><hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' bus='0x41' slot='0x00' function='0x4'/></source></hostdev></devices></domain>`;
    mkdirSync(path.join(host.root, 'run/libvirt/qemu'), { recursive: true });
    writeFileSync(path.join(host.root, 'run/libvirt/qemu/gpu-vm.xml'), xml);
    mkdirSync(path.join(host.root, 'proc/4242'), { recursive: true });
    writeFileSync(path.join(host.root, 'proc/4242/cmdline'), ['/usr/bin/qemu-system-x86_64', '-name', 'guest=bare,debug-threads=on', '-device', 'vfio-pci,host=0000:41:00.5,id=hostdev0'].join('\0') + '\0');
    writeFileSync(path.join(host.root, 'proc/4242/comm'), 'qemu-system-x86\n');
    const list = (await cli(['--root', host.root, 'list', '-o', 'json'])).json();
    expect(list.devices.map((d: any) => [d.vf, d.vm, d.vm_running])).toEqual([['0000:41:00.4', 'gpu-vm', true], ['0000:41:00.5', 'bare', true]]);
    for (const vf of ['0000:41:00.4', '0000:41:00.5']) {
      const r = await cli(['--root', host.root, '--simulate', 'destroy', '-u', vfHandle(vf)]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/will not destroy the vGPU on .*in use by/);
      expect(current(host.root, vf)).toBe('1152');
    }
  });

  it('start --autostart recreates the definitions after a reboot (VFs empty again)', async () => {
    const host = await hostFrom('l40s-vfio');
    await cli(['--root', host.root, '--simulate', 'create', '--profile', 'L40S-12Q', '--count', '2', '--define', '--auto']);
    const fresh = await hostFrom('l40s-vfio');
    mkdirSync(path.join(fresh.root, 'etc/vgpuctl'), { recursive: true });
    writeFileSync(path.join(fresh.root, 'etc/vgpuctl/vendor-vgpus.json'), readFileSync(path.join(host.root, 'etc/vgpuctl/vendor-vgpus.json')));
    const r = await cli(['--root', fresh.root, '--simulate', 'start', '--autostart', '-o', 'json']);
    expect(r.code).toBe(0);
    expect(r.json().started.map((s: any) => s.parent)).toEqual(['0000:41:00.4', '0000:41:00.5']);
    expect(current(fresh.root, '0000:41:00.5')).toBe('1153');
    const again = (await cli(['--root', fresh.root, '--simulate', 'start', '--autostart', '-o', 'json'])).json();
    expect(again.already_active).toHaveLength(2);
  });
});

describe('h100-vfio', () => {
  it('types, create, list, destroy', async () => {
    const host = await hostFrom('h100-vfio');
    const t = (await cli(['--root', host.root, 'types', '--profile', 'H100-20C', '-o', 'json'])).json();
    expect(t.types[0]).toMatchObject({ type: 'nvidia-1306', profile: 'H100-20C', framebuffer_mib: 20480, max_instances: 4, available_instances: 1 });
    const c = await cli(['--root', host.root, '--simulate', 'create', '--profile', 'H100-20C', '--count', '4', '-o', 'json']);
    expect(c.code).toBe(0);
    expect(creatable(host.root, '0000:c1:00.4')).toBe('ID    : vGPU Name\n');
    // The GPU is full: every free VF prints the header only.
    expect(creatable(host.root, '0000:c1:01.0')).toBe('ID    : vGPU Name\n');
    const more = await cli(['--root', host.root, '--simulate', 'create', '--profile', 'H100-20C']);
    expect(more.code).toBe(1);
    expect(more.stderr).toMatch(/no virtual function can create H100-20C now, nothing was written \(0000:c1:00.0: creatable there now: nothing/);
    const list = (await cli(['--root', host.root, 'list', '-o', 'json'])).json();
    expect(list.devices).toHaveLength(4);
    const d = await cli(['--root', host.root, '--simulate', 'destroy', '-u', list.devices[3].uuid]);
    expect(d.code).toBe(0);
    expect(parseCreatableVgpuTypes(creatable(host.root, '0000:c1:01.0')).map((x) => x.profile!.profile)).toEqual(['H100-20C']);
  });
});
