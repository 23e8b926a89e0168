/**
 * The simulator's model of NVIDIA's vendor vGPU interface on SR-IOV VFs (no mdev bus):
 * - `echo ID > <VF>/nvidia/current_vgpu_type` creates: EINVAL when ID is not in the VF's
 *   creatable_vgpu_types, EBUSY when the VF already carries a vGPU; `0` destroys (EBUSY while a qemu
 *   process holds the VF). After each change every VF of the same PF gets its creatable list recomputed:
 *   a busy VF and a full GPU print the header only; otherwise the types that still fit next to the GPU's
 *   vGPUs under the board's placement rule (catalogue: equal-size / same-type, framebuffer, max_per_gpu).
 *   The full supported list is kept in a hidden file beside it so it can be restored.
 * - `echo N > <PF>/sriov_numvfs` makes N VFs appear (0 removes them; changing a non-zero count is EBUSY,
 *   as in the kernel), each with the nvidia/ directory, as sriov-manage -e leaves a host.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { bundledCatalogue } from '../catalogue/catalogue.js';
import { HOST_PATHS, type HostRoot } from '../host/host-root.js';
import { errnoError } from '../host/sysfs-writer.js';
import { parseTypeName } from '../host/type-name.js';
import { additionalFit, type VgpuShape } from '../rules/gpu-capacity.js';
import { formatCreatableVgpuTypes, parseCreatableVgpuTypes, parseCurrentVgpuType, type CreatableType } from '../vendor-vfio/creatable.js';
import { writeAttrAtomically } from './kernel.js';
import { TreeWriter } from './tree.js';

/** Beside creatable_vgpu_types: every type the VF supports (the simulator's memory, not a kernel file). */
export const SUPPORTED_FILE = '.vgpuctl-sim-supported_vgpu_types';
/** In the PF directory: how to make its VFs when sriov_numvfs is written. */
export const SRIOV_SPEC_FILE = '.vgpuctl-sim-sriov.json';

export interface SimSriovSpec {
  parentPath: string;
  vendor: string;
  vf_device: string;
  subsystem_vendor: string;
  subsystem_device: string;
  class: string;
  vf_driver: string;
  numa_node: number;
  vf_iommu_group_base: number;
  totalvfs: number;
  vf_addresses: string[];
  types: Array<{ id: number; name: string }>;
}

/** nvidia/ of one VF, empty (current 0, every supported type creatable until recomputed). */
export async function layOutVendorVfFiles(tree: TreeWriter, vfDir: string, types: Array<{ id: number; name: string }>): Promise<void> {
  const text = formatCreatableVgpuTypes(types);
  await tree.file(`${vfDir}/nvidia/creatable_vgpu_types`, text, 0o444);
  await tree.file(`${vfDir}/nvidia/${SUPPORTED_FILE}`, text, 0o444);
  await tree.file(`${vfDir}/nvidia/current_vgpu_type`, '0\n', 0o644);
  await tree.file(`${vfDir}/nvidia/vgpu_params`, '', 0o644);
}

async function vfDirsOf(host: HostRoot, pfReal: string): Promise<string[]> {
  const entries = (await host.list(pfReal)).filter((e) => /^virtfn\d+$/.test(e)).sort((a, b) => Number(a.slice(6)) - Number(b.slice(6)));
  const out: string[] = [];
  for (const e of entries) {
    const real = await host.realpath(path.join(pfReal, e));
    if (await host.exists(path.join(real, 'nvidia', 'current_vgpu_type'))) out.push(real);
  }
  return out;
}

function shapeOfType(t: { id: number; name: string }): VgpuShape {
  const profile = parseTypeName(t.name);
  const entry = profile ? bundledCatalogue().profile(profile.profile) : undefined;
  return {
    typeId: `nvidia-${t.id}`,
    framebufferMib: entry?.profile.framebuffer_mib ?? (profile ? profile.framebufferGib * 1024 : null),
    maxInstance: entry?.profile.max_per_gpu ?? null,
    migSlices: entry?.profile.mig_slices ?? profile?.migSlices ?? null,
  };
}

