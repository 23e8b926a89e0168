import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { discoverActiveMdevs, discoverParents } from '../../src/host/mdev.js';
import { SimulatedSysfsWriter } from '../../src/simulator/sim-writer.js';
import { settle } from '../../src/simulator/kernel.js';
import type { HostRoot } from '../../src/host/host-root.js';
import { hostFrom } from '../helpers/hosts.js';
import { miniA100D, miniP40 } from '../helpers/mini-fixtures.js';

const U1 = '334852fe-079b-11ee-9fc7-77463608f467';
const U2 = '3348556a-079b-11ee-9fc8-7fb0c612aedd';
const U3 = '334855e2-079b-11ee-9fc9-83e0dccb6713';

async function available(host: HostRoot, parent: string): Promise<Record<string, number>> {
  const [p] = await discoverParents(host, parent);
  return Object.fromEntries(p!.types.map((t) => [t.id, t.availableInstances]));
}

const createFile = (host: HostRoot, parent: string, type: string) =>
  host.path(`/sys/class/mdev_bus/${parent}/mdev_supported_types/${type}/create`);

describe('simulated kernel: non-SR-IOV P40', () => {
  it('a write to create makes the device, its links, and lowers available_instances (one type per GPU)', async () => {
    const host = await hostFrom(miniP40);
    const w = new SimulatedSysfsWriter(host);
    expect(await available(host, '0000:82:00.0')).toEqual({ 'nvidia-286': 2, 'nvidia-287': 1, 'nvidia-50': 4 });
    await w.write(createFile(host, '0000:82:00.0', 'nvidia-50'), U1);
    expect(await available(host, '0000:82:00.0')).toEqual({ 'nvidia-286': 0, 'nvidia-287': 0, 'nvidia-50': 3 });

    const devLink = host.path(`/sys/bus/mdev/devices/${U1}`);
    const dev = await fs.realpath(devLink);
    expect(dev).toBe(host.path(`/sys/devices/pci0000:80/0000:80:02.0/0000:82:00.0/${U1}`));
    expect(path.basename(await fs.realpath(path.join(dev, 'mdev_type')))).toBe('nvidia-50');
    expect(await fs.readlink(host.path(`/sys/class/mdev_bus/0000:82:00.0/mdev_supported_types/nvidia-50/devices/${U1}`))).toBe(`../../../${U1}`);
    const group = path.basename(await fs.readlink(path.join(dev, 'iommu_group')));
    expect(Number(group)).toBeGreaterThan(41);
    await expect(fs.access(host.path(`/dev/vfio/${group}`))).resolves.toBeUndefined();
    const active = await discoverActiveMdevs(host);
    expect(active).toEqual([expect.objectContaining({ uuid: U1, parent: '0000:82:00.0', type: 'nvidia-50', driver: 'nvidia-vgpu-vfio' })]);
  });

  it('refuses as the kernel does: duplicate UUID (EEXIST), no instances (EUSERS), bad UUID (EINVAL)', async () => {
    const host = await hostFrom(miniP40);
    const w = new SimulatedSysfsWriter(host);
    await w.write(createFile(host, '0000:82:00.0', 'nvidia-287'), U1);
    await expect(w.write(createFile(host, '0000:82:00.0', 'nvidia-287'), U1)).rejects.toMatchObject({ code: 'EEXIST' });
    await expect(w.write(createFile(host, '0000:82:00.0', 'nvidia-287'), U2)).rejects.toMatchObject({ code: 'EUSERS' });
    await expect(w.write(createFile(host, '0000:82:00.0', 'nvidia-50'), U2)).rejects.toMatchObject({ code: 'EUSERS' });
    await expect(w.write(createFile(host, '0000:82:00.0', 'nvidia-50'), 'not-a-uuid')).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(w.write(createFile(host, '0000:82:00.0', 'nvidia-999'), U2)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await discoverActiveMdevs(host)).map((d) => d.uuid)).toEqual([U1]);
  });

  it('a write of 1 to remove deletes the device and gives the capacity back', async () => {
    const host = await hostFrom(miniP40);
    const w = new SimulatedSysfsWriter(host);
    await w.write(createFile(host, '0000:82:00.0', 'nvidia-286'), U1);
    await w.write(createFile(host, '0000:82:00.0', 'nvidia-286'), U2);
    expect(await available(host, '0000:82:00.0')).toEqual({ 'nvidia-286': 0, 'nvidia-287': 0, 'nvidia-50': 0 });
    await w.write(host.path(`/sys/bus/mdev/devices/${U1}/remove`), '1');
    expect(await available(host, '0000:82:00.0')).toEqual({ 'nvidia-286': 1, 'nvidia-287': 0, 'nvidia-50': 0 });
    await w.write(host.path(`/sys/bus/mdev/devices/${U2}/remove`), '1');
    expect(await available(host, '0000:82:00.0')).toEqual({ 'nvidia-286': 2, 'nvidia-287': 1, 'nvidia-50': 4 });
    expect(await discoverActiveMdevs(host)).toEqual([]);
    await expect(fs.lstat(host.path(`/sys/bus/mdev/devices/${U1}`))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses to remove a device a running qemu holds (EBUSY)', async () => {
    const host = await hostFrom({
      ...miniP40,
      mdevs: [{ uuid: U1, parent: '0000:82:00.0', type: 'nvidia-50' }],
      processes: [{ pid: 4242, comm: 'qemu-system-x86', cmdline: ['/usr/bin/qemu-system-x86_64', '-device', `vfio-pci,sysfsdev=/sys/bus/mdev/devices/${U1}`] }],
    });
    await expect(new SimulatedSysfsWriter(host).write(host.path(`/sys/bus/mdev/devices/${U1}/remove`), '1')).rejects.toMatchObject({ code: 'EBUSY' });
  });
});

