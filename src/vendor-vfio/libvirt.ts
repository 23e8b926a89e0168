/**
 * `libvirt-xml -u` for vendor-VFIO vGPUs: the VF goes to the VM as a plain PCI hostdev with
 * `managed='no'` — it must stay bound to the nvidia driver, which a managed hostdev would replace with
 * vfio-pci. `-u` takes the VF address or its handle; anything else is left to the mdev side.
 */
import type { Catalogue } from '../catalogue/catalogue.js';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import type { HostRoot } from '../host/host-root.js';
import { isPciAddress } from '../host/identifiers.js';
import type { Warning } from '../host/inventory.js';
import { pciHostdevXml } from '../libvirt/hostdev-xml.js';
import type { HostdevEntry } from '../libvirt/hostdevs.js';
import { profileOfId, readVendorState, vfHandle } from './discovery.js';

export function vfHostdevXml(vf: string, indent = ''): string {
  return pciHostdevXml(vf, indent, { managed: false });
}

/** The hostdevs of the references that name vendor vGPUs; `rest` are the others (mdev UUIDs). */
export async function vendorHostdevs(
  host: HostRoot,
  catalogue: Catalogue,
  refs: string[],
  opts: { display: 'on' | 'off'; indent?: string },
): Promise<{ hostdevs: HostdevEntry[]; rest: string[]; warnings: Warning[] }> {
  const vs = await readVendorState(host, catalogue);
  // Like an mdev UUID, a VF is a vGPU when it carries one or is defined to.
  const known = [...new Set([...vs.vfs.filter((v) => v.current !== 0).map((v) => v.address), ...vs.definitions.map((d) => d.vf)])];
  const hostdevs: HostdevEntry[] = [];
  const warnings: Warning[] = [];
  const rest: string[] = [];
  for (const ref of refs) {
    const vf = known.find((a) => a === ref || vfHandle(a) === ref);
    if (vf === undefined) {
      if (isPciAddress(ref)) throw new VgpuctlError('not-found', `${ref} is not a virtual function with a vendor-VFIO vGPU on this host (active or defined); see 'vgpuctl list --all'`);
      rest.push(ref);
      continue;
    }
    if (opts.display === 'on') throw new VgpuctlError('invalid-input', `--display on applies to mdev vGPUs; the vGPU on ${vf} goes to the VM as a PCI device (its console comes from the guest driver)`);
    const v = vs.vfs.find((x) => x.address === vf);
    const def = vs.definitions.find((d) => d.vf === vf);
    const id = v && v.current !== 0 ? v.current : null;
    if (!v) warnings.push({ code: 'not-present', message: `${vf} does not exist now: enable SR-IOV (vgpuctl sriov enable) and start its vGPU before the VM` });
    else if (id === null) warnings.push({ code: 'not-active', message: `${vf} carries no vGPU now: start it (vgpuctl start -u ${vf}) before the VM, or the guest gets a VF without a vGPU` });
    const profile = id !== null ? (profileOfId(vs, catalogue, id)?.profile ?? null) : (def?.profile ?? null);
    hostdevs.push({ kind: 'pci', uuid: vfHandle(vf), address: vf, what: profile, xml: vfHostdevXml(vf, opts.indent ?? '') });
  }
  return { hostdevs, rest, warnings };
}
