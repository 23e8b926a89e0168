/**
 * What pci detach/attach refuse, and bad card names: exit 1 with the cause named (exit 2 for what cannot
 * be a name or address), and nothing rebound — the whole tree is compared before and after.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { HostRoot } from '../../src/host/host-root.js';
import { hostFrom, snapshotTree } from '../helpers/hosts.js';
import { bindingState, TITAN_FUNCTIONS, T4_FUNCTIONS, read, runningDomainXml, sim } from './pci-helpers.js';

/** Runs a command that must fail, and checks the tree did not move. */
async function refused(host: HostRoot, args: string[], code: 1 | 2) {
  const before = await snapshotTree(host.root);
  const r = await sim(host, args);
  expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(code);
  expect(r.stdout).toBe('');
  expect(r.stderr).toMatch(/^vgpuctl: error: /);
  expect(await snapshotTree(host.root)).toEqual(before);
  return r;
}

async function writeFile(host: HostRoot, rel: string, content: string) {
  await fs.mkdir(path.dirname(path.join(host.root, rel)), { recursive: true });
  await fs.writeFile(path.join(host.root, rel), content);
}

describe('pci detach refusals', () => {
  it('refuses the TITAN Xp whose IOMMU group also holds the igb NIC, naming the NIC', async () => {
    const host = await hostFrom('titanxp-seed001');
    for (const which of ['gpupci2', '0000:3b:00.0', '3b:00.1']) {
      const r = await refused(host, ['pci', 'detach', which], 1);
      expect(r.stderr).toMatch(/will not detach gpupci2 \(0000:3b:00\.0\)/);
      expect(r.stderr).toMatch(/IOMMU group 52 also holds 0000:3c:00\.0 \(igb\)/);
    }
    expect(await bindingState(host, ['0000:3b:00.0', '0000:3b:00.1', '0000:3c:00.0'])).toEqual({
      '0000:3b:00.0': { driver: 'nvidia', override: '(null)\n' },
      '0000:3b:00.1': { driver: 'snd_hda_intel', override: '(null)\n' },
      '0000:3c:00.0': { driver: 'igb', override: '(null)\n' },
    });
  });

  it('detach all is refused whole: gpupci1, which comes first, is not rebound either', async () => {
    const host = await hostFrom('titanxp-seed001');
    const r = await refused(host, ['pci', 'detach', 'all'], 1);
    expect(r.stderr).toMatch(/gpupci2.*0000:3c:00\.0/);
    expect(await bindingState(host, ['0000:18:00.0', '0000:18:00.1'])).toEqual({
      '0000:18:00.0': { driver: 'nvidia', override: '(null)\n' },
      '0000:18:00.1': { driver: 'snd_hda_intel', override: '(null)\n' },
    });
    // Also in JSON mode and as a dry run: the same refusal, no output on stdout.
    await refused(host, ['pci', 'detach', 'all', '-o', 'json'], 1);
    await refused(host, ['pci', 'detach', 'all', '--dry-run'], 1);
  });

  it('refuses the T4 that carries mdevs, naming them; detach all is refused and moves no T4', async () => {
    const host = await hostFrom('t4x4-seed001');
    const r = await refused(host, ['pci', 'detach', 'gpupci1'], 1);
    expect(r.stderr).toMatch(/will not detach gpupci1 \(0000:18:00\.0\): it carries 2 mdev\(s\)/);
    expect(r.stderr).toContain('a02e5c35-5a0b-48fa-a11d-21e9747cf09e');
    expect(r.stderr).toMatch(/destroy them first/);
    const all = await refused(host, ['pci', 'detach', 'all'], 1);
    expect(all.stderr).toMatch(/gpupci1.*mdev/);
    expect(await bindingState(host, T4_FUNCTIONS)).toEqual({
      '0000:18:00.0': { driver: 'nvidia', override: '(null)\n' },
      '0000:3b:00.0': { driver: 'nvidia', override: '(null)\n' },
      '0000:86:00.0': { driver: 'vfio-pci', override: '(null)\n' },
      '0000:af:00.0': { driver: 'nvidia', override: '(null)\n' },
    });
  });

  it('refuses when vfio-pci is not loaded', async () => {
    const host = await hostFrom({
      name: 'no-vfio',
      summary: 'one TITAN Xp, vfio-pci not loaded',
      pci: [
        { address: '0000:18:00.0', path: ['pci0000:17', '0000:17:00.0'], vendor: '0x10de', device: '0x1b02', subsystem_device: '0x11df', class: '0x030000', driver: 'nvidia', iommu_group: 36 },
        { address: '0000:18:00.1', path: ['pci0000:17', '0000:17:00.0'], vendor: '0x10de', device: '0x10ef', subsystem_device: '0x11df', class: '0x040300', driver: 'snd_hda_intel', iommu_group: 36 },
      ] as any,
    });
    const r = await refused(host, ['pci', 'detach', 'gpupci1'], 1);
    expect(r.stderr).toMatch(/vfio-pci is not loaded: run modprobe vfio-pci/);
  });
});

