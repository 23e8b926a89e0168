/**
 * Lays out a host tree in the kernel's layout from a fixture spec (`vgpuctl sim init`). Active mdevs of
 * the spec are made through the simulator's own create semantics, so available_instances and links are
 * exactly what a sequence of real creates would leave.
 */
import { promises as fs, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import { HOST_PATHS, HostRoot } from '../host/host-root.js';
import { packageFile } from '../host/package-files.js';
import { fixtureSpecSchema, type FixtureSpec, type PciDeviceSpec, type TypeSpec } from './fixture-spec.js';
import { parseTypeDescription } from '../host/type-description.js';
import { recomputeAllCapacity, simulateCreate } from './kernel.js';
import { TreeWriter } from './tree.js';
import { layOutVendorVfFiles, recomputeAllVendor, SRIOV_SPEC_FILE, type SimSriovSpec } from './vendor-vfio.js';

/** A vendor-VFIO type set entry (id nvidia-1145, name "NVIDIA L40S-1B") as the driver's table lists it. */
const vendorTypes = (set: TypeSpec[]): Array<{ id: number; name: string }> =>
  set.map((t) => ({ id: Number(/(\d+)$/.exec(t.id)?.[1] ?? 0), name: t.name ?? t.id }));

/** fixtures/ at the package root (found from src/, dist/ and the bundle alike). */
export const FIXTURES_DIR = packageFile(import.meta.url, 'fixtures');

export function listBundledFixtures(): string[] {
  try {
    return readdirSync(FIXTURES_DIR)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.replace(/\.json$/, ''))
      .sort();
  } catch {
    return [];
  }
}

/** Loads a fixture by bundled name (p40-seed004) or by path to a JSON file. */
export function loadFixture(nameOrPath: string): FixtureSpec {
  const file = nameOrPath.endsWith('.json') ? path.resolve(nameOrPath) : path.join(FIXTURES_DIR, `${nameOrPath}.json`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    const known = listBundledFixtures();
    throw new VgpuctlError(
      'not-found',
      `no fixture ${JSON.stringify(nameOrPath)}; bundled fixtures are: ${known.join(', ') || '(none)'}`,
    );
  }
  try {
    return fixtureSpecSchema.parse(JSON.parse(text));
  } catch (e) {
    const why = e instanceof z.ZodError ? e.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') : (e as Error).message;
    throw new VgpuctlError('invalid-input', `fixture ${file} is invalid: ${why}`);
  }
}

const formatPci = (domain: number, bus: number, devfn: number): string =>
  `${domain.toString(16).padStart(4, '0')}:${bus.toString(16).padStart(2, '0')}:${(devfn >> 3)
    .toString(16)
    .padStart(2, '0')}.${(devfn & 7).toString(16)}`;

/** VF addresses from the PF address, offset and stride, as the SR-IOV capability defines them. */
export function virtualFunctionAddresses(pf: string, offset: number, stride: number, count: number): string[] {
  const m = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(pf);
  if (!m) throw new Error(`bad PF address ${pf}`);
  const domain = parseInt(m[1]!, 16);
  const rid = (parseInt(m[2]!, 16) << 8) | (parseInt(m[3]!, 16) << 3) | parseInt(m[4]!, 10);
  return Array.from({ length: count }, (_, i) => {
    const vf = rid + offset + i * stride;
    return formatPci(domain, (vf >> 8) & 0xff, vf & 0xff);
  });
}

class Layout {
  private readonly tree: TreeWriter;
  constructor(
    private readonly host: HostRoot,
    private readonly spec: FixtureSpec,
  ) {
    this.tree = new TreeWriter(host);
  }

  private typeSet(name: string): TypeSpec[] {
    const set = this.spec.type_sets[name];
    if (!set) throw new VgpuctlError('invalid-input', `fixture ${this.spec.name}: unknown type set ${name}`);
    return set;
  }

  private async mdevTypes(devDir: string, parentName: string, setName: string): Promise<void> {
    for (const t of this.typeSet(setName)) {
      const dir = `${devDir}/mdev_supported_types/${t.id}`;
      await this.tree.mkdir(`${dir}/devices`);
      if (t.name !== undefined) await this.tree.file(`${dir}/name`, `${t.name}\n`, 0o444);
      if (t.description !== undefined) await this.tree.file(`${dir}/description`, `${t.description}\n`, 0o444);
      await this.tree.file(`${dir}/device_api`, `${t.device_api}\n`, 0o444);
      const max = parseTypeDescription(t.description).maxInstance;
      await this.tree.file(`${dir}/available_instances`, `${t.available_instances ?? max ?? 1}\n`, 0o444);
      await this.tree.file(`${dir}/create`, '', 0o200);
    }
    await this.tree.link(`${HOST_PATHS.mdevBus}/${parentName}`, devDir);
  }

