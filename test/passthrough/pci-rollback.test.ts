/**
 * A detach or attach whose k-th sysfs write fails (VGPUCTL_SIM_FAULTS=any#k=EIO) puts every function back
 * on the driver it had, with the driver_override it had, exits 1 and says what failed and what was undone.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostFrom, snapshotTree } from '../helpers/hosts.js';
import { bindingState, driverOf, fixtureSpec, overrideOf, read, sim, TITAN_FUNCTIONS, vfioNode } from './pci-helpers.js';

const GPUPCI1 = ['0000:18:00.0', '0000:18:00.1'];
const ORIGINAL = {
  '0000:18:00.0': { driver: 'nvidia', override: '(null)\n' },
  '0000:18:00.1': { driver: 'snd_hda_intel', override: '(null)\n' },
};

/** The TITAN Xp host without the NIC in gpupci2's group, so `detach all` moves two cards. */
function titanWithoutNic() {
  const spec = fixtureSpec('titanxp-seed001');
  return { ...spec, name: 'titanxp-no-nic', pci: spec.pci.filter((d) => d.address !== '0000:3c:00.0') };
}

describe('detach rollback', () => {
  // gpupci1 takes six writes: per function driver_override, unbind from the host driver, drivers_probe.
  it.each([1, 2, 3, 4, 5, 6])('write #%i of six fails: both functions end on their own drivers, tree as before', async (k) => {
    const host = await hostFrom('titanxp-seed001');
    const before = await snapshotTree(host.root);
    const r = await sim(host, ['pci', 'detach', 'gpupci1'], { VGPUCTL_SIM_FAULTS: `any#${k}=EIO` });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/EIO/);
    if (k === 1) expect(r.stderr).toMatch(/nothing was changed/);
    else {
      expect(r.stderr).toMatch(/undone: /);
      expect(r.stderr).toContain('restore driver_override of 0000:18:00.0');
      expect(r.stderr).toContain('give 0000:18:00.0 back to nvidia');
    }
    // The audio function's override is restored only once it was set (write #4 onwards succeeded).
    if (k >= 5) expect(r.stderr).toContain('give 0000:18:00.1 back to snd_hda_intel');
    // The video function reached vfio-pci only when write #3 succeeded: then it is unbound from it again.
    if (k >= 4) expect(r.stderr).toContain('unbind 0000:18:00.0 from vfio-pci');
    expect(await bindingState(host, GPUPCI1)).toEqual(ORIGINAL);
    expect(vfioNode(host, 36)).toBe(false);
    expect(await snapshotTree(host.root)).toEqual(before);
  });

  it('a driver_override the operator had set is put back as it was', async () => {
    const host = await hostFrom('titanxp-seed001');
    await fs.writeFile(path.join(host.root, 'sys/bus/pci/devices/0000:18:00.1/driver_override'), 'snd_hda_intel\n');
    const before = await snapshotTree(host.root);
    const r = await sim(host, ['pci', 'detach', 'gpupci1'], { VGPUCTL_SIM_FAULTS: 'any#6=EIO' });
    expect(r.code).toBe(1);
    expect(overrideOf(host, '0000:18:00.1')).toBe('snd_hda_intel\n');
    expect(await bindingState(host, GPUPCI1)).toEqual({ ...ORIGINAL, '0000:18:00.1': { driver: 'snd_hda_intel', override: 'snd_hda_intel\n' } });
    expect(await snapshotTree(host.root)).toEqual(before);
  });

  it('detach all over two cards: any failing write leaves all six functions as they were', async () => {
    // 2 cards x 2 functions x 3 writes = 12; gpupci3 is already on vfio-pci and needs none.
    for (const k of [1, 3, 6, 7, 9, 12]) {
      const host = await hostFrom(titanWithoutNic());
      const before = await snapshotTree(host.root);
      const stateBefore = await bindingState(host, TITAN_FUNCTIONS);
      const r = await sim(host, ['pci', 'detach', 'all'], { VGPUCTL_SIM_FAULTS: `any#${k}=EIO` });
      expect(r.code, `fault at write ${k}`).toBe(1);
      expect(r.stderr).toMatch(k === 1 ? /nothing was changed/ : /undone: .*restore driver_override of 0000:18:00\.0/);
      expect(await bindingState(host, TITAN_FUNCTIONS), `fault at write ${k}`).toEqual(stateBefore);
      expect(await snapshotTree(host.root), `fault at write ${k}`).toEqual(before);
    }
    // Without a fault the same request goes through (so the faults above really hit a working sequence).
    const host = await hostFrom(titanWithoutNic());
    const ok = await sim(host, ['pci', 'detach', 'all']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout.trimEnd().split('\n')).toEqual([
      "Detached GPU card 'gpupci1' video device 0000:18:00.0",
      "Detached GPU card 'gpupci1' audio device 0000:18:00.1",
      "Detached GPU card 'gpupci2' video device 0000:3b:00.0",
      "Detached GPU card 'gpupci2' audio device 0000:3b:00.1",
      "GPU card 'gpupci3' video device 0000:86:00.0 is already detached",
      "GPU card 'gpupci3' audio device 0000:86:00.1 is already detached",
    ]);
  });
});

