import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, snapshotTree, tempDir } from '../helpers/hosts.js';
import { miniA100D, miniP40 } from '../helpers/mini-fixtures.js';

const U1 = '334852fe-079b-11ee-9fc7-77463608f467';
const U2 = '3348556a-079b-11ee-9fc8-7fb0c612aedd';
const def = (type: string, start: 'auto' | 'manual') => `{\n  "mdev_type": "${type}",\n  "start": "${start}",\n  "attrs": []\n}`;

describe('vgpuctl types', () => {
  it('lists each type with its profile, size and capacity', async () => {
    const host = await hostFrom(miniP40);
    const r = await cli(['--root', host.root, 'types', '-o', 'json']);
    expect(r.code).toBe(0);
    const t286 = r.json().types.find((t: any) => t.type === 'nvidia-286');
    expect(t286).toEqual({
      parent: '0000:82:00.0',
      type: 'nvidia-286',
      name: 'GRID P40-12C',
      profile: 'P40-12C',
      series: 'C',
      framebuffer_mib: 12288,
      max_instances: 2,
      available_instances: 2,
      device_api: 'vfio-pci',
      description: 'num_heads=1, frl_config=60, framebuffer=12288M, max_resolution=4096x2160, max_instance=2',
      num_heads: 1,
      max_resolution: '4096x2160',
    });
  });

  it('filters by profile, parent (short address accepted) and availability', async () => {
    const host = await hostFrom({ ...miniP40, mdevs: [{ uuid: U1, parent: '0000:82:00.0', type: 'nvidia-50' }] });
    expect((await cli(['--root', host.root, 'types', '--profile', 'p40-12c', '-o', 'json'])).json().types.map((t: any) => t.type)).toEqual(['nvidia-286']);
    expect((await cli(['--root', host.root, 'types', '-p', '82:00.0', '--available', '-o', 'json'])).json().types.map((t: any) => t.type)).toEqual(['nvidia-50']);
    const table = await cli(['--root', host.root, 'types']);
    expect(table.stdout).toMatch(/0000:82:00.0\s+nvidia-50\s+P40-6Q\s+Q\s+6144\s+4\s+3\s+GRID P40-6Q/);
  });

  it('says which profile is unknown or not offered', async () => {
    const host = await hostFrom(miniP40);
    const unknown = await cli(['--root', host.root, 'types', '--profile', 'P40-13Q']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown profile "P40-13Q".*vgpuctl profiles/);
    const elsewhere = await cli(['--root', host.root, 'types', '--profile', 'T4-16Q']);
    expect(elsewhere.stderr).toMatch(/no parent on this host offers T4-16Q/);
  });
});

describe('vgpuctl gpus', () => {
  it('reports board, mode and SR-IOV functions of an A100D', async () => {
    const host = await hostFrom(miniA100D);
    const r = await cli(['--root', host.root, 'gpus', '-o', 'json']);
    expect(r.code).toBe(0);
    expect(r.json().gpus).toEqual([
      {
        address: '0000:21:00.0',
        board: 'A100D',
        product: expect.any(String),
        vendor_id: '0x10de',
        device_id: '0x20b5',
        driver: 'nvidia',
        mode: 'mdev',
        physical_function: null,
        virtual_functions: ['0000:21:00.4', '0000:21:00.5', '0000:21:00.6', '0000:21:00.7'],
        iommu_group: 30,
        numa_node: 0,
        vgpus_active: 0,
      },
    ]);
    const withVfs = (await cli(['--root', host.root, 'gpus', '--vfs', '-o', 'json'])).json().gpus;
    expect(withVfs).toHaveLength(5);
    expect(withVfs[1]).toMatchObject({ address: '0000:21:00.4', physical_function: '0000:21:00.0', iommu_group: 100 });
  });

  it('tells sriov-disabled, passthrough and host GPUs apart', async () => {
    const base = miniA100D.pci![0]!;
    const host = await hostFrom({
      name: 'modes',
      summary: 'three GPUs in three modes',
      pci: [
        { ...base, sriov: { ...base.sriov!, numvfs: 0 } },
        { ...miniP40.pci![0]!, types: undefined, driver: 'vfio-pci' },
        { ...miniP40.pci![0]!, address: '0000:83:00.0', types: undefined, driver: 'nvidia', iommu_group: 42 },
      ],
    });
    const modes = (await cli(['--root', host.root, 'gpus', '-o', 'json'])).json().gpus.map((g: any) => [g.address, g.mode]);
    expect(modes).toEqual([
      ['0000:21:00.0', 'sriov-disabled'],
      ['0000:82:00.0', 'passthrough'],
      ['0000:83:00.0', 'host'],
    ]);
  });
});

