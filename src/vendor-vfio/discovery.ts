/**
 * What a vendor-VFIO host carries: the SR-IOV virtual functions with NVIDIA's `nvidia/` directory, grouped
 * by physical GPU, the vGPU type each VF holds, what each VF can still take, vgpuctl's own definitions
 * (mdevctl cannot hold these vGPUs) and which VMs use which VF.
 */
import path from 'node:path';
import { v5 as uuidv5 } from 'uuid';
import type { Catalogue } from '../catalogue/catalogue.js';
import type { HostRoot } from '../host/host-root.js';
import { discoverPci, type PciFunction } from '../host/pci.js';
import { isQemu, listProcesses } from '../host/processes.js';
import { parseTypeName, type ParsedProfile } from '../host/type-name.js';
import { scanDomains } from '../libvirt/domain-scan.js';
import { parseCreatableVgpuTypes, parseCurrentVgpuType, typeIdOf, type CreatableType } from './creatable.js';
import { readVendorDefinitions, type VendorDefinition } from './state.js';

/** Namespace of the stable handles of vendor vGPUs: handle = UUIDv5(VF address, namespace). */
export const VENDOR_HANDLE_NAMESPACE = '3f0c8a52-5d1e-4b7a-9c2e-6a1d4e8b7f90';
export const vfHandle = (vf: string): string => uuidv5(vf, VENDOR_HANDLE_NAMESPACE);

export const currentTypePath = (vf: string): string => `/sys/bus/pci/devices/${vf}/nvidia/current_vgpu_type`;
export const creatablePath = (vf: string): string => `/sys/bus/pci/devices/${vf}/nvidia/creatable_vgpu_types`;

export interface VendorVf {
  address: string;
  pf: string;
  /** Host path of the VF directory. */
  sysfsPath: string;
  iommuGroup: number | null;
  driver: string | null;
  /** What the driver says can be created on this VF now (empty when it is busy or the GPU is full). */
  creatable: CreatableType[];
  /** Numeric id of the VF's vGPU, 0 when none. */
  current: number;
}

export interface VendorGpu {
  pf: string;
  deviceId: string;
  board: string | null;
  vfs: VendorVf[];
}

export interface VfUsers {
  running: string[];
  inactiveDomains: string[];
  /** The VM to show in `list`: a running one first. */
  vm: string | null;
}

export interface VendorState {
  host: HostRoot;
  gpus: VendorGpu[];
  vfs: VendorVf[];
  definitions: VendorDefinition[];
  definitionProblems: string[];
  /** The state file as it is (null when absent), for undo. */
  stateContent: string | null;
  users: Map<string, VfUsers>;
  /** Type id → driver name, from every VF's table (a busy VF's own type is named by the others). */
  names: Map<number, string>;
}

export function vfOf(vs: VendorState, address: string): VendorVf | undefined {
  return vs.vfs.find((v) => v.address === address);
}

export function gpuOfVf(vs: VendorState, address: string): VendorGpu | undefined {
  return vs.gpus.find((g) => g.vfs.some((v) => v.address === address));
}

/** The profile of a type id: the driver's name, else the definitions, else the catalogue. */
export function profileOfId(vs: VendorState, catalogue: Catalogue, id: number): ParsedProfile | null {
  const name = vs.names.get(id);
  if (name) return parseTypeName(name);
  const def = vs.definitions.find((d) => d.type === typeIdOf(id) && d.profile);
  if (def?.profile) return parseTypeName(def.profile);
  const cat = catalogue.profileByTypeId(typeIdOf(id));
  return cat ? parseTypeName(cat.profile.name) : null;
}

async function readVf(host: HostRoot, f: PciFunction): Promise<VendorVf> {
  const dir = host.path(f.sysfsPath);
  const [creatable, current] = await Promise.all([
    host.readAttr(path.join(dir, 'nvidia', 'creatable_vgpu_types')),
    host.readAttr(path.join(dir, 'nvidia', 'current_vgpu_type')),
  ]);
  return {
    address: f.address,
    pf: f.physfn ?? f.address,
    sysfsPath: f.sysfsPath,
    iommuGroup: f.iommuGroup,
    driver: f.driver,
    creatable: parseCreatableVgpuTypes(creatable ?? ''),
    current: parseCurrentVgpuType(current),
  };
}

