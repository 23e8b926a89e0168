/**
 * `vgpuctl sim capture DIR`: copies what vgpuctl reads of a live host (mdev parents and types, active
 * mdevs, the PCI functions of GPUs, /etc/mdevctl.d, libvirt domains) into DIR, in the kernel's layout, so
 * the simulator can replay a real host — an operator's bug report, or the real kernel in our tests.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import { HOST_PATHS, HostRoot } from '../host/host-root.js';
import { discoverActiveMdevs, discoverParents } from '../host/mdev.js';
import { discoverPci, isNvidiaGpu } from '../host/pci.js';
import { TreeWriter } from './tree.js';

const PCI_ATTRS = ['vendor', 'device', 'subsystem_vendor', 'subsystem_device', 'class', 'numa_node', 'driver_override', 'sriov_totalvfs', 'sriov_numvfs', 'sriov_offset', 'sriov_stride'];
const TYPE_ATTRS = ['name', 'description', 'device_api', 'available_instances'];

export interface CaptureReport {
  root: string;
  parents: number;
  types: number;
  devices: number;
  pci_functions: number;
}

async function copyFileIfAny(from: HostRoot, to: TreeWriter, hostPath: string, mode = 0o644): Promise<boolean> {
  const text = await from.readAttr(from.path(hostPath));
  if (text === null) return false;
  await to.file(hostPath, `${text}\n`, mode);
  return true;
}

async function copyTree(from: HostRoot, to: TreeWriter, hostDir: string): Promise<void> {
  for (const name of await from.list(from.path(hostDir))) {
    const p = `${hostDir}/${name}`;
    const stat = await fs.lstat(from.path(p)).catch(() => null);
    if (stat?.isDirectory()) await copyTree(from, to, p);
    else if (stat?.isFile()) await to.file(p, await fs.readFile(from.path(p), 'utf8'), stat.mode & 0o777);
    else if (stat?.isSymbolicLink()) await to.rawLink(p, await fs.readlink(from.path(p)));
  }
}

export async function captureHost(source: HostRoot, dir: string): Promise<CaptureReport> {
  const existing = await fs.readdir(dir).catch(() => null);
  if (existing !== null && existing.length > 0) throw new VgpuctlError('refused', `${dir} is not empty; give a new or empty directory for the capture`);
  const target = new HostRoot(dir);
  if (target.isSystemRoot) throw new VgpuctlError('refused', 'refusing to capture into /');
  const to = new TreeWriter(target);
  const [parents, active, pci] = await Promise.all([discoverParents(source), discoverActiveMdevs(source), discoverPci(source)]);
  for (const d of [HOST_PATHS.pciDevices, HOST_PATHS.pciDrivers, HOST_PATHS.mdevDevices, HOST_PATHS.iommuGroups, HOST_PATHS.mdevBus, '/etc/mdevctl.d/scripts.d/callouts', '/etc/mdevctl.d/scripts.d/notifiers', '/run', '/dev/vfio']) {
    await to.mkdir(d);
  }
  await to.file('/sys/bus/pci/drivers_probe', '', 0o200);

  // PCI functions of NVIDIA GPUs (and their VFs), with driver, IOMMU group and SR-IOV links.
  const wanted = [...pci.values()].filter((f) => isNvidiaGpu(f) || parents.some((p) => p.pciAddress === f.address));
  for (const f of wanted) {
    for (const a of PCI_ATTRS) await copyFileIfAny(source, to, `${f.sysfsPath}/${a}`);
    await to.link(`${HOST_PATHS.pciDevices}/${f.address}`, f.sysfsPath);
    if (f.driver) {
      await to.link(`${f.sysfsPath}/driver`, `${HOST_PATHS.pciDrivers}/${f.driver}`);
      await to.link(`${HOST_PATHS.pciDrivers}/${f.driver}/${f.address}`, f.sysfsPath);
      for (const x of ['bind', 'unbind']) await to.file(`${HOST_PATHS.pciDrivers}/${f.driver}/${x}`, '', 0o200);
    }
    if (f.iommuGroup !== null) {
      await to.link(`${f.sysfsPath}/iommu_group`, `${HOST_PATHS.iommuGroups}/${f.iommuGroup}`);
      await to.link(`${HOST_PATHS.iommuGroups}/${f.iommuGroup}/devices/${f.address}`, f.sysfsPath);
    }
    if (f.physfn) await to.link(`${f.sysfsPath}/physfn`, `${path.posix.dirname(f.sysfsPath)}/${f.physfn}`);
    for (const [i, vf] of f.virtfns.entries()) await to.link(`${f.sysfsPath}/virtfn${i}`, `${path.posix.dirname(f.sysfsPath)}/${vf}`);
    for (const x of ['reset', 'remove']) await to.file(`${f.sysfsPath}/${x}`, '', 0o200);
  }

  // mdev parents and their types.
  let types = 0;
  for (const p of parents) {
    await to.mkdir(p.sysfsPath);
    for (const t of p.types) {
      for (const a of TYPE_ATTRS) await copyFileIfAny(source, to, `${t.sysfsPath}/${a}`, 0o444);
      await to.file(`${t.sysfsPath}/create`, '', 0o200);
      await to.mkdir(`${t.sysfsPath}/devices`);
      types++;
    }
    await to.link(`${HOST_PATHS.mdevBus}/${p.name}`, p.sysfsPath);
  }

  // Active mdevs, linked as the kernel links them.
  for (const d of active) {
    const typeDir = `${path.posix.dirname(d.sysfsPath)}/mdev_supported_types/${d.type}`;
    await to.mkdir(d.sysfsPath);
    await to.link(`${d.sysfsPath}/mdev_type`, typeDir);
    await to.file(`${d.sysfsPath}/remove`, '', 0o200);
    await to.link(`${HOST_PATHS.mdevDevices}/${d.uuid}`, d.sysfsPath);
    await to.link(`${typeDir}/devices/${d.uuid}`, d.sysfsPath);
    if (d.iommuGroup !== null) {
      await to.link(`${d.sysfsPath}/iommu_group`, `${HOST_PATHS.iommuGroups}/${d.iommuGroup}`);
      await to.link(`${HOST_PATHS.iommuGroups}/${d.iommuGroup}/devices/${d.uuid}`, d.sysfsPath);
      await to.file(`/dev/vfio/${d.iommuGroup}`, '', 0o600);
    }
    if (d.driver) await to.link(`${d.sysfsPath}/driver`, `/sys/bus/mdev/drivers/${d.driver}`);
  }

  // What the host declares: mdevctl definitions and libvirt domains; kernel command line and modules.
  for (const d of [HOST_PATHS.mdevctlConfig, HOST_PATHS.libvirtConfig, HOST_PATHS.libvirtRun]) await copyTree(source, to, d);
  await copyFileIfAny(source, to, HOST_PATHS.procCmdline, 0o444);
  await copyFileIfAny(source, to, HOST_PATHS.procModules, 0o444);
  return { root: target.root, parents: parents.length, types, devices: active.length, pci_functions: wanted.length };
}
