/**
 * pci list/status/detach/attach round trips on the TITAN Xp host (seed 001, two functions per card) and
 * the four-T4 host: seed 000's gpupci sentences, and the tree as the kernel would leave it.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostFrom, snapshotTree } from '../helpers/hosts.js';
import { T4_FUNCTIONS, TITAN_FUNCTIONS, TURING_USB_C, bindingState, driverOf, overrideOf, read, sim, vfioNode } from './pci-helpers.js';

const lines = (s: string) => s.trimEnd().split('\n');

describe('pci on titanxp-seed001', () => {
  it('lists gpupci1..3 in PCI address order with functions, groups, drivers and what shares the group', async () => {
    const host = await hostFrom('titanxp-seed001');
    const r = await read(host, ['pci', 'list', '-o', 'json']);
    expect(r.code).toBe(0);
    const cards = r.json().cards;
    expect(cards.map((c: any) => [c.name, c.address])).toEqual([
      ['gpupci1', '0000:18:00.0'],
      ['gpupci2', '0000:3b:00.0'],
      ['gpupci3', '0000:86:00.0'],
    ]);
    expect(cards[0]).toEqual({
      name: 'gpupci1',
      address: '0000:18:00.0',
      functions: [
        { address: '0000:18:00.0', role: 'video', vendor_id: '0x10de', device_id: '0x1b02', class_code: '0x030000', driver: 'nvidia', driver_override: null, iommu_group: 36 },
        { address: '0000:18:00.1', role: 'audio', vendor_id: '0x10de', device_id: '0x10ef', class_code: '0x040300', driver: 'snd_hda_intel', driver_override: null, iommu_group: 36 },
      ],
      iommu_groups: [36],
      foreign_in_group: [],
      mdevs: [],
    });
    expect(cards[1].iommu_groups).toEqual([52]);
    expect(cards[1].foreign_in_group).toEqual([{ address: '0000:3c:00.0', class_code: '0x020000', driver: 'igb' }]);
    expect(cards[2].functions.map((f: any) => f.driver)).toEqual(['vfio-pci', 'vfio-pci']);

    const table = lines((await read(host, ['pci', 'list'])).stdout);
    expect(table[0]).toMatch(/^NAME\s+ADDRESS\s+FUNCTIONS\s+IOMMU\s+SHARES GROUP WITH\s+MDEVS$/);
    expect(table[1]).toMatch(/^gpupci1\s+0000:18:00\.0\s+0:video\(nvidia\) 1:audio\(snd_hda_intel\)\s+36\s+-\s+-$/);
    expect(table[2]).toMatch(/^gpupci2\s+0000:3b:00\.0\s+.*\s+52\s+0000:3c:00\.0\s+-$/);
    expect(table[3]).toMatch(/^gpupci3\s+0000:86:00\.0\s+0:video\(vfio-pci\) 1:audio\(vfio-pci\)\s+88\s+-\s+-$/);
  });

  it("status prints seed 000's sentences per function, for all, a name, or any function's address", async () => {
    const host = await hostFrom('titanxp-seed001');
    const all = await read(host, ['pci', 'status', 'all']);
    expect(all.code).toBe(0);
    expect(all.stdout).toBe(
      [
        "GPU card 'gpupci1' video device 0000:18:00.0 is linked to bus/pci/drivers/nvidia driver",
        "GPU card 'gpupci1' audio device 0000:18:00.1 is linked to bus/pci/drivers/snd_hda_intel driver",
        "GPU card 'gpupci2' video device 0000:3b:00.0 is linked to bus/pci/drivers/nvidia driver",
        "GPU card 'gpupci2' audio device 0000:3b:00.1 is linked to bus/pci/drivers/snd_hda_intel driver",
        "GPU card 'gpupci3' video device 0000:86:00.0 is linked to bus/pci/drivers/vfio-pci driver",
        "GPU card 'gpupci3' audio device 0000:86:00.1 is linked to bus/pci/drivers/vfio-pci driver",
        '',
      ].join('\n'),
    );
    // No argument means all.
    expect((await read(host, ['pci', 'status'])).stdout).toBe(all.stdout);
    const byName = (await read(host, ['pci', 'status', 'gpupci1'])).stdout;
    expect(lines(byName)).toEqual(lines(all.stdout).slice(0, 2));
    // The audio function's address, in the short upper-case form, selects the whole card.
    expect((await read(host, ['pci', 'status', '18:00.1'])).stdout).toBe(byName);
    expect((await read(host, ['pci', 'status', '0000:3B:00.0'])).stdout).toBe(lines(all.stdout).slice(2, 4).join('\n') + '\n');

    const json = (await read(host, ['pci', 'status', 'gpupci3', '-o', 'json'])).json();
    expect(json).toEqual({
      cards: [
        {
          name: 'gpupci3',
          address: '0000:86:00.0',
          functions: [
            { address: '0000:86:00.0', role: 'video', driver: 'vfio-pci', driver_override: null },
            { address: '0000:86:00.1', role: 'audio', driver: 'vfio-pci', driver_override: null },
          ],
        },
      ],
    });
  });

  it('detach moves video and audio to vfio-pci, attach gives them back, and the tree ends as it began', async () => {
    const host = await hostFrom('titanxp-seed001');
    const before = await snapshotTree(host.root);
    expect(await bindingState(host, ['0000:18:00.0', '0000:18:00.1'])).toEqual({
      '0000:18:00.0': { driver: 'nvidia', override: '(null)\n' },
      '0000:18:00.1': { driver: 'snd_hda_intel', override: '(null)\n' },
    });
    expect(vfioNode(host, 36)).toBe(false);

    const d = await sim(host, ['pci', 'detach', 'gpupci1']);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toBe("Detached GPU card 'gpupci1' video device 0000:18:00.0\nDetached GPU card 'gpupci1' audio device 0000:18:00.1\n");
    expect(d.stderr).toBe('');
    expect(await bindingState(host, ['0000:18:00.0', '0000:18:00.1'])).toEqual({
      '0000:18:00.0': { driver: 'vfio-pci', override: 'vfio-pci\n' },
      '0000:18:00.1': { driver: 'vfio-pci', override: 'vfio-pci\n' },
    });
    expect(existsSync(path.join(host.root, 'sys/bus/pci/drivers/nvidia/0000:18:00.0'))).toBe(false);
    expect(existsSync(path.join(host.root, 'sys/bus/pci/drivers/snd_hda_intel/0000:18:00.1'))).toBe(false);
    expect(vfioNode(host, 36)).toBe(true);
    // The other cards were not touched.
    expect(await bindingState(host, ['0000:3b:00.0', '0000:3b:00.1'])).toEqual({
      '0000:3b:00.0': { driver: 'nvidia', override: '(null)\n' },
      '0000:3b:00.1': { driver: 'snd_hda_intel', override: '(null)\n' },
    });

    expect((await read(host, ['pci', 'status', 'gpupci1'])).stdout).toBe(
      "GPU card 'gpupci1' video device 0000:18:00.0 is linked to bus/pci/drivers/vfio-pci driver\nGPU card 'gpupci1' audio device 0000:18:00.1 is linked to bus/pci/drivers/vfio-pci driver\n",
    );

    // A second detach, by address, finds both functions already there and writes nothing.
    const detached = await snapshotTree(host.root);
    const again = await sim(host, ['pci', 'detach', '0000:18:00.0']);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe("GPU card 'gpupci1' video device 0000:18:00.0 is already detached\nGPU card 'gpupci1' audio device 0000:18:00.1 is already detached\n");
    expect(await snapshotTree(host.root)).toEqual(detached);

    const a = await sim(host, ['pci', 'attach', 'gpupci1']);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toBe('Attached video card 0000:18:00.0 of gpupci1\nAttached audio card 0000:18:00.1 of gpupci1\n');
    expect(await bindingState(host, ['0000:18:00.0', '0000:18:00.1'])).toEqual({
      '0000:18:00.0': { driver: 'nvidia', override: '(null)\n' },
      '0000:18:00.1': { driver: 'snd_hda_intel', override: '(null)\n' },
    });
    expect(vfioNode(host, 36)).toBe(false);
    expect(await snapshotTree(host.root)).toEqual(before);
  });

  it('reports functions already on vfio-pci as "already detached" and attaches a card only an inactive domain names', async () => {
    const host = await hostFrom('titanxp-seed001');
    const d = await sim(host, ['pci', 'detach', 'gpupci3']);
    expect(d.code).toBe(0);
    expect(d.stdout).toBe("GPU card 'gpupci3' video device 0000:86:00.0 is already detached\nGPU card 'gpupci3' audio device 0000:86:00.1 is already detached\n");
    // cad-titan names 0000:86:00.0/.1 but is not running (only /etc/libvirt/qemu): attach goes ahead.
    const a = await sim(host, ['pci', 'attach', '86:00.0']);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toBe('Attached video card 0000:86:00.0 of gpupci3\nAttached audio card 0000:86:00.1 of gpupci3\n');
    expect(await bindingState(host, ['0000:86:00.0', '0000:86:00.1'])).toEqual({
      '0000:86:00.0': { driver: 'nvidia', override: '(null)\n' },
      '0000:86:00.1': { driver: 'snd_hda_intel', override: '(null)\n' },
    });
    expect(vfioNode(host, 88)).toBe(false);
    // And back: seed 000's "Detached" for both, /dev/vfio/88 again.
    const back = await sim(host, ['pci', 'detach', 'gpupci3']);
    expect(back.stdout).toBe("Detached GPU card 'gpupci3' video device 0000:86:00.0\nDetached GPU card 'gpupci3' audio device 0000:86:00.1\n");
    expect(vfioNode(host, 88)).toBe(true);
    expect(overrideOf(host, '0000:86:00.1')).toBe('vfio-pci\n');
  });

  it('attach all reports cards already on the host and attaches the rest', async () => {
    const host = await hostFrom('titanxp-seed001');
    expect((await sim(host, ['pci', 'detach', 'gpupci1'])).code).toBe(0);
    const a = await sim(host, ['pci', 'attach', 'all']);
    expect(a.code, a.stderr).toBe(0);
    expect(lines(a.stdout)).toEqual([
      'Attached video card 0000:18:00.0 of gpupci1',
      'Attached audio card 0000:18:00.1 of gpupci1',
      "GPU card 'gpupci2' video device 0000:3b:00.0 is already attached to the host (nvidia)",
      "GPU card 'gpupci2' audio device 0000:3b:00.1 is already attached to the host (snd_hda_intel)",
      'Attached video card 0000:86:00.0 of gpupci3',
      'Attached audio card 0000:86:00.1 of gpupci3',
    ]);
    expect((await read(host, ['pci', 'status'])).stdout).toBe(
      [
        "GPU card 'gpupci1' video device 0000:18:00.0 is linked to bus/pci/drivers/nvidia driver",
        "GPU card 'gpupci1' audio device 0000:18:00.1 is linked to bus/pci/drivers/snd_hda_intel driver",
        "GPU card 'gpupci2' video device 0000:3b:00.0 is linked to bus/pci/drivers/nvidia driver",
        "GPU card 'gpupci2' audio device 0000:3b:00.1 is linked to bus/pci/drivers/snd_hda_intel driver",
        "GPU card 'gpupci3' video device 0000:86:00.0 is linked to bus/pci/drivers/nvidia driver",
        "GPU card 'gpupci3' audio device 0000:86:00.1 is linked to bus/pci/drivers/snd_hda_intel driver",
        '',
      ].join('\n'),
    );
    for (const f of TITAN_FUNCTIONS) expect(overrideOf(host, f)).toBe('(null)\n');
  });

  it('detach and attach in JSON: one step per function, the exact sysfs writes in order', async () => {
    const host = await hostFrom('titanxp-seed001');
    const d = await sim(host, ['pci', 'detach', 'gpupci1', '-o', 'json']);
    expect(d.code).toBe(0);
    const dj = d.json();
    expect(dj.dry_run).toBe(false);
    expect(dj.steps).toEqual([
      { card: 'gpupci1', role: 'video', address: '0000:18:00.0', outcome: 'detached', driver_before: 'nvidia' },
      { card: 'gpupci1', role: 'audio', address: '0000:18:00.1', outcome: 'detached', driver_before: 'snd_hda_intel' },
    ]);
    expect(dj.actions.map((a: any) => [a.path, a.data])).toEqual([
      ['/sys/bus/pci/devices/0000:18:00.0/driver_override', 'vfio-pci'],
      ['/sys/bus/pci/drivers/nvidia/unbind', '0000:18:00.0'],
      ['/sys/bus/pci/drivers_probe', '0000:18:00.0'],
      ['/sys/bus/pci/devices/0000:18:00.1/driver_override', 'vfio-pci'],
      ['/sys/bus/pci/drivers/snd_hda_intel/unbind', '0000:18:00.1'],
      ['/sys/bus/pci/drivers_probe', '0000:18:00.1'],
    ]);
    expect(dj.actions.every((a: any) => a.kind === 'sysfs-write' && typeof a.summary === 'string')).toBe(true);

    const a = await sim(host, ['pci', 'attach', 'all', '-o', 'json']);
    expect(a.code).toBe(0);
    const aj = a.json();
    expect(aj.steps.map((s: any) => [s.address, s.outcome, s.driver_before])).toEqual([
      ['0000:18:00.0', 'attached', 'vfio-pci'],
      ['0000:18:00.1', 'attached', 'vfio-pci'],
      ['0000:3b:00.0', 'already-attached', 'nvidia'],
      ['0000:3b:00.1', 'already-attached', 'snd_hda_intel'],
      ['0000:86:00.0', 'attached', 'vfio-pci'],
      ['0000:86:00.1', 'attached', 'vfio-pci'],
    ]);
    expect(aj.actions.slice(0, 3).map((x: any) => [x.path, x.data])).toEqual([
      ['/sys/bus/pci/devices/0000:18:00.0/driver_override', '\n'],
      ['/sys/bus/pci/drivers/vfio-pci/unbind', '0000:18:00.0'],
      ['/sys/bus/pci/drivers_probe', '0000:18:00.0'],
    ]);
    expect(await bindingState(host, ['0000:18:00.0', '0000:86:00.1'])).toEqual({
      '0000:18:00.0': { driver: 'nvidia', override: '(null)\n' },
      '0000:86:00.1': { driver: 'snd_hda_intel', override: '(null)\n' },
    });
  });

  it('--dry-run says what it would do and changes nothing', async () => {
    const host = await hostFrom('titanxp-seed001');
    const before = await snapshotTree(host.root);
    const d = await sim(host, ['pci', 'detach', 'gpupci1', '--dry-run']);
    expect(d.code).toBe(0);
    expect(d.stdout).toBe("Would detach GPU card 'gpupci1' video device 0000:18:00.0\nWould detach GPU card 'gpupci1' audio device 0000:18:00.1\n");
    const a = await sim(host, ['pci', 'attach', 'gpupci3', '--dry-run', '-o', 'json']);
    expect(a.code).toBe(0);
    expect(a.json().dry_run).toBe(true);
    expect(a.json().actions).toHaveLength(6);
    expect(await snapshotTree(host.root)).toEqual(before);
  });
});

describe('pci on t4x4-seed001', () => {
  it('names the four T4s in address order and shows which carries mdevs', async () => {
    const host = await hostFrom('t4x4-seed001');
    const cards = (await read(host, ['pci', 'list', '-o', 'json'])).json().cards;
    expect(cards.map((c: any) => [c.name, c.address, c.functions.map((f: any) => `${f.role}:${f.driver}`), c.iommu_groups, c.mdevs.length])).toEqual([
      ['gpupci1', '0000:18:00.0', ['video:nvidia'], [36], 2],
      ['gpupci2', '0000:3b:00.0', ['video:nvidia'], [52], 0],
      ['gpupci3', '0000:86:00.0', ['video:vfio-pci'], [88], 0],
      ['gpupci4', '0000:af:00.0', ['video:nvidia'], [104], 0],
    ]);
    expect(cards[0].mdevs.sort()).toEqual(['a02e5c35-5a0b-48fa-a11d-21e9747cf09e', 'b69191f8-064e-4e9f-a479-de7df8e655b2']);
    expect((await read(host, ['pci', 'status'])).stdout).toBe(
      [
        "GPU card 'gpupci1' video device 0000:18:00.0 is linked to bus/pci/drivers/nvidia driver",
        "GPU card 'gpupci2' video device 0000:3b:00.0 is linked to bus/pci/drivers/nvidia driver",
        "GPU card 'gpupci3' video device 0000:86:00.0 is linked to bus/pci/drivers/vfio-pci driver",
        "GPU card 'gpupci4' video device 0000:af:00.0 is linked to bus/pci/drivers/nvidia driver",
        '',
      ].join('\n'),
    );
  });

  it('detaching a vGPU-capable T4 takes it off the mdev bus; attaching brings its types back as they were', async () => {
    const host = await hostFrom('t4x4-seed001');
    const before = await snapshotTree(host.root);
    const typesBefore = (await read(host, ['types', '-p', '0000:3b:00.0', '-o', 'json'])).json().types;
    expect(typesBefore).toHaveLength(17);

    const d = await sim(host, ['pci', 'detach', 'gpupci2']);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toBe("Detached GPU card 'gpupci2' video device 0000:3b:00.0\n");
    expect(await driverOf(host, '0000:3b:00.0')).toBe('vfio-pci');
    expect(overrideOf(host, '0000:3b:00.0')).toBe('vfio-pci\n');
    expect(vfioNode(host, 52)).toBe(true);
    // nvidia let go of it: no longer an mdev parent, so no vGPU can be created on a card a VM is about to own.
    expect(existsSync(path.join(host.root, 'sys/class/mdev_bus/0000:3b:00.0'))).toBe(false);
    const gpu = (await read(host, ['gpus', '-o', 'json'])).json().gpus.find((g: any) => g.address === '0000:3b:00.0');
    expect(gpu).toMatchObject({ driver: 'vfio-pci', mode: 'passthrough' });
    const create = await sim(host, ['create', '-p', '0000:3b:00.0', '-t', 'nvidia-233']);
    expect(create.code).toBe(1);
    expect(create.stderr).toMatch(/0000:3b:00\.0 is not an mdev parent/);

    const a = await sim(host, ['pci', 'attach', 'gpupci2']);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toBe('Attached video card 0000:3b:00.0 of gpupci2\n');
    expect(await driverOf(host, '0000:3b:00.0')).toBe('nvidia');
    expect(overrideOf(host, '0000:3b:00.0')).toBe('(null)\n');
    expect(vfioNode(host, 52)).toBe(false);
    expect((await read(host, ['types', '-p', '0000:3b:00.0', '-o', 'json'])).json().types).toEqual(typesBefore);
    expect(await snapshotTree(host.root)).toEqual(before);
  });

  it('the passthrough T4 is "already detached"; attach gives it to nvidia and detach takes it back', async () => {
    const host = await hostFrom('t4x4-seed001');
    const d = await sim(host, ['pci', 'detach', 'gpupci3']);
    expect(d.stdout).toBe("GPU card 'gpupci3' video device 0000:86:00.0 is already detached\n");
    const a = await sim(host, ['pci', 'attach', 'gpupci3', '-o', 'json']);
    expect(a.code, a.stderr).toBe(0);
    expect(a.json().steps).toEqual([{ card: 'gpupci3', role: 'video', address: '0000:86:00.0', outcome: 'attached', driver_before: 'vfio-pci' }]);
    expect(await bindingState(host, T4_FUNCTIONS)).toEqual({
      '0000:18:00.0': { driver: 'nvidia', override: '(null)\n' },
      '0000:3b:00.0': { driver: 'nvidia', override: '(null)\n' },
      '0000:86:00.0': { driver: 'nvidia', override: '(null)\n' },
      '0000:af:00.0': { driver: 'nvidia', override: '(null)\n' },
    });
    expect(vfioNode(host, 88)).toBe(false);
    const again = await sim(host, ['pci', 'detach', '0000:86:00.0', '-o', 'json']);
    expect(again.json().steps).toEqual([{ card: 'gpupci3', role: 'video', address: '0000:86:00.0', outcome: 'detached', driver_before: 'nvidia' }]);
    expect(await driverOf(host, '0000:86:00.0')).toBe('vfio-pci');
    expect(vfioNode(host, 88)).toBe(true);
  });

  it('attach of the T4 that carries mdevs (still on nvidia) is a no-op that says so', async () => {
    const host = await hostFrom('t4x4-seed001');
    const before = await snapshotTree(host.root);
    const a = await sim(host, ['pci', 'attach', 'gpupci1']);
    expect(a.code).toBe(0);
    expect(a.stdout).toBe("GPU card 'gpupci1' video device 0000:18:00.0 is already attached to the host (nvidia)\n");
    expect(await snapshotTree(host.root)).toEqual(before);
  });
});

describe('a Turing card with USB-C: four functions in one group', () => {
  it('detach moves all four to vfio-pci; attach gives each back to its own driver', async () => {
    const host = await hostFrom(TURING_USB_C);
    const before = await snapshotTree(host.root);
    const card = (await read(host, ['pci', 'list', '-o', 'json'])).json().cards[0];
    expect(card.functions.map((f: any) => [f.address, f.role, f.driver])).toEqual([
      ['0000:65:00.0', 'video', 'nvidia'],
      ['0000:65:00.1', 'audio', 'snd_hda_intel'],
      ['0000:65:00.2', 'usb', 'xhci_hcd'],
      ['0000:65:00.3', 'ucsi', 'nvidia-gpu'],
    ]);
    expect(card.foreign_in_group).toEqual([]);
    expect(lines((await read(host, ['pci', 'status'])).stdout).slice(2)).toEqual([
      "GPU card 'gpupci1' usb device 0000:65:00.2 is linked to bus/pci/drivers/xhci_hcd driver",
      "GPU card 'gpupci1' ucsi device 0000:65:00.3 is linked to bus/pci/drivers/nvidia-gpu driver",
    ]);
    const d = await sim(host, ['pci', 'detach', 'gpupci1']);
    expect(d.code, d.stderr).toBe(0);
    expect(lines(d.stdout)).toEqual([0, 1, 2, 3].map((f) => `Detached GPU card 'gpupci1' ${['video', 'audio', 'usb', 'ucsi'][f]} device 0000:65:00.${f}`));
    for (const f of [0, 1, 2, 3]) expect(await driverOf(host, `0000:65:00.${f}`)).toBe('vfio-pci');
    expect(vfioNode(host, 70)).toBe(true);
    const a = await sim(host, ['pci', 'attach', 'gpupci1']);
    expect(a.code, a.stderr).toBe(0);
    expect(lines(a.stdout)).toEqual(['Attached video card 0000:65:00.0 of gpupci1', 'Attached audio card 0000:65:00.1 of gpupci1', 'Attached usb card 0000:65:00.2 of gpupci1', 'Attached ucsi card 0000:65:00.3 of gpupci1']);
    expect(await snapshotTree(host.root)).toEqual(before);
  });
});

