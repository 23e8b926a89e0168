/**
 * PCI functions as the kernel shows them under /sys/bus/pci/devices: ids, driver, IOMMU group, NUMA node
 * and SR-IOV relations (physfn, virtfnN, sriov_*). Only what the kernel lays out is read; nothing here
 * knows about fixtures.
 */
import path from 'node:path';
import { HOST_PATHS, type HostRoot } from './host-root.js';

export const NVIDIA_VENDOR = '0x10de';

export interface PciFunction {
  address: string;
  /** Host path of the device directory after resolving links (/sys/devices/pci0000:80/...). */
  sysfsPath: string;
  vendorId: string;
  deviceId: string;
  subsystemVendorId: string | null;
  subsystemDeviceId: string | null;
  /** Class code, e.g. 0x030200 (3D controller) or 0x030000 (VGA). */
  classCode: string;
  driver: string | null;
  driverOverride: string | null;
  iommuGroup: number | null;
  numaNode: number | null;
  /** Address of the physical function when this is an SR-IOV virtual function. */
  physfn: string | null;
  /** Addresses of the virtual functions, in virtfn index order. */
  virtfns: string[];
  sriovTotalvfs: number | null;
  sriovNumvfs: number | null;
  /** The VF carries NVIDIA's vendor vGPU interface (nvidia/creatable_vgpu_types). */
  nvidiaVgpuInterface: boolean;
}

export const isDisplayClass = (classCode: string): boolean => /^0x03[0-9a-f]{4}$/i.test(classCode);
export const isNvidiaGpu = (f: PciFunction): boolean => f.vendorId === NVIDIA_VENDOR && isDisplayClass(f.classCode);

async function readPciFunction(host: HostRoot, address: string): Promise<PciFunction | null> {
  const link = path.join(host.path(HOST_PATHS.pciDevices), address);
  const dir = await host.realpath(link);
  // Plain joins and synchronous reads, in this order (a host has hundreds of PCI functions).
  const attr = (name: string) => `${dir}/${name}`;
  const vendor = host.readAttrSync(attr('vendor'));
  const device = host.readAttrSync(attr('device'));
  const subVendor = host.readAttrSync(attr('subsystem_vendor'));
  const subDevice = host.readAttrSync(attr('subsystem_device'));
  const classCode = host.readAttrSync(attr('class'));
  const driver = await host.linkBasename(attr('driver'));
  const group = await host.linkBasename(attr('iommu_group'));
  const numa = host.readIntAttrSync(attr('numa_node'));
  const physfn = await host.linkBasename(attr('physfn'));
  const total = host.readIntAttrSync(attr('sriov_totalvfs'));
  const num = host.readIntAttrSync(attr('sriov_numvfs'));
  const override = host.readAttrSync(attr('driver_override'));
  const vgpuTypes = await host.exists(attr('nvidia/creatable_vgpu_types'));
  if (vendor === null || device === null || classCode === null) return null; // not a PCI function dir
  // Only an SR-IOV physical function (the one kind with sriov_* attributes) has virtfnN links: listing
  // every function's directory for them was a fifth of a host's PCI read.
  const virtfns = total !== null || num !== null ? await readVirtfns(host, dir) : [];
  return {
    address,
    sysfsPath: host.hostPathOf(dir),
    vendorId: vendor.trim().toLowerCase(),
    deviceId: device.trim().toLowerCase(),
    subsystemVendorId: subVendor?.trim().toLowerCase() ?? null,
    subsystemDeviceId: subDevice?.trim().toLowerCase() ?? null,
    classCode: classCode.trim().toLowerCase(),
    driver,
    driverOverride: override === null || override.trim() === '(null)' || override.trim() === '' ? null : override.trim(),
    iommuGroup: group === null ? null : Number(group),
    numaNode: numa === null || numa < 0 ? null : numa,
    physfn,
    virtfns,
    sriovTotalvfs: total,
    sriovNumvfs: num,
    nvidiaVgpuInterface: vgpuTypes,
  };
}

async function readVirtfns(host: HostRoot, dir: string): Promise<string[]> {
  const entries = (await host.list(dir)).filter((e) => /^virtfn\d+$/.test(e));
  entries.sort((a, b) => Number(a.slice(6)) - Number(b.slice(6)));
  const targets = await Promise.all(entries.map((e) => host.linkBasename(path.join(dir, e))));
  return targets.filter((t): t is string => t !== null);
}

/** Every PCI function on the host, keyed by address. */
export async function discoverPci(host: HostRoot): Promise<Map<string, PciFunction>> {
  return host.memo('pci-functions', async () => {
    const addresses = await host.list(host.path(HOST_PATHS.pciDevices));
    const functions = await Promise.all(addresses.map((a) => readPciFunction(host, a)));
    const map = new Map<string, PciFunction>();
    for (const f of functions) if (f) map.set(f.address, f);
    return map;
  });
}