/** Rewrites creatable_vgpu_types of every VF of the PF (real path) from the vGPUs it carries. */
export async function recomputeVendorPf(host: HostRoot, pfReal: string): Promise<void> {
  const vfs = await vfDirsOf(host, pfReal);
  const device = ((await host.readAttr(path.join(pfReal, 'device'))) ?? '').trim().toLowerCase();
  const placement = bundledCatalogue().boardForDeviceId(device)?.placement ?? 'equal-size';
  const info = await Promise.all(
    vfs.map(async (d) => ({
      dir: d,
      current: parseCurrentVgpuType(await host.readAttr(path.join(d, 'nvidia', 'current_vgpu_type'))),
      supported: parseCreatableVgpuTypes((await host.readAttr(path.join(d, 'nvidia', SUPPORTED_FILE))) ?? ''),
    })),
  );
  const known = new Map<number, CreatableType>();
  for (const v of info) for (const t of v.supported) known.set(t.id, t);
  const existing = info.filter((v) => v.current !== 0).map((v) => shapeOfType(known.get(v.current) ?? { id: v.current, name: '' }));
  for (const v of info) {
    const creatable = v.current !== 0 ? [] : v.supported.filter((t) => additionalFit(existing, shapeOfType(t), placement) > 0);
    await writeAttrAtomically(path.join(v.dir, 'nvidia', 'creatable_vgpu_types'), formatCreatableVgpuTypes(creatable));
  }
}

/** A qemu process whose command line names the VF holds it open. */
async function vfHeldBy(host: HostRoot, vf: string): Promise<number | null> {
  const procDir = host.path(HOST_PATHS.proc);
  const short = vf.replace(/^0000:/, '');
  for (const pid of (await host.list(procDir)).filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = await fs.readFile(path.join(procDir, pid, 'cmdline'), 'utf8');
      if (cmdline.includes(`host=${vf}`) || cmdline.includes(`host=${short}`) || cmdline.includes(`/sys/bus/pci/devices/${vf}`) || cmdline.includes(`"host":"${vf}"`)) return Number(pid);
    } catch {
      /* gone */
    }
  }
  return null;
}

/** Applies a write to nvidia/current_vgpu_type; returns false when the path is not one. */
export async function simulateVendorWrite(host: HostRoot, hostPath: string, data: string): Promise<boolean> {
  if (path.posix.basename(hostPath) !== 'current_vgpu_type' || path.posix.basename(path.posix.dirname(hostPath)) !== 'nvidia') return false;
  const real = await host.realpath(host.path(hostPath));
  const vfReal = path.dirname(path.dirname(real));
  const vf = path.basename(vfReal);
  if (!(await host.exists(real))) throw errnoError('ENOENT', `${hostPath} does not exist`);
  const m = /^\s*(\d+)\s*$/.exec(data);
  if (!m) throw errnoError('EINVAL', `${JSON.stringify(data)} is not a vGPU type id`);
  const id = Number(m[1]);
  const current = parseCurrentVgpuType(await host.readAttr(real));
  if (id === 0) {
    if (current !== 0) {
      const holder = await vfHeldBy(host, vf);
      if (holder !== null) throw errnoError('EBUSY', `${vf} is open by process ${holder}`);
    }
  } else {
    if (current !== 0) throw errnoError('EBUSY', `${vf} already carries vGPU type ${current}`);
    const creatable = parseCreatableVgpuTypes((await host.readAttr(path.join(vfReal, 'nvidia', 'creatable_vgpu_types'))) ?? '');
    if (!creatable.some((t) => t.id === id)) throw errnoError('EINVAL', `vGPU type ${id} is not creatable on ${vf}`);
  }
  // In one step, as the kernel does: a crash test's kill inside the simulator must not leave it empty.
  await writeAttrAtomically(real, `${id}\n`);
  const pf = path.join(vfReal, 'physfn');
  if (await host.exists(pf)) await recomputeVendorPf(host, await host.realpath(pf));
  return true;
}

