/**
 * Mediated-device state as the kernel lays it out: parents under /sys/class/mdev_bus, their
 * mdev_supported_types, and active devices under /sys/bus/mdev/devices. Any driver's parents count
 * (NVIDIA, the kernel's mtty/mdpy/mbochs samples, s390 ap/ccw); parents need not be PCI devices.
 */
import path from 'node:path';
import { HOST_PATHS, type HostRoot } from './host-root.js';
import { isPciAddress, isUuid } from './identifiers.js';
import { parseTypeDescription, type TypeDescription } from './type-description.js';
import { parseTypeName, type ParsedProfile } from './type-name.js';

export interface MdevType {
  parent: string;
  /** Directory name under mdev_supported_types (nvidia-286, mtty-1). */
  id: string;
  name: string | null;
  description: string | null;
  deviceApi: string;
  availableInstances: number;
  profile: ParsedProfile | null;
  parsedDescription: TypeDescription;
  /** Host path of the type directory. */
  sysfsPath: string;
}

export interface MdevParent {
  /** Name under /sys/class/mdev_bus: a PCI address for GPUs, a device name otherwise. */
  name: string;
  /** Host path of the parent device directory (links resolved). */
  sysfsPath: string;
  pciAddress: string | null;
  types: MdevType[];
}

export interface ActiveMdev {
  uuid: string;
  parent: string;
  type: string;
  sysfsPath: string;
  iommuGroup: number | null;
  /** Vendor driver bound to the mdev (nvidia-vgpu-vfio, vfio_mdev), null when unbound. */
  driver: string | null;
}

async function readType(host: HostRoot, parent: string, typesDir: string, id: string): Promise<MdevType | null> {
  const dir = path.join(typesDir, id);
  const attr = (n: string) => path.join(dir, n);
  const [available, deviceApi, name, description] = await Promise.all([
    host.readIntAttr(attr('available_instances')),
    host.readAttr(attr('device_api')),
    host.readAttr(attr('name')),
    host.readAttr(attr('description')),
  ]);
  if (available === null || deviceApi === null) {
    // Not a type directory (the kernel puts only type dirs here; a stray file is ignored like mdevctl does).
    if (!(await host.exists(attr('create')))) return null;
  }
  // mdevctl trims and joins description lines with ", "; so do we, so that both tools print the same.
  const desc = description === null ? null : description.trim().replace(/\n/g, ', ');
  const trimmedName = name === null ? null : name.trim();
  return {
    parent,
    id,
    name: trimmedName,
    description: desc,
    deviceApi: (deviceApi ?? '').trim(),
    availableInstances: available ?? 0,
    profile: parseTypeName(trimmedName),
    parsedDescription: parseTypeDescription(desc),
    sysfsPath: host.hostPathOf(dir),
  };
}

async function readParent(host: HostRoot, name: string): Promise<MdevParent> {
  const dir = await host.realpath(path.join(host.path(HOST_PATHS.mdevBus), name));
  const typesDir = path.join(dir, 'mdev_supported_types');
  const ids = await host.list(typesDir);
  const types = (await Promise.all(ids.map((id) => readType(host, name, typesDir, id)))).filter(
    (t): t is MdevType => t !== null,
  );
  return {
    name,
    sysfsPath: host.hostPathOf(dir),
    pciAddress: isPciAddress(name) ? name : null,
    types,
  };
}

/** Lets timers and other work run (host reads are synchronous system calls, see host-root.ts). */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** mdev parents sorted by name; types sorted by id as mdevctl sorts them (plain string order). */
export async function discoverParents(host: HostRoot, only?: string): Promise<MdevParent[]> {
  let names = await host.list(host.path(HOST_PATHS.mdevBus));
  if (only !== undefined) names = names.filter((n) => n === only);
  return readParents(host, names);
}

/** The named parents (names under /sys/class/mdev_bus), in the order given, one parent per event-loop turn. */
export async function readParents(host: HostRoot, names: string[]): Promise<MdevParent[]> {
  const parents: MdevParent[] = [];
  for (const n of names) {
    const p = await readParent(host, n);
    p.types.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    parents.push(p);
    await yieldToEventLoop();
  }
  return parents;
}

async function readActive(host: HostRoot, uuid: string): Promise<ActiveMdev | null> {
  const link = path.join(host.path(HOST_PATHS.mdevDevices), uuid);
  let dir: string;
  try {
    dir = await host.realpath(link);
  } catch {
    return null;
  }
  if (!(await host.exists(dir))) return null; // dangling link: the device is gone
  // Like mdevctl: the parent is the directory holding the device, the type is where mdev_type points.
  const [typeTarget, group, driver] = await Promise.all([
    host.linkBasename(path.join(dir, 'mdev_type')),
    host.linkBasename(path.join(dir, 'iommu_group')),
    host.linkBasename(path.join(dir, 'driver')),
  ]);
  if (typeTarget === null) return null;
  const typeDir = await host.realpath(path.join(dir, 'mdev_type'));
  return {
    uuid,
    parent: path.basename(path.dirname(dir)),
    type: path.basename(typeDir),
    sysfsPath: host.hostPathOf(dir),
    iommuGroup: group === null ? null : Number(group),
    driver,
  };
}

/** Active mdevs sorted by UUID. */
export async function discoverActiveMdevs(host: HostRoot): Promise<ActiveMdev[]> {
  const names = (await host.list(host.path(HOST_PATHS.mdevDevices))).filter((n) => isUuid(n));
  const devices = await Promise.all(names.map((n) => readActive(host, n)));
  return devices.filter((d): d is ActiveMdev => d !== null).sort((a, b) => (a.uuid < b.uuid ? -1 : 1));
}
