/** Reading a host tree's PCI binding state the way the kernel shows it, for the passthrough tests. */
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import type { HostRoot } from '../../src/host/host-root.js';
import type { FixtureSpec } from '../../src/simulator/fixture-spec.js';
import { cli, type CliResult } from '../helpers/cli.js';

/** `vgpuctl --root ROOT --simulate ARGS...` in-process. */
export const sim = (host: HostRoot, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> => cli(['--root', host.root, '--simulate', ...args], env);

/** `vgpuctl --root ROOT ARGS...` (read-only commands). */
export const read = (host: HostRoot, args: string[]): Promise<CliResult> => cli(['--root', host.root, ...args]);

const devDir = (host: HostRoot, addr: string) => path.join(host.root, 'sys/bus/pci/devices', addr);

/** The driver a function is bound to, from its `driver` link (null when unbound), checked both ways. */
export async function driverOf(host: HostRoot, addr: string): Promise<string | null> {
  const link = path.join(devDir(host, addr), 'driver');
  let target: string;
  try {
    target = await fs.readlink(link);
  } catch {
    return null;
  }
  const driver = path.basename(target);
  // The link resolves to the driver's directory, and the driver lists the device back.
  const resolved = await fs.realpath(link);
  if (resolved !== (await fs.realpath(path.join(host.root, 'sys/bus/pci/drivers', driver)))) throw new Error(`${addr}/driver -> ${target} does not resolve to the driver directory`);
  const back = path.join(host.root, 'sys/bus/pci/drivers', driver, addr);
  if ((await fs.realpath(back)) !== (await fs.realpath(devDir(host, addr)))) throw new Error(`drivers/${driver}/${addr} does not point back at the device`);
  return driver;
}

/** Content of a function's driver_override, as `cat` prints it ("(null)\n" when unset). */
export const overrideOf = (host: HostRoot, addr: string): string => readFileSync(path.join(devDir(host, addr), 'driver_override'), 'utf8');

export const vfioNode = (host: HostRoot, group: number): boolean => existsSync(path.join(host.root, 'dev/vfio', String(group)));

/** Drivers and overrides of the given functions: one object to compare before and after. */
export async function bindingState(host: HostRoot, addrs: string[]): Promise<Record<string, { driver: string | null; override: string }>> {
  const out: Record<string, { driver: string | null; override: string }> = {};
  for (const a of addrs) out[a] = { driver: await driverOf(host, a), override: overrideOf(host, a) };
  return out;
}

/** A bundled fixture's spec, to derive inline variants from. */
export function fixtureSpec(name: string): FixtureSpec {
  return JSON.parse(readFileSync(new URL(`../../fixtures/${name}.json`, import.meta.url), 'utf8')) as FixtureSpec;
}

export const TITAN_FUNCTIONS = ['0000:18:00.0', '0000:18:00.1', '0000:3b:00.0', '0000:3b:00.1', '0000:86:00.0', '0000:86:00.1'];
export const T4_FUNCTIONS = ['0000:18:00.0', '0000:3b:00.0', '0000:86:00.0', '0000:af:00.0'];

/** A running libvirt domain (status XML under /run/libvirt/qemu) with the given PCI hostdevs. */
export function runningDomainXml(name: string, addrs: string[]): string {
  const hostdevs = addrs
    .map((a) => {
      const m = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(a)!;
      return `      <hostdev mode='subsystem' type='pci' managed='yes'>\n        <driver name='vfio'/>\n        <source><address domain='0x${m[1]}' bus='0x${m[2]}' slot='0x${m[3]}' function='0x${m[4]}'/></source>\n        <alias name='hostdev0'/>\n      </hostdev>`;
    })
    .join('\n');
  return `<domstatus state='running' reason='booted' pid='51234'>\n  <domain type='kvm' id='3'>\n    <name>${name}</name>\n    <devices>\n${hostdevs}\n    </devices>\n  </domain>\n</domstatus>\n`;
}

/**
 * TU102 [GeForce RTX 2080 Ti Rev. A] 10de:1e07 with its HD audio 10de:10f7, USB 3.1 host 10de:1ad6 and
 * USB Type-C UCSI 10de:1ad7 (pciutils pci.ids), all in IOMMU group 70, each on its host driver.
 */
const turingFn = (f: number, device: string, cls: string, driver: string) => ({
  address: `0000:65:00.${f}`,
  path: ['pci0000:64', '0000:64:00.0'],
  vendor: '0x10de',
  device,
  subsystem_vendor: '0x10de',
  subsystem_device: '0x12fa',
  class: cls,
  driver,
  iommu_group: 70,
  numa_node: 0,
});
export const TURING_USB_C = {
  name: 'rtx2080ti',
  summary: 'one RTX 2080 Ti with VGA, audio, USB and UCSI functions',
  pci: [turingFn(0, '0x1e07', '0x030000', 'nvidia'), turingFn(1, '0x10f7', '0x040300', 'snd_hda_intel'), turingFn(2, '0x1ad6', '0x0c0330', 'xhci_hcd'), turingFn(3, '0x1ad7', '0x0c8000', 'nvidia-gpu')],
  pci_drivers: ['vfio-pci'],
};
