/**
 * The kernel's mdev semantics, applied to a host tree: what a write to a type's `create` or a device's
 * `remove` does on a real host (mdev core plus NVIDIA's vGPU manager), including its refusals and their
 * errno. All state lives in the tree in the kernel's layout, so any tree that copies a real host works.
 *
 * Capacity (available_instances) comes from the tree too: NVIDIA types carry framebuffer and
 * max_instance in `description`; one time-sliced type per physical GPU; MIG-backed types share the GPU's
 * seven compute slices; one vGPU per SR-IOV VF, VFs grouped by `physfn`. Types without those fields
 * (the kernel's sample drivers) just count down and up.
 */
import { promises as fs, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { HOST_PATHS, type HostRoot } from '../host/host-root.js';
import { isUuid } from '../host/identifiers.js';
import { discoverActiveMdevs, discoverParents, readParents, type MdevParent, type MdevType, type KnownTypes } from '../host/mdev.js';
import { errnoError } from '../host/sysfs-writer.js';
import { TreeWriter } from './tree.js';
import { additionalFit, shapeOf } from '../rules/gpu-capacity.js';

const NVIDIA_MDEV_DRIVER = 'nvidia-vgpu-vfio';

const isNvidiaType = (t: MdevType): boolean => t.profile !== null && t.parsedDescription.maxInstance !== null;

/** Host path of the physical GPU a parent belongs to: the PF for a VF, the parent itself otherwise. */
async function physicalKey(host: HostRoot, parent: MdevParent): Promise<string> {
  const physfn = path.join(host.path(parent.sysfsPath), 'physfn');
  if (await host.exists(physfn)) return host.hostPathOf(await host.realpath(physfn));
  return parent.sysfsPath;
}

async function nextIommuGroup(host: HostRoot): Promise<number> {
  const groups = (await host.list(host.path(HOST_PATHS.iommuGroups))).filter((g) => /^\d+$/.test(g)).map(Number);
  return groups.length === 0 ? 0 : Math.max(...groups) + 1;
}

/** /sys/devices/... → the relative-depth-free host path of /sys (always /sys here). */
const SYS = '/sys';

/**
 * Applies `echo <uuid> > <typeDir>/create`. typeDir is a host path. `known`: the types this simulator
 * instance has read and written (see KnownTypes), so that a create does not read its GPU's types again.
 */
export async function simulateCreate(host: HostRoot, typeDirAsWritten: string, written: string, known?: KnownTypes): Promise<string> {
  const uuid = written.trim().toLowerCase();
  // mdev core: the buffer must be a UUID string (36 chars, optional newline) or it is EINVAL.
  if (!isUuid(uuid) || written.replace(/\n$/, '').length !== 36) {
    throw errnoError('EINVAL', `invalid UUID written to ${typeDirAsWritten}/create`);
  }
  if (!(await host.exists(host.path(typeDirAsWritten)))) throw errnoError('ENOENT', `${typeDirAsWritten} does not exist`);
  // The writer may have gone through /sys/class/mdev_bus links; the kernel works on the device itself.
  const realType = await host.realpath(host.path(typeDirAsWritten));
  const typeDir = host.hostPathOf(realType);
  const parentDir = path.posix.dirname(path.posix.dirname(typeDir));
  const typeId = path.posix.basename(typeDir);

  if (await host.exists(path.join(host.path(HOST_PATHS.mdevDevices), uuid))) {
    throw errnoError('EEXIST', `an mdev with UUID ${uuid} already exists`);
  }
  const available = await host.readIntAttr(path.join(realType, 'available_instances'));
  if (available === null || available <= 0) {
    // mdev core returns EUSERS when no instance is left.
    throw errnoError('EUSERS', `no available instances of ${typeId}`);
  }

  const tree = new TreeWriter(host);
  const devDir = `${parentDir}/${uuid}`;
  const group = await nextIommuGroup(host);
  await tree.mkdir(devDir);
  await tree.link(`${devDir}/mdev_type`, typeDir);
  await tree.file(`${devDir}/remove`, '', 0o200);
  await tree.file(`${devDir}/uevent`, `MDEV_TYPE=${typeId}\n`);
  await tree.link(`${devDir}/subsystem`, `${SYS}/bus/mdev`);
  await tree.link(`${devDir}/iommu_group`, `${SYS}/kernel/iommu_groups/${group}`);
  await tree.link(`${SYS}/kernel/iommu_groups/${group}/devices/${uuid}`, devDir);
  await tree.file(`${SYS}/kernel/iommu_groups/${group}/type`, 'DMA\n');
  await tree.link(`${HOST_PATHS.mdevDevices}/${uuid}`, devDir);
  await tree.link(`${typeDir}/devices/${uuid}`, devDir);
  await tree.file(`/dev/vfio/${group}`, '', 0o600);
  const typeName = await host.readAttr(path.join(realType, 'name'));
  if (typeName !== null && /^(GRID|NVIDIA) /.test(typeName)) {
    await tree.link(`${devDir}/driver`, `${SYS}/bus/mdev/drivers/${NVIDIA_MDEV_DRIVER}`);
    await tree.mkdir(`${SYS}/bus/mdev/drivers/${NVIDIA_MDEV_DRIVER}`);
    await tree.link(`${SYS}/bus/mdev/drivers/${NVIDIA_MDEV_DRIVER}/${uuid}`, devDir);
  }
  await recomputeCapacity(host, parentDir, { typeDir, delta: -1 }, known);
  return uuid;
}

const POOL_FILE = '.vgpuctl-sim-pool';

/**
 * The kernel updates an attribute in one step; a killed simulator must not leave it empty or half
 * written (crash tests kill vgpuctl at random points, including inside the simulated kernel).
 */
export async function writeAttrAtomically(file: string, content: string): Promise<void> {
  const tmp = `${path.dirname(file)}/.${path.basename(file)}.${process.pid}.tmp`;
  // Synchronous like the tree's other writes (tree.ts): a recompute writes up to a GPU's worth of these.
  writeFileSync(tmp, content);
  renameSync(tmp, file);
}

/**
 * Drivers without NVIDIA's description fields (the kernel's mtty, mdpy, mbochs) share one pool per parent:
 * each type takes a number of units (mtty-2 two ports, mbochs-medium four memory units) and every type's
 * available_instances is what is left divided by its units. The units are read off the tree the first
 * time a parent changes — the lightest type takes one — and kept beside the types in a file mdevctl and the
 * kernel layout ignore. Returns null when the tree does not say enough (then types just count).
 */
async function sharedPool(
  host: HostRoot,
  parent: MdevParent,
  devicesAfter: Array<{ type: string }>,
  change: { typeDir: string; delta: number },
): Promise<Map<string, number> | null> {
  const plain = parent.types.filter((t) => !isNvidiaType(t));
  if (plain.length === 0 || plain.length !== parent.types.length) return null;
  const file = path.join(host.path(parent.sysfsPath), 'mdev_supported_types', POOL_FILE);
  let pool: { total: number; weights: Record<string, number> } | null = null;
  try {
    pool = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch {
    // First change on this parent: the values in the tree are those before it.
    const remaining = Math.max(...plain.map((t) => t.availableInstances));
    if (remaining <= 0) return null;
    const weights: Record<string, number> = {};
    for (const t of plain) {
      if (t.availableInstances <= 0) return null;
      weights[t.id] = Math.max(1, Math.round(remaining / t.availableInstances));
    }
    const changedType = path.posix.basename(change.typeDir);
    // Devices present before the change: after a create, all but the new one; after a remove, plus the removed one.
    const before = [...devicesAfter.map((d) => d.type)];
    if (change.delta < 0) before.splice(before.indexOf(changedType), 1);
    else before.push(changedType);
    if (before.some((t) => weights[t] === undefined)) return null;
    pool = { total: remaining + before.reduce((n, t) => n + weights[t]!, 0), weights };
    await writeAttrAtomically(file, JSON.stringify(pool));
  }
  if (!pool || typeof pool.total !== 'number') return null;
  const used = devicesAfter.reduce((n, d) => n + (pool!.weights[d.type] ?? 0), 0);
  const left = Math.max(0, pool.total - used);
  return new Map(plain.map((t) => [t.id, Math.floor(left / (pool!.weights[t.id] ?? left + 1))]));
}

/** Processes whose command line names the device: the kernel refuses to remove an open device. */
async function deviceHeldBy(host: HostRoot, uuid: string): Promise<number | null> {
  const procDir = host.path(HOST_PATHS.proc);
  for (const pid of (await host.list(procDir)).filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = await fs.readFile(path.join(procDir, pid, 'cmdline'), 'utf8');
      if (cmdline.includes(`/sys/bus/mdev/devices/${uuid}`)) return Number(pid);
    } catch {
      /* gone */
    }
  }
  return null;
}

/** Applies `echo 1 > <devDir>/remove`. devDir is a host path. */
export async function simulateRemove(host: HostRoot, devDirAsWritten: string, written: string, known?: KnownTypes): Promise<string> {
  const uuid = path.posix.basename(devDirAsWritten);
  if (!/^\s*1\s*$/.test(written)) throw errnoError('EINVAL', `only "1" may be written to ${devDirAsWritten}/remove`);
  if (!(await host.exists(path.join(host.path(devDirAsWritten), 'mdev_type')))) throw errnoError('ENODEV', `${devDirAsWritten} is not an mdev`);
  const realDev = await host.realpath(host.path(devDirAsWritten));
  const devDir = host.hostPathOf(realDev);
  const holder = await deviceHeldBy(host, uuid);
  if (holder !== null) throw errnoError('EBUSY', `mdev ${uuid} is open by process ${holder}`);

  const typeDir = host.hostPathOf(await host.realpath(path.join(realDev, 'mdev_type')));
  const group = await host.linkBasename(path.join(realDev, 'iommu_group'));
  const parentDir = path.posix.dirname(devDir);
  const tree = new TreeWriter(host);
  await tree.remove(`${typeDir}/devices/${uuid}`);
  await tree.remove(`${HOST_PATHS.mdevDevices}/${uuid}`);
  await tree.remove(`${SYS}/bus/mdev/drivers/${NVIDIA_MDEV_DRIVER}/${uuid}`);
  if (group !== null) {
    await tree.remove(`${SYS}/kernel/iommu_groups/${group}`);
    await tree.remove(`/dev/vfio/${group}`);
  }
  await tree.remove(devDir);
  await recomputeCapacity(host, parentDir, { typeDir, delta: +1 }, known);
  return uuid;
}

/** The mdev_bus name of the device at `dir` (a host path) when it is an mdev parent, else null. */
async function parentNameOf(host: HostRoot, dir: string): Promise<string | null> {
  const name = path.posix.basename(dir);
  const link = path.join(host.path(HOST_PATHS.mdevBus), name);
  if (!(await host.exists(link))) return null;
  return (await host.realpath(link)) === host.path(dir) ? name : null;
}

/** The same for a function named by a virtfnN link: the kernel names the class link after the device. */
async function vfParentName(host: HostRoot, virtfnLink: string): Promise<string | null> {
  const name = await host.linkBasename(virtfnLink);
  if (name === null) return null;
  return (await host.exists(path.join(host.path(HOST_PATHS.mdevBus), name))) ? name : null;
}

/**
 * The parents on the physical GPU of `parentDir` (a host path): the PF and those of its VFs (virtfnN links)
 * that are mdev parents, or the parent alone. Reads only that GPU, so that a create costs the same on a
 * host of one GPU or of sixteen. Null when the tree does not say (no class link, VFs without virtfn links).
 */
async function gpuGroupNames(host: HostRoot, parentDir: string): Promise<string[] | null> {
  const self = await parentNameOf(host, parentDir);
  if (self === null) return null;
  const physfn = path.join(host.path(parentDir), 'physfn');
  const pf = (await host.exists(physfn)) ? await host.realpath(physfn) : host.path(parentDir);
  const members = new Set<string>();
  const pfName = await parentNameOf(host, host.hostPathOf(pf));
  if (pfName !== null) members.add(pfName);
  for (const entry of (await host.list(pf)).filter((e) => /^virtfn\d+$/.test(e))) {
    const vf = await vfParentName(host, path.join(pf, entry));
    if (vf !== null) members.add(vf);
  }
  if (!members.has(self)) return null;
  return [...members].sort();
}

/** Active mdevs under the given parents (device directories below the parent with a bus link), as on the bus. */
async function activeOnParents(host: HostRoot, parents: MdevParent[]): Promise<Array<{ uuid: string; parent: string; type: string }>> {
  const bus = host.path(HOST_PATHS.mdevDevices);
  const out: Array<{ uuid: string; parent: string; type: string }> = [];
  for (const p of parents) {
    const dir = host.path(p.sysfsPath);
    for (const uuid of (await host.list(dir)).filter(isUuid)) {
      const typeLink = path.join(dir, uuid, 'mdev_type');
      if ((await host.linkBasename(typeLink)) === null || !(await host.exists(path.join(bus, uuid)))) continue;
      out.push({ uuid, parent: path.basename(dir), type: path.basename(await host.realpath(typeLink)) });
    }
  }
  return out.sort((a, b) => (a.uuid < b.uuid ? -1 : 1));
}

/**
 * Rewrites available_instances on every parent that shares the physical GPU of `parentDir`.
 * `change` says which type just gained or lost a device, for types that only count.
 */
export async function recomputeCapacity(
  host: HostRoot,
  parentDir: string,
  change: { typeDir: string; delta: number } | null,
  known?: KnownTypes,
): Promise<void> {
  const names = await gpuGroupNames(host, parentDir);
  if (names !== null) {
    const group = await readParents(host, names, known);
    return recomputeGroup(host, group, await activeOnParents(host, group), change, known);
  }
  // A tree that does not link its GPU's functions both ways: look at every parent, as the kernel's
  // bookkeeping would.
  const parents = await discoverParents(host);
  const changed = parents.find((p) => p.sysfsPath === parentDir);
  if (!changed) return;
  const key = await physicalKey(host, changed);
  const keys = await Promise.all(parents.map((p) => physicalKey(host, p)));
  const group = parents.filter((_, i) => keys[i] === key);
  const groupNames = new Set(group.map((p) => p.name));
  const active = (await discoverActiveMdevs(host)).filter((d) => groupNames.has(d.parent));
  return recomputeGroup(host, group, active, change, known);
}

/** available_instances of every type of the parents of one physical GPU, given the devices on it. */
async function recomputeGroup(
  host: HostRoot,
  group: MdevParent[],
  onGpu: Array<{ parent: string; type: string }>,
  change: { typeDir: string; delta: number } | null,
  known?: KnownTypes,
): Promise<void> {
  const typeOf = (parent: string, id: string) => group.find((p) => p.name === parent)?.types.find((t) => t.id === id);
  const devicesWithType = onGpu.map((d) => ({ device: d, type: typeOf(d.parent, d.type) }));

  // NVIDIA's older drivers, which the simulator models: one time-sliced type per physical GPU.
  const existing = devicesWithType.filter((d) => d.type !== undefined && isNvidiaType(d.type)).map((d) => shapeOf(d.type!));

  for (const parent of group) {
    const isVf = await host.exists(path.join(host.path(parent.sysfsPath), 'physfn'));
    const vfBusy = isVf && onGpu.some((d) => d.parent === parent.name);
    const pooled = change === null ? null : await sharedPool(host, parent, onGpu.filter((d) => d.parent === parent.name), change);
    for (const t of parent.types) {
      let available: number;
      if (!isNvidiaType(t)) {
        if (pooled?.has(t.id)) available = pooled.get(t.id)!;
        else if (change === null || t.sysfsPath !== change.typeDir) continue;
        else available = Math.max(0, t.availableInstances + change.delta);
      } else if (vfBusy) {
        available = 0;
      } else {
        available = additionalFit(existing, shapeOf(t), 'same-type');
        if (isVf) available = Math.min(available, 1);
      }
      // Only what changed is written: after the first vGPU on a GPU, a create changes one VF's types.
      if (available === t.availableInstances) continue;
      const dir = host.path(t.sysfsPath);
      await writeAttrAtomically(path.join(dir, 'available_instances'), `${available}\n`);
      const k = known?.get(dir);
      if (k !== undefined) k.available = available;
    }
  }
}

/** Sets available_instances of every NVIDIA type from the tree's current devices (after a layout). */
export async function recomputeAllCapacity(host: HostRoot): Promise<void> {
  // One read of every parent and device, then one recompute per physical GPU.
  const parents = await discoverParents(host);
  const active = await discoverActiveMdevs(host);
  const groups = new Map<string, MdevParent[]>();
  for (const parent of parents) {
    const key = await physicalKey(host, parent);
    groups.set(key, [...(groups.get(key) ?? []), parent]);
  }
  for (const group of groups.values()) {
    const names = new Set(group.map((p) => p.name));
    await recomputeGroup(host, group, active.filter((d) => names.has(d.parent)), null);
  }
}

export interface SettleResult {
  created: Array<{ uuid: string; type: string }>;
  removed: string[];
  refused: Array<{ file: string; written: string; errno: string; message: string }>;
}

/**
 * Applies writes another program made in the tree (mdevctl in a chroot writes a UUID into `create` or
 * `1` into `remove`): each pending write is carried out or refused, and the attribute is emptied again.
 */
export async function settle(host: HostRoot, known: KnownTypes = new Map()): Promise<SettleResult> {
  const result: SettleResult = { created: [], removed: [], refused: [] };
  const parents = await readParents(host, await host.list(host.path(HOST_PATHS.mdevBus)), known);
  for (const parent of parents) {
    for (const t of parent.types) {
      const file = path.join(host.path(t.sysfsPath), 'create');
      const written = await host.readAttr(file);
      if (!written) continue;
      await fs.writeFile(file, '');
      try {
        const uuid = await simulateCreate(host, t.sysfsPath, written, known);
        result.created.push({ uuid, type: t.id });
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        result.refused.push({ file: host.hostPathOf(file), written, errno: err.code ?? 'EIO', message: err.message });
      }
    }
    const parentReal = host.path(parent.sysfsPath);
    for (const entry of (await host.list(parentReal)).filter(isUuid)) {
      const file = path.join(parentReal, entry, 'remove');
      const written = await host.readAttr(file);
      if (!written) continue;
      await fs.writeFile(file, '');
      try {
        result.removed.push(await simulateRemove(host, `${parent.sysfsPath}/${entry}`, written, known));
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        result.refused.push({ file: host.hostPathOf(file), written, errno: err.code ?? 'EIO', message: err.message });
      }
    }
  }
  return result;
}