  private async iommu(devDir: string, name: string, group: number, vfio: boolean): Promise<void> {
    await this.tree.link(`${devDir}/iommu_group`, `/sys/kernel/iommu_groups/${group}`);
    await this.tree.link(`/sys/kernel/iommu_groups/${group}/devices/${name}`, devDir);
    await this.tree.file(`/sys/kernel/iommu_groups/${group}/type`, 'DMA\n');
    if (vfio) await this.tree.file(`/dev/vfio/${group}`, '', 0o600);
  }

  private async driver(devDir: string, address: string, driver: string | null): Promise<void> {
    const drvDir = `${HOST_PATHS.pciDrivers}/${driver ?? ''}`;
    if (driver === null) return;
    for (const f of ['bind', 'unbind', 'new_id', 'remove_id']) await this.tree.file(`${drvDir}/${f}`, '', 0o200);
    await this.tree.link(`${devDir}/driver`, drvDir);
    await this.tree.link(`${drvDir}/${address}`, devDir);
  }

  private async pciFunction(
    parentPath: string,
    f: { address: string; vendor: string; device: string; subVendor: string; subDevice: string; cls: string; driver: string | null; group: number | null; numa: number },
  ): Promise<string> {
    const devDir = `${parentPath}/${f.address}`;
    const attrs: Record<string, string> = {
      vendor: f.vendor,
      device: f.device,
      subsystem_vendor: f.subVendor,
      subsystem_device: f.subDevice,
      class: f.cls,
      numa_node: String(f.numa),
      driver_override: '(null)',
      enable: '1',
    };
    for (const [k, v] of Object.entries(attrs)) await this.tree.file(`${devDir}/${k}`, `${v}\n`);
    for (const k of ['reset', 'remove', 'rescan']) await this.tree.file(`${devDir}/${k}`, '', 0o200);
    await this.tree.link(`${HOST_PATHS.pciDevices}/${f.address}`, devDir);
    await this.tree.link(`${devDir}/subsystem`, '/sys/bus/pci');
    await this.driver(devDir, f.address, f.driver);
    if (f.group !== null) await this.iommu(devDir, f.address, f.group, f.driver === 'vfio-pci');
    return devDir;
  }

  private async pci(d: PciDeviceSpec): Promise<void> {
    const parentPath = `/sys/devices/${d.path.join('/')}`;
    const devDir = await this.pciFunction(parentPath, {
      address: d.address,
      vendor: d.vendor,
      device: d.device,
      subVendor: d.subsystem_vendor,
      subDevice: d.subsystem_device,
      cls: d.class,
      driver: d.driver,
      group: d.iommu_group,
      numa: d.numa_node,
    });
    if (d.types !== undefined) await this.mdevTypes(devDir, d.address, d.types);
    if (d.sriov) {
      const s = d.sriov;
      await this.tree.file(`${devDir}/sriov_totalvfs`, `${s.totalvfs}\n`);
      await this.tree.file(`${devDir}/sriov_numvfs`, `${s.numvfs}\n`);
      await this.tree.file(`${devDir}/sriov_offset`, `${s.offset}\n`);
      await this.tree.file(`${devDir}/sriov_stride`, `${s.stride}\n`);
      await this.tree.file(`${devDir}/sriov_vf_device`, `${s.vf_device.slice(2)}\n`);
      const vfs = virtualFunctionAddresses(d.address, s.offset, s.stride, s.numvfs);
      for (const [i, vf] of vfs.entries()) {
        const vfDir = await this.pciFunction(parentPath, {
          address: vf,
          vendor: d.vendor,
          device: s.vf_device,
          subVendor: d.subsystem_vendor,
          subDevice: d.subsystem_device,
          cls: d.class,
          driver: s.vf_driver,
          group: s.vf_iommu_group_base + i,
          numa: d.numa_node,
        });
        await this.tree.link(`${vfDir}/physfn`, devDir);
        await this.tree.link(`${devDir}/virtfn${i}`, vfDir);
        if (s.vf_types !== undefined) await this.mdevTypes(vfDir, vf, s.vf_types);
        if (s.vendor_vfio_types !== undefined) await layOutVendorVfFiles(this.tree, vfDir, vendorTypes(this.typeSet(s.vendor_vfio_types)));
      }
      // vendor-VFIO: what sriov_numvfs needs to make the VFs (the simulator's memory, a hidden file).
      if (s.vendor_vfio_types !== undefined) {
        const spec: SimSriovSpec = {
          parentPath, vendor: d.vendor, vf_device: s.vf_device, subsystem_vendor: d.subsystem_vendor, subsystem_device: d.subsystem_device,
          class: d.class, vf_driver: s.vf_driver, numa_node: d.numa_node, vf_iommu_group_base: s.vf_iommu_group_base, totalvfs: s.totalvfs,
          vf_addresses: virtualFunctionAddresses(d.address, s.offset, s.stride, s.totalvfs), types: vendorTypes(this.typeSet(s.vendor_vfio_types)),
        };
        await this.tree.file(`${devDir}/${SRIOV_SPEC_FILE}`, JSON.stringify(spec));
        if (s.vf_driver !== null) for (const f of ['bind', 'unbind', 'new_id', 'remove_id']) await this.tree.file(`${HOST_PATHS.pciDrivers}/${s.vf_driver}/${f}`, '', 0o200);
      }
    }
  }

