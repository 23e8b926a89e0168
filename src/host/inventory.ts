/**
 * The read-only views behind `gpus`, `types` and `list`: host state joined with the catalogue, as plain
 * records whose field names are the JSON output contract.
 */
import type { Catalogue } from '../catalogue/catalogue.js';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import { scanDomains, type DomainRef } from '../libvirt/domain-scan.js';
import { readDefinitions, type Definition } from './definitions.js';
import type { HostRoot } from './host-root.js';
import { discoverActiveMdevs, discoverParents, readTypeProfiles, type ActiveMdev, type MdevParent, type MdevType } from './mdev.js';
import { discoverPci, isNvidiaGpu, type PciFunction } from './pci.js';
import { isQemu, listProcesses, mdevUuidsInQemuArgs } from './processes.js';
import { vendorActiveByPf, vendorDevicesFor, vendorTypesFor } from '../vendor-vfio/records.js';

export type GpuMode = 'mdev' | 'vendor-vfio' | 'passthrough' | 'host' | 'sriov-disabled';

export interface GpuRecord {
  address: string;
  board: string | null;
  product: string | null;
  vendor_id: string;
  device_id: string;
  driver: string | null;
  mode: GpuMode;
  physical_function: string | null;
  virtual_functions: string[];
  iommu_group: number | null;
  numa_node: number | null;
  vgpus_active: number;
}

export interface TypeRecord {
  parent: string;
  type: string;
  name: string | null;
  profile: string | null;
  series: string | null;
  framebuffer_mib: number | null;
  max_instances: number | null;
  available_instances: number;
  device_api: string;
  description: string | null;
  num_heads: number | null;
  max_resolution: string | null;
}

export interface DeviceRecord {
  uuid: string;
  parent: string;
  type: string;
  profile: string | null;
  active: boolean;
  defined: boolean;
  autostart: boolean;
  attrs: Array<Record<string, string>>;
  vm: string | null;
  vm_running: boolean;
}

export interface Warning {
  code: string;
  message: string;
}

/** Profile, size and capacity of a type: sysfs first, catalogue where sysfs says nothing. */
export function typeRecord(t: MdevType, catalogue: Catalogue, warnings: Warning[]): TypeRecord {
  const entry = t.profile ? catalogue.profile(t.profile.profile) : undefined;
  const d = t.parsedDescription;
  if (entry && t.profile) {
    const p = entry.profile;
    if (d.maxInstance !== null && d.maxInstance !== p.max_per_gpu) {
      warnings.push({
        code: 'catalogue-mismatch',
        message: `${t.parent} ${t.id} (${p.name}): the driver allows ${d.maxInstance} per GPU, the catalogue says ${p.max_per_gpu}; using the driver's value`,
      });
    }
    if (p.type_id !== undefined && p.type_id !== t.id) {
      warnings.push({
        code: 'catalogue-type-id',
        message: `${t.parent}: ${p.name} is ${t.id} on this driver, the catalogue knows it as ${p.type_id}; using ${t.id}`,
      });
    }
  }
  return {
    parent: t.parent,
    type: t.id,
    name: t.name,
    profile: t.profile?.profile ?? null,
    series: t.profile?.series ?? null,
    framebuffer_mib: d.framebufferMib ?? entry?.profile.framebuffer_mib ?? null,
    max_instances: d.maxInstance ?? entry?.profile.max_per_gpu ?? null,
    available_instances: t.availableInstances,
    device_api: t.deviceApi,
    description: t.description,
    num_heads: d.numHeads,
    max_resolution: d.maxResolution ? `${d.maxResolution.width}x${d.maxResolution.height}` : null,
  };
}

export interface TypesQuery {
  parent?: string;
  profile?: string;
  availableOnly?: boolean;
}

export async function listTypes(
  host: HostRoot,
  catalogue: Catalogue,
  query: TypesQuery = {},
): Promise<{ types: TypeRecord[]; warnings: Warning[] }> {
  const parents = await discoverParents(host, query.parent);
  const vendor = await vendorTypesFor(host, catalogue, query.parent); // vendor-VFIO VFs (src/vendor-vfio)
  if (query.parent !== undefined && parents.length === 0 && vendor.length === 0) throw await unknownParent(host, query.parent);
  const warnings: Warning[] = [];
  let types = [...parents.flatMap((p) => p.types.map((t) => typeRecord(t, catalogue, warnings))), ...vendor];
  if (query.profile !== undefined) {
    const wanted = query.profile.toUpperCase();
    types = types.filter((t) => t.profile?.toUpperCase() === wanted || t.name?.toUpperCase() === wanted);
  }
  if (query.availableOnly) types = types.filter((t) => t.available_instances > 0);
  return { types, warnings: dedupe(warnings) };
}

const dedupe = (ws: Warning[]): Warning[] => [...new Map(ws.map((w) => [w.message, w])).values()];