describe('pci attach refusals: a running VM uses the card', () => {
  it('a running libvirt domain with a PCI hostdev of the card (status XML under /run/libvirt/qemu)', async () => {
    const host = await hostFrom('titanxp-seed001');
    await writeFile(host, 'run/libvirt/qemu/cad-titan.xml', runningDomainXml('cad-titan', ['0000:86:00.0', '0000:86:00.1']));
    for (const which of ['gpupci3', '0000:86:00.1', 'all']) {
      const r = await refused(host, ['pci', 'attach', which], 1);
      expect(r.stderr).toMatch(/will not attach gpupci3 \(0000:86:00\.0\) to the host: a running VM uses it \(domain cad-titan\); shut it down first/);
    }
    expect(await bindingState(host, ['0000:86:00.0', '0000:86:00.1'])).toEqual({
      '0000:86:00.0': { driver: 'vfio-pci', override: '(null)\n' },
      '0000:86:00.1': { driver: 'vfio-pci', override: '(null)\n' },
    });
  });

  it('a domain that uses only the audio function blocks the whole card', async () => {
    const host = await hostFrom('titanxp-seed001');
    await writeFile(host, 'run/libvirt/qemu/snd-only.xml', runningDomainXml('snd-only', ['0000:86:00.1']));
    const r = await refused(host, ['pci', 'attach', 'gpupci3'], 1);
    expect(r.stderr).toMatch(/domain snd-only/);
  });

  it('a qemu process with -device vfio-pci,host=0000:86:00.0 (no libvirt)', async () => {
    const host = await hostFrom('t4x4-seed001');
    const argv = ['/usr/libexec/qemu-kvm', '-name', 'guest=hand-made', '-m', '8192', '-device', 'vfio-pci,host=0000:86:00.0,id=hostdev0,bus=pci.5,addr=0x0'];
    await writeFile(host, 'proc/61502/cmdline', argv.join('\0') + '\0');
    await writeFile(host, 'proc/61502/comm', 'qemu-kvm\n');
    const r = await refused(host, ['pci', 'attach', 'gpupci3'], 1);
    expect(r.stderr).toMatch(/will not attach gpupci3 \(0000:86:00\.0\).*pid 61502/);
    // attach all: refused whole, gpupci2 (detached first) stays on vfio-pci too.
    expect((await sim(host, ['pci', 'detach', 'gpupci2'])).code).toBe(0);
    const all = await refused(host, ['pci', 'attach', 'all'], 1);
    expect(all.stderr).toMatch(/pid 61502/);
    expect(await bindingState(host, ['0000:3b:00.0', '0000:86:00.0'])).toEqual({
      '0000:3b:00.0': { driver: 'vfio-pci', override: 'vfio-pci\n' },
      '0000:86:00.0': { driver: 'vfio-pci', override: '(null)\n' },
    });
  });

  it('the short host=86:00.0 form counts too; a VM on another card does not block', async () => {
    const host = await hostFrom('titanxp-seed001');
    await writeFile(host, 'proc/7001/cmdline', ['qemu-system-x86_64', '-device', 'vfio-pci,host=86:00.0,multifunction=on', '-device', 'vfio-pci,host=86:00.1'].join('\0') + '\0');
    const r = await refused(host, ['pci', 'attach', 'gpupci3'], 1);
    expect(r.stderr).toMatch(/pid 7001/);
    // gpupci1 is not used by that qemu: detach and attach it freely.
    expect((await sim(host, ['pci', 'detach', 'gpupci1'])).code).toBe(0);
    const ok = await sim(host, ['pci', 'attach', 'gpupci1']);
    expect(ok.code, ok.stderr).toBe(0);
  });
});

describe('card names and addresses', () => {
  const bad = ['gpupci', '../x', '0000:82:00', 'foo', 'gpupci1x', '0000:82:00.8', '82:20.0', 'gpupci-1', '/sys/bus/pci/devices/0000:18:00.0'];

  it.each(bad)('%j is bad input: exit 2 for status, detach and attach, nothing changes', async (which) => {
    const host = await hostFrom('titanxp-seed001');
    for (const cmd of ['status', 'detach', 'attach']) {
      const r = await refused(host, ['pci', cmd, which], 2);
      expect(r.stderr).toContain(JSON.stringify(which));
      expect(r.stderr).toMatch(/neither a card name \(gpupci1\), a PCI address \(0000:18:00\.0\) nor "all"/);
    }
  });

  it('a well-formed name or address that is not an NVIDIA card here exits 1 and says what exists', async () => {
    const host = await hostFrom('titanxp-seed001');
    for (const cmd of ['status', 'detach', 'attach']) {
      const name = await refused(host, ['pci', cmd, 'gpupci9'], 1);
      expect(name.stderr).toMatch(/no card gpupci9; this host has gpupci1, gpupci2, gpupci3/);
      const addr = await refused(host, ['pci', cmd, '0000:82:00.0'], 1);
      expect(addr.stderr).toMatch(/0000:82:00\.0 is not a function of an NVIDIA card on this host/);
      // The NIC exists but is not a card's function.
      const nic = await refused(host, ['pci', cmd, '3c:00.0'], 1);
      expect(nic.stderr).toMatch(/0000:3c:00\.0 is not a function of an NVIDIA card/);
    }
    expect((await read(host, ['pci', 'status', 'gpupci0'])).code).toBe(1);
    expect(await bindingState(host, TITAN_FUNCTIONS)).toMatchObject({ '0000:18:00.0': { driver: 'nvidia' }, '0000:86:00.0': { driver: 'vfio-pci' } });
  });
});
