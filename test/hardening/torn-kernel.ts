/**
 * The simulator does the kernel's work inside the process that writes to sysfs, in several file-system
 * steps. A kill -9 at a random moment can therefore stop the *simulated kernel* half-way: a device
 * directory without its /sys/bus/mdev/devices link, an available_instances cut short, a driver link
 * without its back-link. A real kernel never shows that: a sysfs store completes or fails as a whole,
 * whatever happens to the writer. Before judging vgpuctl after a random kill, these helpers put the
 * simulated kernel back into a state a real one could be in (the half-done store taken as not done, or
 * for a driver binding as done when the device's own `driver` link already says so) and count what they
 * had to repair. They never touch /etc, /run or /var: vgpuctl's own files are judged as the kill left them.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { HostRoot } from '../../src/host/host-root.js';
import { isUuid } from '../../src/host/identifiers.js';
import { recomputeAllCapacity } from '../../src/simulator/kernel.js';

const lexists = (p: string) =>
  fs.lstat(p).then(
    () => true,
    () => false,
  );
const resolves = (p: string) =>
  fs.stat(p).then(
    () => true,
    () => false,
  );
const readlink = (p: string) => fs.readlink(p).catch(() => null);

/** Repairs half-made or half-removed mdevs and stale capacity; returns what it repaired. */
export async function settleTornMdevs(host: HostRoot): Promise<string[]> {
  const repaired: string[] = [];
  const bus = host.path('/sys/bus/mdev/devices');
  // A device is whole when its bus link resolves to a directory that has its mdev_type link.
  for (const parent of await fs.readdir(host.path('/sys/class/mdev_bus')).catch(() => [] as string[])) {
    const dir = await fs.realpath(host.path(`/sys/class/mdev_bus/${parent}`)).catch(() => null);
    if (dir === null) continue;
    for (const uuid of (await fs.readdir(dir).catch(() => [] as string[])).filter(isUuid)) {
      const devDir = path.join(dir, uuid);
      const whole = (await fs.realpath(path.join(bus, uuid)).catch(() => null)) === devDir && (await resolves(path.join(devDir, 'mdev_type')));
      if (whole) continue;
      const group = await readlink(path.join(devDir, 'iommu_group'));
      if (group !== null) {
        const g = path.basename(group);
        await fs.rm(host.path(`/sys/kernel/iommu_groups/${g}`), { recursive: true, force: true });
        await fs.rm(host.path(`/dev/vfio/${g}`), { force: true });
      }
      await fs.rm(devDir, { recursive: true, force: true });
      repaired.push(`half-made or half-removed mdev ${uuid}`);
    }
  }
  // Links left pointing at nothing: the bus, the vendor driver, the types' devices/, the IOMMU groups.
  const dangling = async (dir: string, what: string): Promise<void> => {
    for (const name of (await fs.readdir(dir).catch(() => [] as string[])).filter(isUuid)) {
      const p = path.join(dir, name);
      if ((await readlink(p)) !== null && !(await resolves(p))) {
        await fs.rm(p, { force: true });
        repaired.push(`dangling ${what} link ${name}`);
      }
    }
  };
  await dangling(bus, 'bus');
  for (const drv of await fs.readdir(host.path('/sys/bus/mdev/drivers')).catch(() => [] as string[])) await dangling(host.path(`/sys/bus/mdev/drivers/${drv}`), 'driver');
  for (const parent of await fs.readdir(host.path('/sys/class/mdev_bus')).catch(() => [] as string[])) {
    const types = host.path(`/sys/class/mdev_bus/${parent}/mdev_supported_types`);
    for (const t of await fs.readdir(types).catch(() => [] as string[])) await dangling(path.join(types, t, 'devices'), 'type');
  }
  for (const g of await fs.readdir(host.path('/sys/kernel/iommu_groups')).catch(() => [] as string[])) {
    const devices = host.path(`/sys/kernel/iommu_groups/${g}/devices`);
    const names = await fs.readdir(devices).catch(() => [] as string[]);
    if (names.length > 0 && names.every(isUuid)) {
      const alive = await Promise.all(names.map((n) => resolves(path.join(devices, n))));
      if (!alive.some(Boolean)) {
        await fs.rm(host.path(`/sys/kernel/iommu_groups/${g}`), { recursive: true, force: true });
        await fs.rm(host.path(`/dev/vfio/${g}`), { force: true });
        repaired.push(`IOMMU group ${g} of a vanished mdev`);
      }
    }
  }
  // available_instances: cut short while rewritten, or not yet rewritten after the device came or went.
  const counters = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name === 'available_instances') counters.set(p, await fs.readFile(p, 'utf8'));
    }
  };
  await walk(host.path('/sys/devices'));
  for (const [p, v] of counters) if (!/^\d+\n$/.test(v)) await fs.writeFile(p, '0\n');
  await recomputeAllCapacity(host);
  for (const [p, v] of counters) if ((await fs.readFile(p, 'utf8')) !== v) repaired.push(`stale ${path.relative(host.root, p)}`);
  return repaired;
}

