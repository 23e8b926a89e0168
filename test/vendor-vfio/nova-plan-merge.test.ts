/** nova-config --from-plan and --merge on vendor-VFIO and mixed hosts, checked with nova's own parser. */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, snapshotTree, tempDir, writePlanFile } from '../helpers/hosts.js';
import { MIXED_PLAN_TEXT } from './mixed-plan.js';
import { novaCheck, skipWithoutNova } from '../nova/nova-python.js';
import type { FixtureSpec } from '../../src/simulator/fixture-spec.js';

const NOVA_CONF = path.join(import.meta.dirname, '../nova/fixtures/nova-compute.conf');

const planFile = writePlanFile;
const L40S_PLAN = planFile('version: 1\ngpus:\n  - select: { pf: "0000:41:00.0" }\n    profile: L40S-8Q\n    count: 3\n');
const MIXED_PLAN = planFile(MIXED_PLAN_TEXT);
const VF = (a: string) => ({ address: a, vendor_id: '10de', product_id: '26b9', parent_addr: '0000:41:00.0' });
const spec = (a: string) => ({ vendor_id: '10de', product_id: '26b9', address: a, managed: 'no', resource_class: 'CUSTOM_NVIDIA_L40S_8Q' });

describe.skipIf(skipWithoutNova())('nova-config --from-plan and --merge with vendor-VFIO vGPUs', () => {
  it('--from-plan on a vendor-VFIO host with no vGPU yet: the VFs the plan will use, report_in_placement, nova parses it', async () => {
    const host = await hostFrom('l40s-vfio');
    const before = await snapshotTree(host.root);
    const r = await cli(['--root', host.root, 'nova-config', '--release', '2024.1', '--from-plan', L40S_PLAN, '-o', 'json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = r.json();
    expect(out.mdev).toBeUndefined();
    expect(out.vendor_vfio.device_specs).toEqual(['0000:41:00.4', '0000:41:00.5', '0000:41:00.6'].map(spec));
    expect(out.text).toContain('[pci]\n');
    expect(out.text).toContain('report_in_placement = True\n');
    expect(out.text).toContain('[filter_scheduler]\npci_in_placement = True\n');
    expect(await snapshotTree(host.root)).toEqual(before); // --from-plan only reads
    const file = path.join(tempDir(), 'nova.conf');
    writeFileSync(file, out.text);
    const [res] = await novaCheck([{ file, devices: [VF('0000:41:00.4'), VF('0000:41:00.6'), VF('0000:41:00.7')] }]);
    expect(res!.parse_error).toBeUndefined();
    expect(res!.whitelist_error).toBeUndefined();
    expect(res!.whitelist_specs).toBe(3);
    expect(res!.assignable).toEqual({ '0000:41:00.4': true, '0000:41:00.6': true, '0000:41:00.7': false });

    // A plan the GPU cannot carry: refused, with the reason.
    const tooMany = await cli(['--root', host.root, 'nova-config', '--release', '2024.1', '--from-plan', planFile('version: 1\ngpus:\n  - select: { pf: "0000:41:00.0" }\n    profile: L40S-8Q\n    count: 7\n')]);
    expect(tooMany.code).toBe(1);
    expect(tooMany.stderr).toMatch(/cannot be met on this host, so nova cannot be configured for it: gpus\[0\] \(L40S-8Q\): 0000:41:00.0 has room for 6 more/);
  });

  it('--from-plan on a mixed host: mdev groups for the P40 and [pci] for the L40S VFs in one file', async () => {
    const host = await hostFrom('mixed-mdev-vfio');
    const r = await cli(['--root', host.root, 'nova-config', '--release', '2024.1', '--from-plan', MIXED_PLAN, '-o', 'json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = r.json();
    expect(out.mdev.enabled_types).toEqual(['nvidia-286']);
    expect(out.vendor_vfio.device_specs.map((s: any) => s.address)).toEqual(['0000:41:00.4', '0000:41:00.5', '0000:41:00.6']);
    const file = path.join(tempDir(), 'nova.conf');
    writeFileSync(file, out.text);
    const [res] = await novaCheck([{ file, devices: [VF('0000:41:00.5'), { address: '0000:82:00.0', vendor_id: '10de', product_id: '1b38' }] }]);
    expect(res!.parse_error).toBeUndefined();
    expect(res!.enabled_mdev_types).toEqual(['nvidia-286']);
    expect(res!.groups?.['mdev_nvidia-286']?.device_addresses_error).toBeUndefined();
    expect(res!.whitelist_specs).toBe(3);
    expect(res!.assignable).toEqual({ '0000:41:00.5': true, '0000:82:00.0': false });
  });

  it('--merge on a mixed host after apply: only the owned options change, a dry run writes nothing, a second merge changes nothing', async () => {
    const host = await hostFrom('mixed-mdev-vfio');
    expect((await cli(['--root', host.root, '--simulate', 'apply', '-f', MIXED_PLAN])).code).toBe(0);
    mkdirSync(path.join(host.root, 'etc/nova'), { recursive: true });
    const original = readFileSync(NOVA_CONF, 'utf8')
      .replace('[libvirt]\n', '[pci]\npassthrough_whitelist = {"vendor_id":"10de","product_id":"1b38"}\nreport_in_placement = False\n\n[libvirt]\n');
    const conf = path.join(host.root, 'etc/nova/nova.conf');
    writeFileSync(conf, original);

    const dry = await cli(['--root', host.root, 'nova-config', '--release', '2024.1', '--merge', '/etc/nova/nova.conf', '--dry-run', '-o', 'json']);
    expect(dry.stderr).toBe('');
    expect(dry.json().merge).toMatchObject({ changed: true, dry_run: true, written: false });
    expect(dry.json().merge.diff).toContain('-passthrough_whitelist = {"vendor_id":"10de","product_id":"1b38"}');
    expect(readFileSync(conf, 'utf8')).toBe(original);

    const r = await cli(['--root', host.root, 'nova-config', '--release', '2024.1', '--merge', '/etc/nova/nova.conf', '-o', 'json']);
    expect(r.code).toBe(0);
    expect(r.json().merge).toMatchObject({ changed: true, written: true });
    const merged = readFileSync(conf, 'utf8');
    expect(merged).not.toContain('passthrough_whitelist');
    expect(merged).not.toContain('report_in_placement = False');
    expect(merged.match(/^device_spec = /gm)).toHaveLength(3);
    expect(merged.match(/^report_in_placement = True$/gm)).toHaveLength(1);
    expect(merged).toContain('[filter_scheduler]\npci_in_placement = True\n');
    expect(merged).toContain('enabled_mdev_types = nvidia-286\n');
    // What vgpuctl does not own stays byte for byte.
    for (const line of ['transport_url = rabbit://openstack:s3cr3t@10.40.0.11:5672,openstack:s3cr3t@10.40.0.12:5672//', 'images_rbd_pool = vms', '[glance]', 'lock_path = /var/lib/nova/tmp']) {
      expect(merged).toContain(`${line}\n`);
    }
    const again = await cli(['--root', host.root, 'nova-config', '--release', '2024.1', '--merge', '/etc/nova/nova.conf', '-o', 'json']);
    expect(again.json().merge).toMatchObject({ changed: false, written: false });
    expect(readFileSync(conf, 'utf8')).toBe(merged);

    const [res] = await novaCheck([{ file: conf, devices: [VF('0000:41:00.4'), VF('0000:41:00.7')], options: [['pci', 'device_spec']] }]);
    expect(res!.parse_error).toBeUndefined();
    expect(res!.enabled_mdev_types).toEqual(['nvidia-286']);
    expect(res!.whitelist_specs).toBe(3);
    expect(res!.assignable).toEqual({ '0000:41:00.4': true, '0000:41:00.7': false });
  });

  it('--merge on a vendor-VFIO host with --from-plan writes the planned VFs into a file without [pci]', async () => {
    const host = await hostFrom('l40s-vfio');
    mkdirSync(path.join(host.root, 'etc/nova'), { recursive: true });
    const conf = path.join(host.root, 'etc/nova/nova.conf');
    writeFileSync(conf, '[DEFAULT]\ndebug = False\n\n[libvirt]\nvirt_type = kvm\n');
    const r = await cli(['--root', host.root, 'nova-config', '--release', '2024.1', '--from-plan', L40S_PLAN, '--merge', '/etc/nova/nova.conf']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const merged = readFileSync(conf, 'utf8');
    expect(merged.startsWith('[DEFAULT]\ndebug = False\n\n[libvirt]\nvirt_type = kvm\n')).toBe(true);
    expect(merged.match(/^device_spec = .*"address":"0000:41:00\.[456]"/gm)).toHaveLength(3);
    const [res] = await novaCheck([{ file: conf, devices: [VF('0000:41:00.5')] }]);
    expect(res!.parse_error).toBeUndefined();
    expect(res!.assignable).toEqual({ '0000:41:00.5': true });
  });
});

/**
 * A host with both: the L40S of fixture l40s-vfio (vendor-VFIO VFs) and seed 001's passthrough T4 at
 * 0000:86:00.0 on vfio-pci (fixture t4x4-seed001, layout and IOMMU group as there).
 */
function l40sWithPassthroughT4(): FixtureSpec {
  const read = (name: string) => JSON.parse(readFileSync(path.join(import.meta.dirname, '../../fixtures', `${name}.json`), 'utf8')) as FixtureSpec;
  const l40s = read('l40s-vfio');
  const t4 = read('t4x4-seed001').pci!.find((p) => p.address === '0000:86:00.0')!;
  return { ...l40s, name: 'l40s-vfio-plus-passthrough-t4', pci: [...l40s.pci!, t4] };
}
const T4 = { address: '0000:86:00.0', vendor_id: '10de', product_id: '1eb8' };

describe.skipIf(skipWithoutNova())('nova-config --merge on a host with a passthrough GPU and vendor-VFIO vGPUs', () => {
  it('--merge and --pci --merge own the same [pci] union: neither drops the other\'s device_spec/alias, either order, idempotent, nova reads every device', async () => {
    const host = await hostFrom(l40sWithPassthroughT4());
    const applied = await cli(['--root', host.root, '--simulate', 'apply', '-f', L40S_PLAN]);
    expect(applied.code, applied.stderr).toBe(0);
    mkdirSync(path.join(host.root, 'etc/nova'), { recursive: true });
    const start = '[DEFAULT]\ndebug = False\n\n[pci]\n# the operator\'s comment stays\nalias = {"name":"OLD","vendor_id":"10de","product_id":"1eb8"}\n\n[libvirt]\nvirt_type = kvm\n';
    const merge = async (file: string, ...args: string[]) => {
      const r = await cli(['--root', host.root, 'nova-config', '--release', '2024.1', ...args, '--merge', file, '-o', 'json']);
      expect(r.code, r.stderr).toBe(0);
      return r.json().merge;
    };
    const vgpuFirst = path.join(host.root, 'etc/nova/a.conf');
    const pciFirst = path.join(host.root, 'etc/nova/b.conf');
    writeFileSync(vgpuFirst, start);
    writeFileSync(pciFirst, start);

    expect(await merge('/etc/nova/a.conf')).toMatchObject({ changed: true, written: true });
    const a = readFileSync(vgpuFirst, 'utf8');
    expect(await merge('/etc/nova/a.conf', '--pci')).toMatchObject({ changed: false, written: false });
    expect(await merge('/etc/nova/a.conf')).toMatchObject({ changed: false });
    expect(await merge('/etc/nova/b.conf', '--pci')).toMatchObject({ changed: true, written: true });
    expect(await merge('/etc/nova/b.conf')).toMatchObject({ changed: false });
    expect(readFileSync(pciFirst, 'utf8')).toBe(a);

    // One [pci] section: the T4 and the three VFs, one alias each kind, report_in_placement once.
    expect(a.match(/^\[pci\]$/gm)).toHaveLength(1);
    expect(a).toContain("# the operator's comment stays\n");
    expect(a).not.toContain('"OLD"');
    expect(a.match(/^device_spec = /gm)).toHaveLength(4);
    expect(a).toContain('device_spec = {"vendor_id":"10de","product_id":"1eb8","address":"0000:86:00.0"}\n');
    for (const vf of ['0000:41:00.4', '0000:41:00.5', '0000:41:00.6']) expect(a).toContain(`device_spec = ${JSON.stringify(spec(vf))}\n`);
    expect(a.match(/^alias = /gm)).toHaveLength(2);
    expect(a.match(/^report_in_placement = True$/gm)).toHaveLength(1);
    expect(a).toContain('[filter_scheduler]\npci_in_placement = True\n');

    const [res] = await novaCheck([{ file: vgpuFirst, devices: [T4, VF('0000:41:00.5'), VF('0000:41:00.7')] }]);
    expect(res!.parse_error).toBeUndefined();
    expect(res!.whitelist_error).toBeUndefined();
    expect(res!.whitelist_specs).toBe(4);
    expect(res!.assignable).toEqual({ '0000:86:00.0': true, '0000:41:00.5': true, '0000:41:00.7': false });
    // The installed nova is 26 (Zed): its alias schema predates resource_class (2023.1), the only thing it
    // refuses. Without the VFs' alias, its parser resolves the passthrough alias a flavor asks for.
    if (res!.nova_version?.startsWith('26.')) {
      expect(res!.alias_error).toMatch(/'resource_class' was unexpected/);
      const zed = path.join(host.root, 'etc/nova/zed-aliases.conf');
      writeFileSync(zed, a.replace(/^alias = .*CUSTOM_NVIDIA_.*\n/gm, ''));
      const [z] = await novaCheck([{ file: zed, flavors: ['T4:1'] }]);
      expect(z!.alias_error).toBeUndefined();
      expect(Object.keys(z!.aliases!)).toEqual(['T4']);
      expect(z!.flavors!['T4:1']).toMatchObject([{ alias_name: 'T4', count: 1 }]);
    } else {
      expect(res!.alias_error).toBeUndefined();
      expect(Object.keys(res!.aliases!).sort()).toEqual(['L40S-8Q', 'T4']);
    }
  });

  it('--pci --merge for a release before 2023.1 is refused rather than dropping the VFs\' lines', async () => {
    const host = await hostFrom(l40sWithPassthroughT4());
    expect((await cli(['--root', host.root, '--simulate', 'apply', '-f', L40S_PLAN])).code).toBe(0);
    mkdirSync(path.join(host.root, 'etc/nova'), { recursive: true });
    const conf = path.join(host.root, 'etc/nova/nova.conf');
    writeFileSync(conf, '[DEFAULT]\ndebug = False\n');
    const r = await cli(['--root', host.root, 'nova-config', '--release', 'zed', '--pci', '--merge', '/etc/nova/nova.conf']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot use them .*--merge writes the \[pci\] options of the passthrough GPUs and of the vendor-VFIO VFs together/);
    expect(readFileSync(conf, 'utf8')).toBe('[DEFAULT]\ndebug = False\n');
  });
});