describe('simulated kernel: SR-IOV A100D', () => {
  it('one vGPU per VF; MIG-backed types share the GPU slices across VFs; time-sliced types are shut out', async () => {
    const host = await hostFrom(miniA100D);
    const w = new SimulatedSysfsWriter(host);
    const vfs = ['0000:21:00.4', '0000:21:00.5', '0000:21:00.6', '0000:21:00.7'];
    expect((await discoverParents(host)).map((p) => p.name)).toEqual(vfs);
    expect(await available(host, vfs[0]!)).toEqual({ 'nvidia-692': 1, 'nvidia-699': 1, 'nvidia-700': 1 });

    await w.write(createFile(host, vfs[0]!, 'nvidia-700'), U1);
    expect(await available(host, vfs[0]!)).toEqual({ 'nvidia-692': 0, 'nvidia-699': 0, 'nvidia-700': 0 });
    expect(await available(host, vfs[1]!)).toEqual({ 'nvidia-692': 0, 'nvidia-699': 1, 'nvidia-700': 1 });
    await w.write(createFile(host, vfs[1]!, 'nvidia-700'), U2);
    await w.write(createFile(host, vfs[2]!, 'nvidia-700'), U3);
    // 3 x 2-20C use six of seven slices: one 1-10C still fits, no fourth 2-20C.
    expect(await available(host, vfs[3]!)).toEqual({ 'nvidia-692': 0, 'nvidia-699': 1, 'nvidia-700': 0 });
    await expect(w.write(createFile(host, vfs[0]!, 'nvidia-699'), '00501f37-c468-5ba4-8be2-8d653c4604ed')).rejects.toMatchObject({ code: 'EUSERS' });
  });

  it('settle applies a UUID another program wrote into create, and refuses a duplicate', async () => {
    const host = await hostFrom(miniA100D);
    await fs.writeFile(createFile(host, '0000:21:00.4', 'nvidia-692'), `${U1}\n`);
    await fs.writeFile(createFile(host, '0000:21:00.5', 'nvidia-692'), `${U1}\n`);
    const r = await settle(host);
    expect(r.created).toEqual([{ uuid: U1, type: 'nvidia-692' }]);
    expect(r.refused).toEqual([expect.objectContaining({ errno: 'EEXIST' })]);
    expect(await fs.readFile(createFile(host, '0000:21:00.5', 'nvidia-692'), 'utf8')).toBe('');
    await fs.writeFile(host.path(`/sys/bus/mdev/devices/${U1}/remove`), '1');
    expect((await settle(host)).removed).toEqual([U1]);
    expect(await discoverActiveMdevs(host)).toEqual([]);
  });
});