/** One TITAN Xp as seed 000's hosts had theirs before vfio-pci: both functions on pci-stub, or audio unbound. */
function titanOn(video: string | null, audio: string | null) {
  const spec = fixtureSpec('titanxp-seed001');
  const [v, a] = spec.pci.filter((d) => d.address.startsWith('0000:18:00.'));
  return {
    name: 'titan-one',
    summary: 'one TITAN Xp with the given drivers; host drivers loaded',
    pci: [
      { ...v!, driver: video },
      { ...a!, driver: audio },
    ],
    pci_drivers: ['vfio-pci', 'nvidia', 'snd_hda_intel', 'pci-stub'],
  };
}

describe('detach rollback to drivers that are not the native ones', () => {
  it.each([2, 3, 4, 5, 6])('pci-stub (seed 000), write #%i fails: both functions back on pci-stub, not on nvidia', async (k) => {
    const host = await hostFrom(titanOn('pci-stub', 'pci-stub'));
    const before = await snapshotTree(host.root);
    const r = await sim(host, ['pci', 'detach', 'gpupci1'], { VGPUCTL_SIM_FAULTS: `any#${k}=EIO` });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('give 0000:18:00.0 back to pci-stub');
    expect(await bindingState(host, GPUPCI1)).toEqual({
      '0000:18:00.0': { driver: 'pci-stub', override: '(null)\n' },
      '0000:18:00.1': { driver: 'pci-stub', override: '(null)\n' },
    });
    expect(await snapshotTree(host.root)).toEqual(before);
  });

  it('pci-stub without a fault: detach takes both to vfio-pci, attach gives them to the host drivers', async () => {
    const host = await hostFrom(titanOn('pci-stub', 'pci-stub'));
    expect((await read(host, ['pci', 'status'])).stdout).toBe(
      "GPU card 'gpupci1' video device 0000:18:00.0 is linked to bus/pci/drivers/pci-stub driver\nGPU card 'gpupci1' audio device 0000:18:00.1 is linked to bus/pci/drivers/pci-stub driver\n",
    );
    const d = await sim(host, ['pci', 'detach', 'gpupci1']);
    expect(d.stdout).toBe("Detached GPU card 'gpupci1' video device 0000:18:00.0\nDetached GPU card 'gpupci1' audio device 0000:18:00.1\n");
    expect(await driverOf(host, '0000:18:00.1')).toBe('vfio-pci');
    expect((await sim(host, ['pci', 'attach', 'gpupci1'])).code).toBe(0);
    expect(await bindingState(host, GPUPCI1)).toEqual(ORIGINAL);
  });

  it.each([4, 5])('an audio function with no driver, write #%i fails: it is left without one', async (k) => {
    // Video: override, unbind, probe (writes 1-3); audio has no driver to unbind: override, probe (4-5).
    const host = await hostFrom(titanOn('nvidia', null));
    expect((await read(host, ['pci', 'status'])).stdout).toContain("GPU card 'gpupci1' audio device 0000:18:00.1 is not bound to any driver");
    const before = await snapshotTree(host.root);
    const r = await sim(host, ['pci', 'detach', 'gpupci1'], { VGPUCTL_SIM_FAULTS: `any#${k}=EIO` });
    expect(r.code).toBe(1);
    expect(await bindingState(host, GPUPCI1)).toEqual({
      '0000:18:00.0': { driver: 'nvidia', override: '(null)\n' },
      '0000:18:00.1': { driver: null, override: '(null)\n' },
    });
    expect(await snapshotTree(host.root)).toEqual(before);
  });
});

describe('attach rollback', () => {
  // gpupci3 (both functions on vfio-pci through vfio-pci.ids, override unset): clear override, unbind
  // from vfio-pci, drivers_probe, per function.
  it.each([1, 2, 3, 4, 5, 6])('write #%i of six fails: the card stays on vfio-pci with its overrides unset', async (k) => {
    const host = await hostFrom('titanxp-seed001');
    const before = await snapshotTree(host.root);
    const r = await sim(host, ['pci', 'attach', 'gpupci3'], { VGPUCTL_SIM_FAULTS: `any#${k}=EIO` });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/EIO/);
    expect(r.stderr).not.toMatch(/could not undo/);
    expect(await bindingState(host, ['0000:86:00.0', '0000:86:00.1'])).toEqual({
      '0000:86:00.0': { driver: 'vfio-pci', override: '(null)\n' },
      '0000:86:00.1': { driver: 'vfio-pci', override: '(null)\n' },
    });
    expect(vfioNode(host, 88)).toBe(true);
    expect(await snapshotTree(host.root)).toEqual(before);
  });

  it('a card vgpuctl detached (override vfio-pci) keeps that override when attach is undone', async () => {
    const host = await hostFrom('titanxp-seed001');
    expect((await sim(host, ['pci', 'detach', 'gpupci1'])).code).toBe(0);
    const before = await snapshotTree(host.root);
    const r = await sim(host, ['pci', 'attach', 'gpupci1'], { VGPUCTL_SIM_FAULTS: 'any#5=EIO' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('unbind 0000:18:00.0 from the host driver');
    expect(await bindingState(host, GPUPCI1)).toEqual({
      '0000:18:00.0': { driver: 'vfio-pci', override: 'vfio-pci\n' },
      '0000:18:00.1': { driver: 'vfio-pci', override: 'vfio-pci\n' },
    });
    expect(await snapshotTree(host.root)).toEqual(before);
  });
});