async function layOutVf(host: HostRoot, spec: SimSriovSpec, pfHost: string, index: number): Promise<void> {
  const tree = new TreeWriter(host);
  const address = spec.vf_addresses[index]!;
  const devDir = `${spec.parentPath}/${address}`;
  const attrs: Record<string, string> = {
    vendor: spec.vendor,
    device: spec.vf_device,
    subsystem_vendor: spec.subsystem_vendor,
    subsystem_device: spec.subsystem_device,
    class: spec.class,
    numa_node: String(spec.numa_node),
    driver_override: '(null)',
    enable: '1',
  };
  for (const [k, v] of Object.entries(attrs)) await tree.file(`${devDir}/${k}`, `${v}\n`);
  for (const k of ['reset', 'remove', 'rescan']) await tree.file(`${devDir}/${k}`, '', 0o200);
  await tree.link(`${HOST_PATHS.pciDevices}/${address}`, devDir);
  await tree.link(`${devDir}/subsystem`, '/sys/bus/pci');
  const drv = `${HOST_PATHS.pciDrivers}/${spec.vf_driver}`;
  await tree.link(`${devDir}/driver`, drv);
  await tree.link(`${drv}/${address}`, devDir);
  const group = spec.vf_iommu_group_base + index;
  await tree.link(`${devDir}/iommu_group`, `/sys/kernel/iommu_groups/${group}`);
  await tree.link(`/sys/kernel/iommu_groups/${group}/devices/${address}`, devDir);
  await tree.file(`/sys/kernel/iommu_groups/${group}/type`, 'DMA\n');
  await tree.link(`${devDir}/physfn`, pfHost);
  await tree.link(`${pfHost}/virtfn${index}`, devDir);
  await layOutVendorVfFiles(tree, devDir, spec.types);
}

/** Applies `echo N > <PF>/sriov_numvfs` on a PF the simulator knows how to split; false otherwise. */
export async function simulateSriovNumvfs(host: HostRoot, hostPath: string, data: string): Promise<boolean> {
  if (path.posix.basename(hostPath) !== 'sriov_numvfs') return false;
  const pfReal = path.dirname(await host.realpath(host.path(hostPath)));
  const specFile = path.join(pfReal, SRIOV_SPEC_FILE);
  if (!(await host.exists(specFile))) return false;
  const spec = JSON.parse(await fs.readFile(specFile, 'utf8')) as SimSriovSpec;
  const m = /^\s*(\d+)\s*$/.exec(data);
  if (!m) throw errnoError('EINVAL', `${JSON.stringify(data)} is not a number of VFs`);
  const n = Number(m[1]);
  if (n > spec.totalvfs) throw errnoError('ERANGE', `${n} VFs requested, sriov_totalvfs is ${spec.totalvfs}`);
  const now = (await host.readIntAttr(path.join(pfReal, 'sriov_numvfs'))) ?? 0;
  if (n === now) return true;
  if (n !== 0 && now !== 0) throw errnoError('EBUSY', `${now} VFs are enabled; write 0 first`);
  const pfHost = host.hostPathOf(pfReal);
  const tree = new TreeWriter(host);
  if (n === 0) {
    for (const [i, address] of spec.vf_addresses.slice(0, now).entries()) {
      await tree.remove(`${pfHost}/virtfn${i}`);
      await tree.remove(`${HOST_PATHS.pciDevices}/${address}`);
      await tree.remove(`${HOST_PATHS.pciDrivers}/${spec.vf_driver}/${address}`);
      await tree.remove(`/sys/kernel/iommu_groups/${spec.vf_iommu_group_base + i}`);
      await tree.remove(`${spec.parentPath}/${address}`);
    }
  } else {
    for (let i = 0; i < n; i++) await layOutVf(host, spec, pfHost, i);
  }
  await writeAttrAtomically(path.join(pfReal, 'sriov_numvfs'), `${n}\n`);
  if (n > 0) await recomputeVendorPf(host, pfReal);
  return true;
}

/** After a layout: every PF whose VFs carry the vendor interface gets consistent creatable lists. */
export async function recomputeAllVendor(host: HostRoot): Promise<void> {
  const seen = new Set<string>();
  for (const a of await host.list(host.path(HOST_PATHS.pciDevices))) {
    const real = await host.realpath(path.join(host.path(HOST_PATHS.pciDevices), a));
    const pf = path.join(real, 'physfn');
    if (!(await host.exists(path.join(real, 'nvidia', 'current_vgpu_type'))) || !(await host.exists(pf))) continue;
    const pfReal = await host.realpath(pf);
    if (seen.has(pfReal)) continue;
    seen.add(pfReal);
    await recomputeVendorPf(host, pfReal);
  }
}
