/**
 * `vgpuctl libvirt-xml`: every fragment it prints for the bundled hosts, embedded in a minimal domain,
 * passes libvirt's own schema check (virt-xml-validate from Debian libvirt-clients, which runs xmllint).
 */
import { describe, expect, it, vi } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, tempDir } from '../helpers/hosts.js';
import { skipWithout } from '../helpers/tools.js';
import { minimalDomain, virtXmlValidate } from './domain.js';

// Every test lays out host trees and runs the CLI many times; slow machines need the room.
vi.setConfig({ testTimeout: 180_000 });

const skip = skipWithout('virt-xml-validate', 'xmllint');

const P40_4X6Q = ['334852fe-079b-11ee-9fc7-77463608f467', '3348556a-079b-11ee-9fc8-7fb0c612aedd', '334855e2-079b-11ee-9fc9-83e0dccb6713', '33485650-079b-11ee-9fca-8f6415d2734c'];

describe.skipIf(skip)('libvirt-xml fragments pass virt-xml-validate', () => {
  it('the validator itself rejects a broken hostdev (the check can fail)', async () => {
    const dir = tempDir();
    const good = "<hostdev mode='subsystem' type='mdev' model='vfio-pci' display='off'><source><address uuid='334852fe-079b-11ee-9fc7-77463608f467'/></source></hostdev>";
    expect((await virtXmlValidate(dir, 'good.xml', minimalDomain(good))).ok).toBe(true);
    for (const [name, bad] of [
      ['display', good.replace("display='off'", "display='maybe'")],
      ['model', good.replace(" model='vfio-pci'", '')],
      ['address', good.replace("uuid='334852fe-079b-11ee-9fc7-77463608f467'", "bus='0x82'")],
    ] as const) {
      const r = await virtXmlValidate(dir, `${name}.xml`, minimalDomain(bad));
      expect(r.ok, name).toBe(false);
      expect(r.output, name).toMatch(/fails to validate/);
    }
  });

  it('every mdev of every bundled host, alone and together, display off and on', async () => {
    const dir = tempDir();
    let checked = 0;
    for (const fixture of ['t4x4-seed001', 'a100d-sriov-seed002', 'leftovers', 'samples-mtty']) {
      const host = await hostFrom(fixture);
      const devices = (await cli(['--root', host.root, 'list', '--all', '-o', 'json'])).json().devices as Array<{ uuid: string; parent: string }>;
      const uuids = [...new Set(devices.map((d) => d.uuid))];
      expect(uuids.length, fixture).toBeGreaterThan(0);
      const requests = [...uuids.map((u) => [u]), uuids];
      for (const display of ['off', 'on']) {
        for (const set of requests) {
          const r = await cli(['--root', host.root, 'libvirt-xml', ...set.flatMap((u) => ['-u', u]), '--display', display, '-o', 'json']);
          expect(r.code, `${fixture} ${set.join(',')}: ${r.stderr}`).toBe(0);
          const out = r.json();
          expect(out.hostdevs).toHaveLength(set.length);
          for (const u of set) expect(out.xml).toContain(`<address uuid='${u}'/>`);
          const v = await virtXmlValidate(dir, `${fixture}-${checked}.xml`, minimalDomain(out.xml));
          expect(v.ok, `${fixture} ${display} ${set.length}: ${v.output}\n${out.xml}`).toBe(true);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(30);
  }, 300_000);

  it('passthrough cards with all their functions (titanxp-seed001, t4x4-seed001)', async () => {
    const dir = tempDir();
    const titan = await hostFrom('titanxp-seed001');
    for (const address of ['0000:18:00.0', '0000:86:00.0', '3b:00.0']) {
      const r = await cli(['--root', titan.root, 'libvirt-xml', '--pci', address, '-o', 'json']);
      expect(r.code, r.stderr).toBe(0);
      const out = r.json();
      expect(out.hostdevs.map((h: { address: string; what: string }) => [h.address.slice(-1), h.what])).toEqual([
        ['0', 'gpu'],
        ['1', 'audio'],
      ]);
      expect((await virtXmlValidate(dir, `titan-${address}.xml`, minimalDomain(out.xml))).ok).toBe(true);
    }
    const shared = await cli(['--root', titan.root, 'libvirt-xml', '--pci', '0000:3b:00.0']);
    expect(shared.stderr).toMatch(/IOMMU group 52 of 0000:3b:00.0 also holds 0000:3c:00.0/);
    expect(shared.stderr).toMatch(/0000:3b:00.0 is bound to nvidia: .*Device or resource busy/);
    const t4 = await hostFrom('t4x4-seed001');
    const one = await cli(['--root', t4.root, 'libvirt-xml', '--pci', '0000:86:00.0']);
    expect(one.code).toBe(0);
    expect(one.stdout).toBe("<hostdev mode='subsystem' type='pci' managed='yes'>\n  <source>\n    <address domain='0x0000' bus='0x86' slot='0x00' function='0x0'/>\n  </source>\n</hostdev>\n");
    const both = await cli(['--root', t4.root, 'libvirt-xml', '--pci', '0000:86:00.0', '-u', 'a02e5c35-5a0b-48fa-a11d-21e9747cf09e']);
    expect((await virtXmlValidate(dir, 't4-both.xml', minimalDomain(both.stdout))).ok).toBe(true);
  }, 120_000);
});

describe('libvirt-xml: what it prints and what it refuses', () => {
  it('the mdev element of seed 004, display off by default; display on says the domain needs graphics', async () => {
    const host = await hostFrom('leftovers');
    const off = await cli(['--root', host.root, 'libvirt-xml', '-u', '334855E2-079B-11EE-9FC9-83E0DCCB6713']);
    expect(off.code).toBe(0);
    expect(off.stdout).toBe(
      "<hostdev mode='subsystem' type='mdev' model='vfio-pci' display='off'>\n  <source>\n    <address uuid='334855e2-079b-11ee-9fc9-83e0dccb6713'/>\n  </source>\n</hostdev>\n",
    );
    expect(off.stderr).toBe('');
    const on = await cli(['--root', host.root, 'libvirt-xml', '-u', '334855e2-079b-11ee-9fc9-83e0dccb6713', '--display', 'on', '-o', 'json']);
    expect(on.json().xml).toContain("display='on'");
    expect(on.json().notes.join('\n')).toMatch(/needs a graphics device in the domain.*graphics device is needed for attribute value 'display=on' in <hostdev>/);
  });

  it('warns about a C-series vGPU with a display and about several vGPUs a VM could not hold', async () => {
    const a100 = await hostFrom('a100d-sriov-seed002');
    const c = await cli(['--root', a100.root, 'libvirt-xml', '-u', '5c630867-a673-5d75-aa31-a499e6c7cb19', '--display', 'on']);
    expect(c.code).toBe(0);
    expect(c.stderr).toMatch(/A100D-2-20C, a C-series \(compute\) vGPU without a display/);
    const spec = (await import('../../src/simulator/layout.js')).loadFixture('p40-seed004');
    const p40 = await hostFrom({ ...spec, mdevs: P40_4X6Q.map((uuid) => ({ uuid, parent: '0000:82:00.0', type: 'nvidia-50' })) });
    const four = await cli(['--root', p40.root, 'libvirt-xml', ...P40_4X6Q.flatMap((u) => ['-u', u]), '-o', 'json']);
    expect(four.code).toBe(0);
    expect(four.json().vm_check.verdict).toBe('would-fail');
    expect(four.json().warnings.map((w: { message: string }) => w.message).join('\n')).toMatch(/a VM with all of these would not start: multiple vGPUs in a VM not supported/);
  });

  it('exit 2 for bad input, 1 for what the host does not have or cannot do', async () => {
    const host = await hostFrom('t4x4-seed001');
    const cases: Array<[string[], number, RegExp]> = [
      [['libvirt-xml'], 2, /name the devices/],
      [['libvirt-xml', '-u', 'not-a-uuid'], 2, /invalid --uuid: "not-a-uuid" is not a UUID/],
      [['libvirt-xml', '--pci', '86:00'], 2, /invalid --pci: "86:00" is not a PCI address/],
      [['libvirt-xml', '-u', 'a02e5c35-5a0b-48fa-a11d-21e9747cf09e', '--display', 'yes'], 2, /invalid --display: must be on or off/],
      [['libvirt-xml', '-u', '00000000-0000-4000-8000-000000000000'], 1, /00000000-0000-4000-8000-000000000000 is not an mdev on this host/],
      [['libvirt-xml', '--pci', '0000:18:00.0'], 1, /0000:18:00.0 carries 2 active vGPU\(s\).*cannot be passed through/],
      [['libvirt-xml', '--pci', '0000:99:00.0'], 1, /0000:99:00.0 is not a PCI device on this host/],
    ];
    for (const [args, code, msg] of cases) {
      const r = await cli(['--root', host.root, ...args]);
      expect(r.code, args.join(' ')).toBe(code);
      expect(r.stderr, args.join(' ')).toMatch(msg);
      expect(r.stdout, args.join(' ')).toBe('');
    }
  });
});
