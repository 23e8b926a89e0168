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

/**
 * Types a caller reads again and again (the simulated kernel, after every create of one command), keyed by
 * the type directory's real path: what never changes while the directory exists (the driver registers a
 * type once: name, description, device_api, and what they parse to), and available_instances as the
 * caller last read or wrote it. Only a caller that is the one writer of available_instances for as long as
 * it keeps the map (the simulator's writer, for one command) may use it; it sets `available` after each
 * write.
 */
export interface KnownType {
  name: string | null;
  description: string | null;
  deviceApi: string | null;
  profile: ParsedProfile | null;
  parsedDescription: TypeDescription;
  available: number | null;
}
export type KnownTypes = Map<string, KnownType>;

/**
 * Parsed names and descriptions by their text: every VF of a GPU (every card of a model) registers the same
 * dozen types, so a 160-parent host has 2,080 types but 13 distinct texts. The parsed values are shared
 * and never changed by their users.
 */
const parsedNames = new Map<string, ParsedProfile | null>();
const parsedDescriptions = new Map<string, TypeDescription>();
const MAX_PARSED = 4096;
function parsedOnce<T>(cache: Map<string, T>, text: string | null, parse: (t: string | null) => T): T {
  if (text === null) return parse(null);
  let v = cache.get(text);
  if (v === undefined) {
    v = parse(text);
    if (cache.size < MAX_PARSED) cache.set(text, v);
  }
  return v;
}

async function readType(host: HostRoot, parent: string, typesDir: string, id: string, known?: KnownTypes): Promise<MdevType | null> {
  // Plain string joins and synchronous reads: this runs for every type of every parent.
  const dir = `${typesDir}/${id}`;
  let s = known?.get(dir);
  const available = s !== undefined && s.available !== null ? s.available : host.readIntAttrSync(`${dir}/available_instances`);
  if (s !== undefined) s.available = available;
  else {
    const deviceApi = host.readAttrSync(`${dir}/device_api`);
    const name = host.readAttrSync(`${dir}/name`);
    const description = host.readAttrSync(`${dir}/description`);
    // mdevctl trims and joins description lines with ", "; so do we, so that both tools print the same.
    const desc = description === null ? null : description.trim().replace(/\n/g, ', ');
    const trimmedName = name === null ? null : name.trim();
    s = {
      name: trimmedName,
      description: desc,
      deviceApi,
      profile: parsedOnce(parsedNames, trimmedName, parseTypeName),
      parsedDescription: parsedOnce(parsedDescriptions, desc, parseTypeDescription),
      available,
    };
    if (deviceApi !== null) known?.set(dir, s);
  }
  if (available === null || s.deviceApi === null) {
    // Not a type directory (the kernel puts only type dirs here; a stray file is ignored like mdevctl does).
    if (!(await host.exists(`${dir}/create`))) return null;
  }
  return {
    parent,
    id,
    name: s.name,
    description: s.description,
    deviceApi: (s.deviceApi ?? '').trim(),
    availableInstances: available ?? 0,
    profile: s.profile,
    parsedDescription: s.parsedDescription,
    sysfsPath: host.hostPathOf(dir),
  };
}

async function readParent(host: HostRoot, name: string, known?: KnownTypes): Promise<MdevParent> {
  const dir = await host.realpath(path.join(host.path(HOST_PATHS.mdevBus), name));
  const typesDir = path.join(dir, 'mdev_supported_types');
  const types: MdevType[] = [];
  for (const id of await host.list(typesDir)) {
    const t = await readType(host, name, typesDir, id, known);
    if (t !== null) types.push(t);
  }
  return {
    name,
    sysfsPath: host.hostPathOf(dir),
    pciAddress: isPciAddress(name) ? name : null,
    types,
  };
}

/**
 * The profile of each given type, keyed `parent/type`, from the type's name alone: what a listing of
 * devices needs of their types (a definition's profile), instead of every attribute of every type of
 * every parent (2,080 types on a 160-VF host). Parents or types that are not there are left out.
 */
export async function readTypeProfiles(host: HostRoot, wanted: Array<{ parent: string; type: string }>): Promise<Map<string, ParsedProfile | null>> {
  const out = new Map<string, ParsedProfile | null>();
  const parentDirs = new Map<string, string | null>();
  const plain = (s: string) => s !== '' && s !== '.' && s !== '..' && !s.includes('/') && !s.includes('\0');
  for (const { parent, type } of wanted) {
    const key = `${parent}/${type}`;
    if (out.has(key) || !plain(parent) || !plain(type)) continue;
    let dir = parentDirs.get(parent);
    if (dir === undefined) {
      // Through the kernel's relative link: the OS resolves it inside the root without a realpath walk.
      const link = path.join(host.path(HOST_PATHS.mdevBus), parent);
      dir = (await host.linkIsRelative(link)) ? link : (await host.exists(link)) ? await host.realpath(link) : null;
      parentDirs.set(parent, dir);
    }
    if (dir === null) continue;
    const name = host.readAttrSync(`${dir}/mdev_supported_types/${type}/name`);
    if (name !== null) out.set(key, parsedOnce(parsedNames, name.trim(), parseTypeName));
  }
  return out;
}

/** Lets timers and other work run (host reads are synchronous system calls, see host-root.ts). */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** mdev parents sorted by name; types sorted by id as mdevctl sorts them (plain string order). */
export async function discoverParents(host: HostRoot, only?: string): Promise<MdevParent[]> {
  return host.memo(`mdev-parents ${only ?? '*'}`, async () => {
    let names = await host.list(host.path(HOST_PATHS.mdevBus));
    if (only !== undefined) names = names.filter((n) => n === only);
    return readParents(host, names);
  });
}

/**
 * The named parents (names under /sys/class/mdev_bus), in the order given, one parent per event-loop turn;
 * with `known`, types seen before are not read again (see KnownTypes).
 */
export async function readParents(host: HostRoot, names: string[], known?: KnownTypes): Promise<MdevParent[]> {
  const parents: MdevParent[] = [];
  for (const n of names) {
    const p = await readParent(host, n, known);
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
  return host.memo('active-mdevs', async () => {
    const names = (await host.list(host.path(HOST_PATHS.mdevDevices))).filter((n) => isUuid(n));
    const devices = await Promise.all(names.map((n) => readActive(host, n)));
    return devices.filter((d): d is ActiveMdev => d !== null).sort((a, b) => (a.uuid < b.uuid ? -1 : 1));
  });
}
