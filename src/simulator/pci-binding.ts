/**
 * The kernel's PCI driver binding, applied to a host tree: driver_override, a driver's bind/unbind, and
 * drivers_probe (bind to the override, else to the driver that claims the device class). Used by the
 * simulator for `vgpuctl pci detach/attach`.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { HOST_PATHS, type HostRoot } from '../host/host-root.js';
import { errnoError } from '../host/sysfs-writer.js';
import { TreeWriter } from './tree.js';

const devPath = (addr: string) => `${HOST_PATHS.pciDevices}/${addr}`;

async function deviceDir(host: HostRoot, addr: string): Promise<string> {
  const link = host.path(devPath(addr.trim()));
  if (!(await host.exists(link))) throw errnoError('ENODEV', `no PCI device ${addr.trim()}`);
  return host.hostPathOf(await host.realpath(link));
}

/** The driver a device would bind to without an override: what the host's loaded drivers claim. */
async function nativeDriver(host: HostRoot, dir: string): Promise<string | null> {
  const cls = ((await host.readAttr(host.path(`${dir}/class`))) ?? '').trim();
  const vendor = ((await host.readAttr(host.path(`${dir}/vendor`))) ?? '').trim();
  const loaded = new Set(await host.list(host.path(HOST_PATHS.pciDrivers)));
  const candidates = cls.startsWith('0x03') && vendor === '0x10de' ? ['nvidia', 'nouveau'] : cls.startsWith('0x0403') ? ['snd_hda_intel'] : cls.startsWith('0x0c03') ? ['xhci_hcd'] : cls.startsWith('0x0c80') ? ['nvidia-gpu'] : [];
  return candidates.find((d) => loaded.has(d)) ?? null;
}

/** A qemu process holding the device (host=ADDR or sysfsdev=/sys/bus/pci/devices/ADDR). */
async function heldBy(host: HostRoot, addr: string): Promise<number | null> {
  const short = addr.replace(/^0000:/, '');
  const procDir = host.path(HOST_PATHS.proc);
  for (const pid of (await host.list(procDir)).filter((p) => /^\d+$/.test(p))) {
    const cmdline = await fs.readFile(path.join(procDir, pid, 'cmdline'), 'utf8').catch(() => '');
    if (new RegExp(`host=(0000:)?${short.replace('.', '\\.')}\\b`).test(cmdline) || cmdline.includes(`/sys/bus/pci/devices/${addr}`)) return Number(pid);
  }
  return null;
}

/**
 * The nvidia driver registers a GPU as an mdev parent when it binds and unregisters it when it lets go:
 * its mdev_supported_types and /sys/class/mdev_bus link exist only while nvidia holds the device. The
 * simulator keeps the types (with their counters) aside while another driver has the GPU.
 */
const PARKED_TYPES = '.sim-parked-mdev_supported_types';

async function bind(host: HostRoot, dir: string, addr: string, driver: string): Promise<void> {
  const tree = new TreeWriter(host);
  const drvDir = `${HOST_PATHS.pciDrivers}/${driver}`;
  if (!(await host.exists(host.path(drvDir)))) throw errnoError('ENODEV', `driver ${driver} is not loaded`);
  await tree.link(`${dir}/driver`, drvDir);
  await tree.link(`${drvDir}/${addr}`, dir);
  const group = await host.linkBasename(host.path(`${dir}/iommu_group`));
  if (driver === 'vfio-pci' && group !== null) await tree.file(`/dev/vfio/${group}`, '', 0o600);
  if (driver === 'nvidia' && (await host.exists(host.path(`${dir}/${PARKED_TYPES}`)))) {
    await fs.rename(host.path(`${dir}/${PARKED_TYPES}`), host.path(`${dir}/mdev_supported_types`));
    await tree.link(`${HOST_PATHS.mdevBus}/${addr}`, dir);
  }
}