/** Vendor-VFIO GPUs and their VFs, from sysfs only. */
export async function discoverVendorGpus(host: HostRoot, catalogue: Catalogue, pci?: Map<string, PciFunction>): Promise<VendorGpu[]> {
  const all = pci ?? (await discoverPci(host));
  const vfFns = [...all.values()].filter((f) => f.nvidiaVgpuInterface);
  const vfs = await Promise.all(vfFns.map((f) => readVf(host, f)));
  const byPf = new Map<string, VendorGpu>();
  for (const vf of vfs) {
    let g = byPf.get(vf.pf);
    if (!g) {
      const pfFn = all.get(vf.pf);
      const deviceId = pfFn?.deviceId ?? '';
      g = { pf: vf.pf, deviceId, board: catalogue.boardForDeviceId(deviceId)?.board ?? null, vfs: [] };
      byPf.set(vf.pf, g);
    }
    g.vfs.push(vf);
  }
  const gpus = [...byPf.values()].sort((a, b) => (a.pf < b.pf ? -1 : 1));
  for (const g of gpus) {
    // virtfn order is the kernel's; addresses sort the same way for NVIDIA's contiguous VFs.
    g.vfs.sort((a, b) => (a.address < b.address ? -1 : 1));
    if (!g.board) g.board = g.vfs.flatMap((v) => v.creatable).find((t) => t.profile)?.profile?.board ?? null;
  }
  return gpus;
}

const SHORT = (a: string) => a.replace(/^0000:/, '');

/** Which VMs use which VF: libvirt PCI hostdevs (running and defined domains) and qemu command lines. */
export async function findVfUsers(host: HostRoot, vfs: string[]): Promise<Map<string, VfUsers>> {
  const [domains, procs] = await Promise.all([scanDomains(host), listProcesses(host)]);
  const out = new Map<string, VfUsers>();
  for (const vf of vfs) {
    const running = new Set<string>();
    const inactive = new Set<string>();
    let vm: string | null = null;
    for (const d of domains) {
      if (!d.pciAddresses.includes(vf)) continue;
      if (d.running) {
        running.add(`domain ${d.name}`);
        vm ??= d.name;
      } else inactive.add(d.name);
    }
    const pattern = new RegExp(`(?:host=|"host"\\s*:\\s*"|/sys/bus/pci/devices/)(?:0000:)?${SHORT(vf).replace(/[.]/g, '\\.')}(?![0-9a-f])`, 'i');
    for (const p of procs.filter(isQemu)) {
      if (!p.argv.some((a) => pattern.test(a))) continue;
      const nameArg = p.argv.indexOf('-name');
      const raw = nameArg >= 0 ? p.argv[nameArg + 1] ?? null : null;
      const name = raw === null ? null : (/(?:^|,)guest=([^,]+)/.exec(raw)?.[1] ?? raw.split(',')[0] ?? null);
      running.add(name ? `qemu ${name} (pid ${p.pid})` : `qemu pid ${p.pid}`);
      vm ??= name ?? `qemu[${p.pid}]`;
    }
    const runningNames = new Set(domains.filter((d) => d.running && d.pciAddresses.includes(vf)).map((d) => d.name));
    const inactiveDomains = [...inactive].filter((n) => !runningNames.has(n));
    vm ??= inactiveDomains[0] ?? null;
    out.set(vf, { running: [...running], inactiveDomains, vm });
  }
  return out;
}

export async function readVendorState(host: HostRoot, catalogue: Catalogue, pci?: Map<string, PciFunction>): Promise<VendorState> {
  const [gpus, defs] = await Promise.all([discoverVendorGpus(host, catalogue, pci), readVendorDefinitions(host)]);
  const vfs = gpus.flatMap((g) => g.vfs);
  const users = await findVfUsers(host, [...new Set([...vfs.map((v) => v.address), ...defs.definitions.map((d) => d.vf)])]);
  const names = new Map<number, string>();
  for (const v of vfs) for (const t of v.creatable) if (!names.has(t.id)) names.set(t.id, t.name);
  return { host, gpus, vfs, definitions: defs.definitions, definitionProblems: defs.problems, stateContent: defs.content, users, names };
}

// Cheap enough for every listing, so it lives apart from this module (and its uuid): presence.ts.
export { hasVendorVfio } from './presence.js';
