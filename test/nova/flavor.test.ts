/**
 * `vgpuctl flavor` prints extra specs that match the generated configuration: the resource class nova
 * reports for the profile's type, and PCI aliases that nova's own alias code turns into requests for every
 * function of the card (seed 001: the TITAN Xp's VGA and HDMI audio functions).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, tempDir } from '../helpers/hosts.js';
import { novaCheck, skipWithoutNova } from './nova-python.js';

// Every test lays out host trees and runs the CLI many times; slow machines need the room.
vi.setConfig({ testTimeout: 180_000 });

const skip = skipWithoutNova();

describe.skipIf(skip)('flavor extra specs, checked against what nova makes of the generated config', () => {
  it('vGPU profiles: resources:<class>=1 is the class nova gives the type, for each release rule', async () => {
    const dir = tempDir();
    const a100 = await hostFrom('a100d-sriov-seed002');
    const t4 = await hostFrom('t4x4-seed001');
    const runs: Array<{ root: string; release: string; profile: string; type: string; extra: string[] }> = [
      { root: a100.root, release: 'zed', profile: 'A100D-2-20C', type: 'nvidia-700', extra: [] },
      { root: a100.root, release: '2024.1', profile: 'a100d-1-10c', type: 'nvidia-699', extra: ['--mdev-class', 'nvidia-699=CUSTOM_MIG_1G'] },
      { root: a100.root, release: 'wallaby', profile: 'A100D-2-20C', type: 'nvidia-700', extra: [] },
      { root: t4.root, release: 'zed', profile: 'T4-8Q', type: 'nvidia-233', extra: [] },
    ];
    const cases = [];
    const specs: string[] = [];
    for (const [i, r] of runs.entries()) {
      const conf = await cli(['--root', r.root, 'nova-config', '--release', r.release, ...r.extra]);
      expect(conf.code).toBe(0);
      const file = path.join(dir, `${i}.conf`);
      writeFileSync(file, conf.stdout);
      cases.push({ file });
      const f = await cli(['--root', r.root, 'flavor', '--profile', r.profile, '--release', r.release, ...r.extra, '-o', 'json']);
      expect(f.code, f.stderr).toBe(0);
      const keys = Object.keys(f.json().extra_specs);
      expect(keys).toHaveLength(1);
      expect(f.json().extra_specs[keys[0]!]).toBe('1');
      specs.push(keys[0]!.replace(/^resources:/, ''));
    }
    const nova = await novaCheck(cases);
    for (const [i, r] of runs.entries()) {
      const driver = nova[i]!.driver!;
      // The class of the type's GPUs as nova's driver maps them, or VGPU where it maps none (single type before 2024.1).
      const classes = Object.entries(driver.pgpu_type_mapping).filter(([, t]) => t === r.type).map(([a]) => driver.mdev_class_mapping[a]);
      const expected = classes.length > 0 ? classes[0] : driver.mdev_classes[0];
      expect(specs[i], `${r.release} ${r.profile}`).toBe(expected);
    }
    expect(specs).toEqual(['CUSTOM_VGPU_A100D_2_20C', 'CUSTOM_MIG_1G', 'VGPU', 'VGPU']);
  }, 180_000);

  it('passthrough: aliases with the functions that share the IOMMU group, read by nova', async () => {
    const dir = tempDir();
    const titan = await hostFrom('titanxp-seed001');
    const conf = await cli(['--root', titan.root, 'nova-config', '--pci', '--release', 'zed']);
    expect(conf.code).toBe(0);
    const file = path.join(dir, 'pci.conf');
    writeFileSync(file, conf.stdout);
    const flavor = await cli(['--root', titan.root, 'flavor', '--pci-alias', 'GPU_1B02:1', '--release', 'zed', '-o', 'json']);
    expect(flavor.code).toBe(0);
    const value = flavor.json().extra_specs['pci_passthrough:alias'];
    expect(value).toBe('GPU_1B02:1,GPU_1B02_AUDIO:1');
    expect(flavor.json().command).toBe('openstack flavor set FLAVOR --property "pci_passthrough:alias=GPU_1B02:1,GPU_1B02_AUDIO:1"');
    const t4 = await hostFrom('t4x4-seed001');
    const t4conf = await cli(['--root', t4.root, 'nova-config', '--pci', '--release', 'yoga']);
    const t4file = path.join(dir, 't4.conf');
    writeFileSync(t4file, t4conf.stdout);
    expect(t4conf.stdout).toContain('passthrough_whitelist = {"vendor_id":"10de","product_id":"1eb8","address":"0000:86:00.0"}');
    const dev = (address: string, product: string) => ({ address, vendor_id: '10de', product_id: product });
    const [titanNova, t4Nova] = await novaCheck([
      { file, flavors: [value, 'GPU_1B02:1'], devices: [dev('0000:86:00.0', '1b02'), dev('0000:86:00.1', '10ef'), dev('0000:18:00.0', '1b02'), dev('0000:18:00.1', '10ef'), dev('0000:3b:00.0', '1b02')] },
      { file: t4file, flavors: ['T4:1'], devices: [dev('0000:86:00.0', '1eb8'), dev('0000:18:00.0', '1eb8'), dev('0000:3b:00.0', '1eb8'), dev('0000:af:00.0', '1eb8')] },
    ]);
    expect(titanNova!.whitelist_error).toBeUndefined();
    // Only the card on vfio-pci is offered; its twins on the nvidia driver are not.
    expect(titanNova!.assignable).toEqual({ '0000:86:00.0': true, '0000:86:00.1': true, '0000:18:00.0': false, '0000:18:00.1': false, '0000:3b:00.0': false });
    expect(titanNova!.aliases).toEqual({
      GPU_1B02: { numa_policy: 'legacy', specs: [{ vendor_id: '10de', product_id: '1b02', dev_type: 'type-PCI' }] },
      GPU_1B02_AUDIO: { numa_policy: 'legacy', specs: [{ vendor_id: '10de', product_id: '10ef', dev_type: 'type-PCI' }] },
    });
    expect(titanNova!.flavors![value]).toEqual([
      { alias_name: 'GPU_1B02', count: 1, spec: [{ vendor_id: '10de', product_id: '1b02', dev_type: 'type-PCI' }] },
      { alias_name: 'GPU_1B02_AUDIO', count: 1, spec: [{ vendor_id: '10de', product_id: '10ef', dev_type: 'type-PCI' }] },
    ]);
    expect(t4Nova!.whitelist_error).toBeUndefined(); // yoga's passthrough_whitelist, read through nova 26's deprecated name
    expect(t4Nova!.assignable).toEqual({ '0000:86:00.0': true, '0000:18:00.0': false, '0000:3b:00.0': false, '0000:af:00.0': false });
    expect(t4Nova!.flavors!['T4:1']).toEqual([{ alias_name: 'T4', count: 1, spec: [{ vendor_id: '10de', product_id: '1eb8', dev_type: 'type-PCI' }] }]);
  }, 120_000);

  it('an SR-IOV-capable card gets a type-PF alias (seed 001 T4 with sriov_totalvfs)', async () => {
    const host = await hostFrom({
      name: 't4-sriov-cap',
      summary: 'a T4 on vfio-pci whose SR-IOV capability sysfs shows (sriov_totalvfs 16, no VFs enabled)',
      pci: [
        {
          address: '0000:86:00.0',
          path: ['pci0000:85', '0000:85:00.0'],
          vendor: '0x10de',
          device: '0x1eb8',
          subsystem_vendor: '0x10de',
          subsystem_device: '0x12a2',
          class: '0x030200',
          driver: 'vfio-pci',
          iommu_group: 88,
          numa_node: 1,
          sriov: { totalvfs: 16, numvfs: 0, offset: 4, stride: 1, vf_device: '0x1eb8', vf_driver: 'nvidia', vf_iommu_group_base: 200 },
        },
      ],
    });
    const conf = await cli(['--root', host.root, 'nova-config', '--pci', '--release', '2024.2']);
    expect(conf.code).toBe(0);
    expect(conf.stdout).toContain('alias = {"name":"T4","vendor_id":"10de","product_id":"1eb8","device_type":"type-PF"}');
    const file = path.join(tempDir(), 'pf.conf');
    writeFileSync(file, conf.stdout);
    const [nova] = await novaCheck([{ file, flavors: ['T4:2'] }]);
    expect(nova!.aliases!['T4']!.specs).toEqual([{ vendor_id: '10de', product_id: '1eb8', dev_type: 'type-PF' }]);
    expect(nova!.flavors!['T4:2']).toEqual([{ alias_name: 'T4', count: 2, spec: [{ vendor_id: '10de', product_id: '1eb8', dev_type: 'type-PF' }] }]);
  }, 120_000);
});

describe('flavor: several vGPUs per instance, and refusals', () => {
  it('several vGPUs need 2026.1 and a profile that may share a VM', async () => {
    const a100 = await hostFrom('a100d-sriov-seed002');
    const before = await cli(['--root', a100.root, 'flavor', '--profile', 'A100D-2-20C', '--count', '2', '--release', '2025.2']);
    expect(before.code).toBe(1);
    expect(before.stderr).toMatch(/nova 2025.2 gives an instance one vGPU \(several per instance need 2026.1 or later, nova bug 1758086\)/);
    const after = await cli(['--root', a100.root, 'flavor', '--profile', 'A100D-2-20C', '--count', '2', '--release', '2026.1', '-o', 'json']);
    expect(after.code, after.stderr).toBe(0);
    expect(after.json().extra_specs).toEqual({ 'resources1:CUSTOM_VGPU_A100D_2_20C': '1', 'resources2:CUSTOM_VGPU_A100D_2_20C': '1', group_policy: 'isolate' });
    const tooMany = await cli(['--root', a100.root, 'flavor', '--profile', 'A100D-1-10C', '--count', '3', '--release', '2026.1']);
    expect(tooMany.code).toBe(1);
    expect(tooMany.stderr).toMatch(/needs 3 virtual functions carrying it; this host has 2/);

    const spec = (await import('../../src/simulator/layout.js')).loadFixture('leftovers');
    const p40 = await hostFrom(spec);
    const six = await cli(['--root', p40.root, 'flavor', '--profile', 'P40-6Q', '--count', '2', '--release', '2026.1']);
    expect(six.code).toBe(1);
    expect(six.stderr).toMatch(/2 x P40-6Q in one instance: multiple vGPUs in a VM not supported/);
  });

  it('exit 2 for bad input, 1 for what the configuration does not have', async () => {
    const host = await hostFrom('t4x4-seed001');
    const cases: Array<[string[], number, RegExp]> = [
      [['flavor'], 2, /say what the flavor asks for/],
      [['flavor', '--profile', 'T4-8Q', '--pci-alias', 'T4:1'], 2, /say what the flavor asks for/],
      [['flavor', '--profile', 'T4-8Q', '--count', 'two'], 2, /invalid --count: must be a whole number/],
      [['flavor', '--pci-alias', 'T4'], 2, /invalid --pci-alias "T4": give NAME:COUNT/],
      [['flavor', '--profile', 'T4 8Q'], 2, /invalid --profile/],
      [['flavor', '--profile', 'T4-16Q'], 1, /T4-16Q is not in the nova configuration of this host \(it has T4-8Q\)/],
      [['flavor', '--pci-alias', 'A100:1'], 1, /alias A100 is not in the generated \[pci\] configuration \(it has T4\)/],
    ];
    for (const [args, code, msg] of cases) {
      const r = await cli(['--root', host.root, ...args]);
      expect(r.code, args.join(' ')).toBe(code);
      expect(r.stderr, args.join(' ')).toMatch(msg);
    }
  });
});