/** A not-found error that lists what does exist (and the near miss, like mdevctl's "Did you mean"). */
export async function unknownParent(host: HostRoot, parent: string): Promise<VgpuctlError> {
  const names = (await discoverParents(host)).map((p) => p.name);
  const near = names.find((n) => n.toLowerCase() === parent.toLowerCase());
  const hint = near
    ? ` Did you mean ${near}?`
    : names.length > 0
      ? ` mdev parents on this host: ${names.slice(0, 12).join(', ')}${names.length > 12 ? ', …' : ''}.`
      : ' This host has no mdev parents: is the NVIDIA vGPU manager loaded (and SR-IOV enabled on Ampere and later)?';
  return new VgpuctlError('not-found', `${parent} is not an mdev parent.${hint}`);
}

function gpuMode(f: PciFunction, vfs: PciFunction[], mdevParents: Set<string>): GpuMode {
  if (mdevParents.has(f.address) || vfs.some((v) => mdevParents.has(v.address))) return 'mdev';
  if (vfs.some((v) => v.nvidiaVgpuInterface)) return 'vendor-vfio';
  if (f.driver === 'vfio-pci' || f.driver === 'pci-stub') return 'passthrough';
  if ((f.sriovTotalvfs ?? 0) > 0 && (f.sriovNumvfs ?? 0) === 0 && f.driver === 'nvidia') return 'sriov-disabled';
  return 'host';
}

export async function listGpus(
  host: HostRoot,
  catalogue: Catalogue,
  options: { includeVfs?: boolean } = {},
): Promise<{ gpus: GpuRecord[]; warnings: Warning[] }> {
  const [pci, parents, active, vendorActive] = await Promise.all([discoverPci(host), discoverParents(host), discoverActiveMdevs(host), vendorActiveByPf(host, catalogue)]);
  const warnings: Warning[] = [];
  const parentNames = new Set(parents.map((p) => p.name));
  const activeByParent = new Map<string, number>();
  for (const d of active) activeByParent.set(d.parent, (activeByParent.get(d.parent) ?? 0) + 1);
  const boardFromTypes = (addresses: string[]): string | null => {
    for (const p of parents) {
      if (!addresses.includes(p.name)) continue;
      const named = p.types.find((t) => t.profile !== null);
      if (named?.profile) return named.profile.board;
    }
    return null;
  };

  const gpus: GpuRecord[] = [];
  for (const f of [...pci.values()].filter(isNvidiaGpu).sort((a, b) => (a.address < b.address ? -1 : 1))) {
    if (f.physfn !== null && !options.includeVfs) continue;
    const vfs = f.virtfns.map((a) => pci.get(a)).filter((v): v is PciFunction => v !== undefined);
    const fromCatalogue = catalogue.boardForDeviceId(f.deviceId);
    const fromTypes = boardFromTypes([f.address, ...f.virtfns]);
    if (fromTypes && fromCatalogue && fromTypes.toUpperCase() !== fromCatalogue.board.toUpperCase()) {
      warnings.push({
        code: 'catalogue-mismatch',
        message: `${f.address}: the driver's types name board ${fromTypes}, the catalogue maps device ${f.deviceId} to ${fromCatalogue.board}; using ${fromTypes}`,
      });
    }
    const board = fromTypes ?? fromCatalogue?.board ?? null;
    gpus.push({
      address: f.address,
      board,
      product: (board ? catalogue.board(board)?.product : undefined) ?? fromCatalogue?.product ?? null,
      vendor_id: f.vendorId,
      device_id: f.deviceId,
      driver: f.driver,
      mode: gpuMode(f, vfs, parentNames),
      physical_function: f.physfn,
      virtual_functions: f.virtfns,
      iommu_group: f.iommuGroup,
      numa_node: f.numaNode,
      vgpus_active: [f.address, ...f.virtfns].reduce((n, a) => n + (activeByParent.get(a) ?? 0), 0) + (vendorActive.get(f.address) ?? 0),
    });
  }
  return { gpus, warnings };
}

export interface DeviceQuery {
  which: 'active' | 'defined' | 'all';
  parent?: string;
  uuid?: string;
  /** Only the vendor-VFIO vGPU on this VF. */
  vf?: string;
}

export interface DeviceUsers {
  /** Domains naming each UUID, running ones first. */
  domains: Map<string, DomainRef[]>;
  /** qemu processes naming each UUID. */
  qemu: Map<string, Array<{ pid: number; name: string | null }>>;
}

/** Which VMs (libvirt domains, bare qemu processes) name which mdev UUIDs. */
export async function findDeviceUsers(host: HostRoot): Promise<DeviceUsers> {
  return host.memo('device-users', () => readDeviceUsers(host));
}