describe('vgpuctl list', () => {
  it('joins active devices, definitions and the VMs that name them', async () => {
    const host = await hostFrom({
      ...miniP40,
      mdevs: [
        { uuid: U1, parent: '0000:82:00.0', type: 'nvidia-50' },
        { uuid: U2, parent: '0000:82:00.0', type: 'nvidia-50' },
      ],
      files: {
        [`etc/mdevctl.d/0000:82:00.0/${U1}`]: def('nvidia-50', 'auto'),
        'etc/mdevctl.d/0000:82:00.0/33485650-079b-11ee-9fca-8f6415d2734c': def('nvidia-50', 'manual'),
        'etc/libvirt/qemu/y-k8s-n-1.xml': `<domain type='kvm'><name>y-k8s-n-1</name><devices><hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci' display='off'><source><address uuid='${U1}'/></source></hostdev></devices></domain>`,
        'run/libvirt/qemu/y-k8s-n-1.xml': `<domstatus state='running' pid='4242'><domain type='kvm' id='1'><name>y-k8s-n-1</name><devices><hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci'><source><address uuid='${U1}'/></source></hostdev></devices></domain></domstatus>`,
      },
    });
    const active = (await cli(['--root', host.root, 'list', '-o', 'json'])).json().devices;
    expect(active).toEqual([
      { uuid: U1, parent: '0000:82:00.0', type: 'nvidia-50', profile: 'P40-6Q', active: true, defined: true, autostart: true, attrs: [], vm: 'y-k8s-n-1', vm_running: true },
      { uuid: U2, parent: '0000:82:00.0', type: 'nvidia-50', profile: 'P40-6Q', active: true, defined: false, autostart: false, attrs: [], vm: null, vm_running: false },
    ]);
    const defined = (await cli(['--root', host.root, 'list', '--defined', '-o', 'json'])).json().devices;
    expect(defined.map((d: any) => [d.uuid, d.active, d.autostart])).toEqual([
      [U1, true, true],
      ['33485650-079b-11ee-9fca-8f6415d2734c', false, false],
    ]);
    expect((await cli(['--root', host.root, 'list', '--all', '-o', 'json'])).json().devices).toHaveLength(3);
    expect((await cli(['--root', host.root, 'list', '--all', '-u', U2.toUpperCase(), '-o', 'json'])).json().devices.map((d: any) => d.uuid)).toEqual([U2]);
  });

  it('reports a broken definition file as a warning and lists the rest', async () => {
    const host = await hostFrom({
      ...miniP40,
      files: {
        [`etc/mdevctl.d/0000:82:00.0/${U1}`]: def('nvidia-50', 'auto'),
        [`etc/mdevctl.d/0000:82:00.0/${U2}`]: '{"mdev_type": "nvidia-50", "start": "sometimes"}',
      },
    });
    const r = await cli(['--root', host.root, 'list', '--defined', '-o', 'json']);
    expect(r.code).toBe(0);
    expect(r.json().devices.map((d: any) => d.uuid)).toEqual([U1]);
    expect(r.json().warnings[0].message).toMatch(new RegExp(`${U2}: not a valid mdevctl definition.*start`));
  });
});

describe('bad input: exit 2 or 1 with one clear sentence, never a stack trace, nothing changed', () => {
  const cases: Array<[string, (root: string) => string[], number, RegExp]> = [
    ['path-like --parent', (root) => ['--root', root, 'types', '-p', '../../etc'], 2, /not a parent device name/],
    ['incomplete PCI address', (root) => ['--root', root, 'types', '-p', '0000:82:00'], 2, /not a complete PCI address/],
    ['unknown parent', (root) => ['--root', root, 'types', '-p', '0000:99:00.0'], 1, /0000:99:00.0 is not an mdev parent. mdev parents on this host: 0000:82:00.0/],
    ['bad uuid', (root) => ['--root', root, 'list', '-u', 'nope'], 2, /"nope" is not a UUID/],
    ['unknown option', (root) => ['--root', root, 'types', '--bogus'], 2, /unknown option '--bogus'/],
    ['bad output format', (root) => ['--root', root, 'types', '-o', 'yaml'], 2, /"yaml" is not an output format; use table or json/],
    ['output format of another command', (root) => ['--root', root, 'types', '-o', 'nagios'], 2, /-o nagios is not an output format of this command/],
    ['--simulate on /', () => ['--root', '/', '--simulate', 'types'], 2, /--simulate needs --root/],
    ['--defined with --all', (root) => ['--root', root, 'list', '--defined', '--all'], 2, /exclude each other/],
  ];
  it.each(cases)('%s', async (_name, args, code, message) => {
    const host = await hostFrom(miniP40);
    const before = await snapshotTree(host.root);
    const r = await cli(args(host.root));
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(await snapshotTree(host.root)).toEqual(before);
  });

  it('a --root that is not a host tree', async () => {
    const empty = tempDir();
    const r = await cli(['--root', empty, 'types']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is not a host tree: it has no sys\/ directory/);
    const missing = await cli(['--root', path.join(empty, 'nope'), 'gpus']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/does not exist/);
  });

  it('a garbled available_instances', async () => {
    const host = await hostFrom(miniP40);
    await fs.writeFile(host.path('/sys/class/mdev_bus/0000:82:00.0/mdev_supported_types/nvidia-50/available_instances'), '\x00\x13garbage\n');
    const r = await cli(['--root', host.root, 'types']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot read \/sys\/.*nvidia-50\/available_instances: expected a whole number/);
  });

  it('an unreadable sysfs attribute (a directory where a file should be)', async () => {
    const host = await hostFrom(miniP40);
    const name = host.path('/sys/class/mdev_bus/0000:82:00.0/mdev_supported_types/nvidia-286/name');
    await fs.rm(name);
    await fs.mkdir(name);
    const r = await cli(['--root', host.root, 'types', '-o', 'json']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot read .*nvidia-286\/name: it is a directory/);
  });
});

describe('help and version', () => {
  it.each([['types'], ['gpus'], ['list'], ['profiles'], ['sim', 'init'], ['sim', 'settle']])('%s --help', async (...cmd) => {
    const r = await cli([...cmd, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: vgpuctl/);
  });
});