  async build(): Promise<void> {
    for (const dir of [
      HOST_PATHS.pciDevices,
      HOST_PATHS.pciDrivers,
      HOST_PATHS.mdevDevices,
      HOST_PATHS.iommuGroups,
      '/sys/bus/mdev/drivers',
      '/etc/mdevctl.d/scripts.d/callouts',
      '/etc/mdevctl.d/scripts.d/notifiers',
      HOST_PATHS.run,
      '/dev/vfio',
    ]) {
      await this.tree.mkdir(dir);
    }
    await this.tree.file('/sys/bus/pci/drivers_probe', '', 0o200);
    for (const d of this.spec.pci_drivers) {
      for (const f of ['bind', 'unbind', 'new_id', 'remove_id']) await this.tree.file(`${HOST_PATHS.pciDrivers}/${d}/${f}`, '', 0o200);
    }
    if (this.spec.pci.some((d) => d.types || d.sriov?.vf_types) || this.spec.virtual_parents.length > 0) {
      await this.tree.mkdir(HOST_PATHS.mdevBus);
    }
    for (const d of this.spec.pci) await this.pci(d);
    for (const v of this.spec.virtual_parents) {
      const devDir = `/sys/devices/${v.path.join('/')}`;
      await this.tree.mkdir(devDir);
      await this.mdevTypes(devDir, v.name, v.types);
    }
    // An IOMMU that is on shows its units under /sys/class/iommu (Intel dmarN, AMD ivhdN).
    if (this.spec.pci.some((d) => d.iommu_group !== null)) {
      const unit = /amd_iommu/.test(this.spec.cmdline) ? 'ivhd0' : 'dmar0';
      await this.tree.mkdir(`/sys/devices/virtual/iommu/${unit}`);
      await this.tree.link(`${HOST_PATHS.iommuClass}/${unit}`, `/sys/devices/virtual/iommu/${unit}`);
    }
    await this.tree.file(HOST_PATHS.procCmdline, `${this.spec.cmdline}\n`, 0o444);
    await this.tree.file(
      HOST_PATHS.procModules,
      this.spec.modules.map((m, i) => `${m} ${16384 * (i + 1)} 0 - Live 0x0000000000000000\n`).join(''),
      0o444,
    );
    for (const p of this.spec.processes) {
      await this.tree.file(`/proc/${p.pid}/cmdline`, p.cmdline.join('\0') + '\0', 0o444);
      await this.tree.file(`/proc/${p.pid}/comm`, `${p.comm}\n`, 0o444);
    }
    for (const [rel, content] of Object.entries(this.spec.files)) await this.tree.file(`/${rel}`, content);
    for (const [rel, target] of Object.entries(this.spec.symlinks)) await this.tree.rawLink(`/${rel}`, target);
    await recomputeAllCapacity(this.host);
    await recomputeAllVendor(this.host);
    for (const m of this.spec.mdevs) {
      const parentLink = path.join(this.host.path(HOST_PATHS.mdevBus), m.parent);
      const parentDir = this.host.hostPathOf(await this.host.realpath(parentLink));
      await simulateCreate(this.host, `${parentDir}/mdev_supported_types/${m.type}`, m.uuid);
    }
  }
}

/** Writes the fixture's host tree into `dir`, which must be empty or absent. */
export async function layOutFixture(spec: FixtureSpec, dir: string): Promise<HostRoot> {
  const host = new HostRoot(dir);
  if (host.isSystemRoot) throw new VgpuctlError('refused', 'refusing to lay out a simulated host over / ; give an empty directory');
  const existing = await fs.readdir(host.root).catch(() => null);
  if (existing !== null && existing.length > 0) {
    throw new VgpuctlError('refused', `${host.root} is not empty; give a new or empty directory for the simulated host`);
  }
  await fs.mkdir(host.root, { recursive: true });
  await new Layout(host, spec).build();
  return host;
}
