/**
 * vm-check with vendor-VFIO vGPUs: a VM's PCI hostdevs that are VFs with NVIDIA's vendor interface (and
 * `-u VF|handle`) are vGPUs, judged by the same rules as mdev vGPUs (board, series, multi-vGPU profiles, the
 * per-VM maximum; several VFs of one SR-IOV GPU are allowed as on mdev SR-IOV boards), and must carry their
 * vGPU before the VM starts.
 */
import type { Catalogue } from '../catalogue/catalogue.js';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import type { HostRoot } from '../host/host-root.js';
import { isPciAddress } from '../host/identifiers.js';
import type { VgpuInfo, VmInput } from '../libvirt/vm-check.js';
import { numericTypeId, typeIdOf } from './creatable.js';
import { gpuOfVf, hasVendorVfio, profileOfId, readVendorState, vfHandle, type VendorState } from './discovery.js';

function describeVf(vs: VendorState, catalogue: Catalogue, vf: string): VgpuInfo {
  const v = vs.vfs.find((x) => x.address === vf);
  const def = vs.definitions.find((d) => d.vf === vf);
  const id = v && v.current !== 0 ? v.current : def ? numericTypeId(def.type) : null;
  const parsed = id !== null ? profileOfId(vs, catalogue, id) : null;
  const profile = parsed?.profile ?? def?.profile ?? null;
  const entry = profile ? catalogue.profile(profile) : undefined;
  return {
    uuid: vfHandle(vf),
    parent: vf,
    gpu: gpuOfVf(vs, vf)?.pf ?? null,
    type: id !== null ? typeIdOf(id) : null,
    profile,
    board: parsed?.board ?? entry?.board.board ?? null,
    series: parsed?.series ?? entry?.profile.series ?? null,
    active: v !== undefined && v.current !== 0,
    defined: def !== undefined,
    multi_vgpu_per_vm: entry?.profile.multi_vgpu_per_vm ?? null,
  };
}

/** The VMs with their vendor vGPUs described; vendor references are taken out of `uuids`. */
export async function withVendorVgpus(host: HostRoot, catalogue: Catalogue, vms: VmInput[]): Promise<VmInput[]> {
  const vs = await readVendorState(host, catalogue);
  if (!(await hasVendorVfio(host)) && vs.definitions.length === 0) return vms;
  const isVendorVf = (a: string) => vs.vfs.some((v) => v.address === a) || vs.definitions.some((d) => d.vf === a);
  return vms.map((vm) => {
    const fromRefs: string[] = [];
    const uuids: string[] = [];
    for (const u of vm.uuids) {
      const vf = [...vs.vfs.map((v) => v.address), ...vs.definitions.map((d) => d.vf)].find((a) => a === u || vfHandle(a) === u);
      if (vf) fromRefs.push(vf);
      else if (isPciAddress(u)) throw new VgpuctlError('not-found', `${u} is not a virtual function with NVIDIA's vendor interface on this host; see 'vgpuctl list --all'`);
      else uuids.push(u);
    }
    const vfs = [...new Set([...fromRefs, ...vm.pciAddresses.filter(isVendorVf)])];
    const described = vfs.map((vf) => ({ info: describeVf(vs, catalogue, vf), inUseBy: vs.users.get(vf)?.running ?? [] }));
    return { ...vm, uuids, pciAddresses: [...new Set([...vm.pciAddresses, ...fromRefs])], described };
  });
}