/**
 * Repairs a PCI driver binding the kill cut half-way: the device's `driver` link is the truth; the
 * driver's back-link, the parked or registered mdev types of an nvidia GPU, its mdev_bus link and the
 * group's /dev/vfio node are made to agree with it; a driver_override cut short reads as "(null)".
 */
export async function settleTornPci(host: HostRoot, addresses: string[]): Promise<string[]> {
  const repaired: string[] = [];
  const drivers = host.path('/sys/bus/pci/drivers');
  const groups = new Set<string>();
  for (const addr of addresses) {
    const devLink = host.path(`/sys/bus/pci/devices/${addr}`);
    const dev = await fs.realpath(devLink);
    const drvLink = await readlink(path.join(dev, 'driver'));
    const drv = drvLink === null ? null : path.basename(drvLink);
    for (const d of await fs.readdir(drivers)) {
      const back = path.join(drivers, d, addr);
      const has = await lexists(back);
      if (d === drv && !has) {
        await fs.symlink(path.relative(path.dirname(back), dev), back);
        repaired.push(`back-link of ${addr} in ${d}`);
      } else if (d !== drv && has) {
        await fs.rm(back, { force: true });
        repaired.push(`stale back-link of ${addr} in ${d}`);
      }
    }
    const types = path.join(dev, 'mdev_supported_types');
    const parked = path.join(dev, '.sim-parked-mdev_supported_types');
    const bus = host.path(`/sys/class/mdev_bus/${addr}`);
    if (drv === 'nvidia') {
      if ((await lexists(parked)) && !(await lexists(types))) {
        await fs.rename(parked, types);
        repaired.push(`mdev types of ${addr} still parked`);
      }
      if ((await lexists(types)) && !(await lexists(bus))) {
        await fs.symlink(path.relative(path.dirname(bus), dev), bus);
        repaired.push(`mdev_bus link of ${addr} missing`);
      }
    } else {
      if ((await lexists(types)) && !(await lexists(parked))) {
        await fs.rename(types, parked);
        repaired.push(`mdev types of ${addr} not parked`);
      }
      if (await lexists(bus)) {
        await fs.rm(bus, { force: true });
        repaired.push(`stale mdev_bus link of ${addr}`);
      }
    }
    const override = path.join(dev, 'driver_override');
    if ((await fs.readFile(override, 'utf8').catch(() => '(null)\n')) === '') {
      await fs.writeFile(override, '(null)\n');
      repaired.push(`driver_override of ${addr} cut short`);
    }
    const g = await readlink(path.join(dev, 'iommu_group'));
    if (g !== null) groups.add(path.basename(g));
  }
  for (const g of groups) {
    const members = await fs.readdir(host.path(`/sys/kernel/iommu_groups/${g}/devices`));
    const onVfio = await Promise.all(members.map(async (m) => path.basename((await readlink(host.path(`/sys/bus/pci/devices/${m}/driver`))) ?? '') === 'vfio-pci'));
    const node = host.path(`/dev/vfio/${g}`);
    if (onVfio.some(Boolean) && !(await lexists(node))) {
      await fs.mkdir(path.dirname(node), { recursive: true });
      await fs.writeFile(node, '', { mode: 0o600 });
      repaired.push(`/dev/vfio/${g} missing`);
    } else if (!onVfio.some(Boolean) && (await lexists(node))) {
      await fs.rm(node, { force: true });
      repaired.push(`/dev/vfio/${g} stale`);
    }
  }
  return repaired;
}