async function readDeviceUsers(host: HostRoot): Promise<DeviceUsers> {
  const [domains, procs] = await Promise.all([scanDomains(host), listProcesses(host)]);
  const byUuid = new Map<string, DomainRef[]>();
  for (const d of domains) {
    for (const u of d.mdevUuids) {
      const list = byUuid.get(u) ?? [];
      if (!list.some((x) => x.name === d.name && x.running === d.running)) list.push(d);
      byUuid.set(u, list);
    }
  }
  for (const list of byUuid.values()) list.sort((a, b) => Number(b.running) - Number(a.running));
  const qemu = new Map<string, Array<{ pid: number; name: string | null }>>();
  for (const p of procs.filter(isQemu)) {
    const nameArg = p.argv.indexOf('-name');
    const raw = nameArg >= 0 ? p.argv[nameArg + 1] ?? null : null;
    const name = raw === null ? null : (/(?:^|,)guest=([^,]+)/.exec(raw)?.[1] ?? raw.split(',')[0] ?? null);
    for (const u of mdevUuidsInQemuArgs(p.argv)) qemu.set(u, [...(qemu.get(u) ?? []), { pid: p.pid, name }]);
  }
  return { domains: byUuid, qemu };
}

export async function listDevices(
  host: HostRoot,
  catalogue: Catalogue,
  query: DeviceQuery,
): Promise<{ devices: DeviceRecord[]; warnings: Warning[] }> {
  const [active, defs, users] = await Promise.all([discoverActiveMdevs(host), readDefinitions(host), findDeviceUsers(host)]);
  // The types of the listed devices only: a listing of 160 definitions reads 160 types, not every type of
  // every parent (2,080 on a 160-VF host).
  const profiles = await readTypeProfiles(host, [
    ...(query.which !== 'defined' ? active : []),
    ...(query.which !== 'active' ? defs.definitions : []),
  ]);
  const warnings: Warning[] = defs.problems.map((p) => ({ code: 'bad-definition', message: `${p.file}: ${p.problem}` }));
  const defKey = (parent: string, uuid: string) => `${parent}/${uuid}`;
  const defs_ = new Map<string, Definition>(defs.definitions.map((d) => [defKey(d.parent, d.uuid), d]));
  const activeByKey = new Map(active.map((a) => [`${defKey(a.parent, a.uuid)}/${a.type}`, a]));

  const records = new Map<string, DeviceRecord>();
  const record = (uuid: string, parent: string, type: string, a: ActiveMdev | null, d: Definition | undefined): DeviceRecord => {
    const domainUsers = users.domains.get(uuid) ?? [];
    const qemuUsers = users.qemu.get(uuid) ?? [];
    const vm = domainUsers[0]?.name ?? qemuUsers[0]?.name ?? (qemuUsers[0] ? `qemu[${qemuUsers[0].pid}]` : null);
    return {
      uuid,
      parent,
      type,
      // A definition whose parent is gone still names a type id; the catalogue says what it was.
      profile: profiles.get(`${parent}/${type}`)?.profile ?? catalogue.profileByTypeId(type)?.profile.name ?? null,
      active: a !== null,
      defined: d !== undefined,
      autostart: d?.start === 'auto',
      attrs: (d?.attrs ?? []).map(([k, v]) => ({ [k]: v })),
      vm,
      vm_running: domainUsers.some((x) => x.running) || qemuUsers.length > 0,
    };
  };

  if (query.which !== 'defined') {
    for (const a of active) records.set(defKey(a.parent, a.uuid), record(a.uuid, a.parent, a.type, a, defs_.get(defKey(a.parent, a.uuid))));
  }
  if (query.which !== 'active') {
    for (const d of defs.definitions) {
      const key = defKey(d.parent, d.uuid);
      if (records.has(key)) continue;
      const a = activeByKey.get(`${key}/${d.type}`) ?? null;
      records.set(key, record(d.uuid, d.parent, d.type, a, d));
    }
  }
  // vendor-VFIO vGPUs (src/vendor-vfio): identified by VF, with a stable handle in `uuid`.
  for (const v of await vendorDevicesFor(host, catalogue, query.which)) records.set(defKey(v.parent, v.uuid), v);
  let devices = [...records.values()];
  if (query.parent !== undefined) devices = devices.filter((d) => d.parent === query.parent);
  if (query.uuid !== undefined) devices = devices.filter((d) => d.uuid === query.uuid);
  if (query.vf !== undefined) devices = devices.filter((d) => 'vf' in d && d.vf === query.vf);
  devices.sort((a, b) => (a.parent === b.parent ? (a.uuid < b.uuid ? -1 : 1) : a.parent < b.parent ? -1 : 1));
  return { devices, warnings };
}

export function findType(parents: MdevParent[], parent: string, id: string): MdevType | undefined {
  return parents.find((p) => p.name === parent)?.types.find((t) => t.id === id);
}
