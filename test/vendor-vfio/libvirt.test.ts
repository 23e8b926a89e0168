/** libvirt-xml for vendor-VFIO vGPUs: the VF as a PCI hostdev with managed='no', valid for libvirt, recognised as in use. */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, tempDir } from '../helpers/hosts.js';
import { skipWithout } from '../helpers/tools.js';
import { minimalDomain, virtXmlValidate } from '../libvirt/domain.js';
import { vfHandle } from '../../src/vendor-vfio/discovery.js';

const noValidator = skipWithout('virt-xml-validate', 'xmllint');

describe('libvirt-xml -u on vendor-VFIO vGPUs', () => {
  it('by VF or handle: a PCI hostdev managed=no; the domain using it makes the VF in use', async () => {
    const host = await hostFrom('mixed-mdev-vfio');
    await cli(['--root', host.root, '--simulate', 'create', '--profile', 'L40S-8Q', '--count', '2', '--define']);
    const mdev = (await cli(['--root', host.root, '--simulate', 'create', '--profile', 'P40-12C', '-o', 'json'])).json().created[0].uuid;
    const r = await cli(['--root', host.root, 'libvirt-xml', '-u', '41:00.4', '-u', vfHandle('0000:41:00.5'), '-u', mdev, '-o', 'json']);
    expect(r.stderr).toBe('');
    const out = r.json();
    expect(out.hostdevs.map((h: any) => [h.kind, h.uuid, h.address, h.what])).toEqual([
      ['pci', vfHandle('0000:41:00.4'), '0000:41:00.4', 'L40S-8Q'],
      ['pci', vfHandle('0000:41:00.5'), '0000:41:00.5', 'L40S-8Q'],
      ['mdev', mdev, null, 'P40-12C'],
    ]);
    expect(out.hostdevs[0].xml).toBe("<hostdev mode='subsystem' type='pci' managed='no'>\n  <source>\n    <address domain='0x0000' bus='0x41' slot='0x00' function='0x4'/>\n  </source>\n</hostdev>");
    if (!noValidator) {
      const v = await virtXmlValidate(tempDir(), 'vf.xml', minimalDomain(out.xml));
      expect(v.output).toMatch(/validates/);
      expect(v.ok).toBe(true);
    }
    // A running domain with that XML: list names the VM, destroy refuses.
    mkdirSync(path.join(host.root, 'run/libvirt/qemu'), { recursive: true });
    writeFileSync(path.join(host.root, 'run/libvirt/qemu/gpu-vm.xml'), minimalDomain(out.hostdevs[0].xml, 'gpu-vm'));
    const list = (await cli(['--root', host.root, 'list', '-o', 'json'])).json();
    expect(list.devices.find((d: any) => d.vf === '0000:41:00.4')).toMatchObject({ vm: 'gpu-vm', vm_running: true });
    expect((await cli(['--root', host.root, '--simulate', 'destroy', '-u', '0000:41:00.4'])).code).toBe(1);
  });

  it('warns about a VF without a vGPU, refuses --display on and an address that is no vendor VF', async () => {
    const host = await hostFrom('l40s-vfio');
    await cli(['--root', host.root, '--simulate', 'define', '-u', '0000:41:00.6', '-t', 'nvidia-1152']);
    const r = await cli(['--root', host.root, 'libvirt-xml', '-u', '0000:41:00.6', '-o', 'json']);
    expect(r.json().warnings).toEqual([{ code: 'not-active', message: '0000:41:00.6 carries no vGPU now: start it (vgpuctl start -u 0000:41:00.6) before the VM, or the guest gets a VF without a vGPU' }]);
    const d = await cli(['--root', host.root, 'libvirt-xml', '-u', '0000:41:00.6', '--display', 'on']);
    expect(d.code).toBe(2);
    expect(d.stderr).toMatch(/--display on applies to mdev vGPUs; the vGPU on 0000:41:00.6 goes to the VM as a PCI device/);
    const x = await cli(['--root', host.root, 'libvirt-xml', '-u', '0000:41:00.7']);
    expect(x.code).toBe(1);
    expect(x.stderr).toMatch(/0000:41:00.7 is not a virtual function with a vendor-VFIO vGPU on this host/);
  });
});
