/**
 * One consistent read of everything the lifecycle rules need: parents and their types grouped by
 * physical GPU, active mdevs, definitions, and who uses which device. Every rule is checked against this
 * snapshot before the first write.
 */
import path from 'node:path';
import { readDefinitions, type Definition, type DefinitionProblem } from '../host/definitions.js';
import type { HostRoot } from '../host/host-root.js';
import { findDeviceUsers, type DeviceUsers } from '../host/inventory.js';
import { discoverActiveMdevs, discoverParents, type ActiveMdev, type MdevParent, type MdevType } from '../host/mdev.js';

export interface PhysicalGpu {
  /** Address of the physical function (or the parent name for non-PCI parents). */
  key: string;
  /** PCI device id of the physical GPU, when it is one. */
  deviceId: string | null;
  parents: MdevParent[];
  /** Parents are SR-IOV virtual functions: one vGPU each. */
  sriov: boolean;
}

export interface HostState {
  host: HostRoot;
  parents: MdevParent[];
  gpus: PhysicalGpu[];
  gpuOfParent: Map<string, PhysicalGpu>;
  active: ActiveMdev[];
  definitions: Definition[];
  definitionProblems: DefinitionProblem[];
  users: DeviceUsers;
}

async function physicalGpuKey(host: HostRoot, parent: MdevParent): Promise<{ key: string; sriov: boolean }> {
  const physfn = await host.linkBasename(path.join(host.path(parent.sysfsPath), 'physfn'));
  return physfn === null ? { key: parent.name, sriov: false } : { key: physfn, sriov: true };
}

export async function readHostState(host: HostRoot): Promise<HostState> {
  const [parents, active, defs, users] = await Promise.all([
    discoverParents(host),
    discoverActiveMdevs(host),
    readDefinitions(host),
    findDeviceUsers(host),
  ]);
  const keys = await Promise.all(parents.map((p) => physicalGpuKey(host, p)));
  const byKey = new Map<string, PhysicalGpu>();
  const gpuOfParent = new Map<string, PhysicalGpu>();
  for (const [i, p] of parents.entries()) {
    const { key, sriov } = keys[i]!;
    let gpu = byKey.get(key);
    if (!gpu) {
      const device = await host.readAttr(host.path(`/sys/bus/pci/devices/${key}/device`));
      gpu = { key, deviceId: device?.trim().toLowerCase() ?? null, parents: [], sriov };
      byKey.set(key, gpu);
    }
    gpu.parents.push(p);
    gpuOfParent.set(p.name, gpu);
  }
  return {
    host,
    parents,
    gpus: [...byKey.values()],
    gpuOfParent,
    active,
    definitions: defs.definitions,
    definitionProblems: defs.problems,
    users,
  };
}

export function findParent(state: HostState, name: string): MdevParent | undefined {
  return state.parents.find((p) => p.name === name);
}

export function findTypeOn(state: HostState, parent: string, typeId: string): MdevType | undefined {
  return findParent(state, parent)?.types.find((t) => t.id === typeId);
}

export function typeOfActive(state: HostState, d: ActiveMdev): MdevType | undefined {
  return findTypeOn(state, d.parent, d.type);
}

/** Active devices on the physical GPU that holds `parent`. */
export function activeOnGpu(state: HostState, gpu: PhysicalGpu): ActiveMdev[] {
  const names = new Set(gpu.parents.map((p) => p.name));
  return state.active.filter((d) => names.has(d.parent));
}