async function unbind(host: HostRoot, dir: string, addr: string, driver: string): Promise<void> {
  const current = await host.linkBasename(host.path(`${dir}/driver`));
  if (current !== driver) throw errnoError('ENODEV', `${addr} is not bound to ${driver}`);
  const holder = driver === 'vfio-pci' ? await heldBy(host, addr) : null;
  if (holder !== null) throw errnoError('EBUSY', `${addr} is in use by process ${holder}`);
  const tree = new TreeWriter(host);
  if (driver === 'nvidia' && (await host.exists(host.path(`${dir}/mdev_supported_types`)))) {
    // The kernel would tear the mdevs down (and block while a VM holds one); vgpuctl never asks for that.
    const active = await mdevsOn(host, dir);
    if (active.length > 0) throw errnoError('EBUSY', `${addr} still carries mdevs ${active.join(', ')}`);
    await fs.rename(host.path(`${dir}/mdev_supported_types`), host.path(`${dir}/${PARKED_TYPES}`));
    await tree.remove(`${HOST_PATHS.mdevBus}/${addr}`);
  }
  await tree.remove(`${dir}/driver`);
  await tree.remove(`${HOST_PATHS.pciDrivers}/${driver}/${addr}`);
  const group = await host.linkBasename(host.path(`${dir}/iommu_group`));
  if (driver === 'vfio-pci' && group !== null) {
    // The group's /dev/vfio node goes when no member is on vfio-pci any more.
    const members = await host.list(host.path(`/sys/kernel/iommu_groups/${group}/devices`));
    const stillVfio = await Promise.all(members.map(async (m) => (await host.linkBasename(host.path(`${devPath(m)}/driver`))) === 'vfio-pci'));
    if (!stillVfio.some(Boolean)) await tree.remove(`/dev/vfio/${group}`);
  }
}

/** UUIDs of the active mdevs whose parent is the device at `dir` (host path of the real directory). */
async function mdevsOn(host: HostRoot, dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const uuid of await host.list(host.path(HOST_PATHS.mdevDevices))) {
    const real = await host.realpath(host.path(`${HOST_PATHS.mdevDevices}/${uuid}`)).catch(() => null);
    if (real !== null && path.posix.dirname(host.hostPathOf(real)) === dir) out.push(uuid);
  }
  return out;
}

/** Applies a write to a PCI binding attribute; returns false when the path is not one. */
export async function simulatePciWrite(host: HostRoot, hostPath: string, data: string): Promise<boolean> {
  const name = path.posix.basename(hostPath);
  const dir = path.posix.dirname(hostPath);
  if (name === 'driver_override' && (await host.exists(host.path(`${dir}/vendor`)))) {
    const value = data.trim();
    await fs.writeFile(host.path(hostPath), `${value === '' ? '(null)' : value}\n`);
    return true;
  }
  if (hostPath === `${HOST_PATHS.pciDrivers.replace(/\/drivers$/, '')}/drivers_probe`) {
    const addr = data.trim();
    const d = await deviceDir(host, addr);
    if ((await host.linkBasename(host.path(`${d}/driver`))) !== null) return true;
    const override = ((await host.readAttr(host.path(`${d}/driver_override`))) ?? '').trim();
    const target = override !== '' && override !== '(null)' ? override : await nativeDriver(host, d);
    if (target !== null && (await host.exists(host.path(`${HOST_PATHS.pciDrivers}/${target}`)))) await bind(host, d, addr, target);
    return true;
  }
  // `echo ADDR > /sys/bus/pci/devices/ADDR/driver/unbind`: the unbind file of whatever driver holds it.
  if (name === 'unbind' && path.posix.basename(dir) === 'driver' && (await host.exists(host.path(`${path.posix.dirname(dir)}/vendor`)))) {
    const current = await host.linkBasename(host.path(dir));
    if (current === null) throw errnoError('ENOENT', `${path.posix.dirname(dir)} is not bound to a driver`);
    return simulatePciWrite(host, `${HOST_PATHS.pciDrivers}/${current}/unbind`, data);
  }
  const m = /^\/sys\/bus\/pci\/drivers\/([^/]+)\/(bind|unbind)$/.exec(hostPath);
  if (m) {
    const [, driver, op] = m;
    const addr = data.trim();
    const d = await deviceDir(host, addr);
    if (op === 'unbind') await unbind(host, d, addr, driver!);
    else {
      if ((await host.linkBasename(host.path(`${d}/driver`))) !== null) throw errnoError('EBUSY', `${addr} is already bound`);
      const override = ((await host.readAttr(host.path(`${d}/driver_override`))) ?? '').trim();
      if (override !== '' && override !== '(null)' && override !== driver) throw errnoError('ENODEV', `${addr} has driver_override ${override}`);
      await bind(host, d, addr, driver!);
    }
    return true;
  }
  return false;
}
