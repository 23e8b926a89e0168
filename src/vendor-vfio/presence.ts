/**
 * Whether a host has the vendor-VFIO interface at all: asked by every listing, so it stays apart from the
 * vendor state readers (discovery.ts), which `types`, `list` and `health` load only when the answer is yes.
 */
import { HOST_PATHS, type HostRoot } from '../host/host-root.js';
import type { PciFunction } from '../host/pci.js';

/**
 * True when the host has any VF with the vendor interface. Without the PCI functions at hand it asks each
 * function for nvidia/creatable_vgpu_types alone (two system calls, where reading a function is fifteen:
 * `types` on an mdev host of 160 VFs read 2,500 files for this answer).
 */
export async function hasVendorVfio(host: HostRoot, pci?: Map<string, PciFunction>): Promise<boolean> {
  if (pci !== undefined) return [...pci.values()].some((f) => f.nvidiaVgpuInterface);
  const devices = host.path(HOST_PATHS.pciDevices);
  for (const address of await host.list(devices)) {
    const link = `${devices}/${address}`;
    // The kernel's links are relative; an absolute one (a copied tree) is resolved under the root.
    const dir = (await host.linkIsRelative(link)) ? link : await host.realpath(link);
    if (await host.exists(`${dir}/nvidia/creatable_vgpu_types`)) return true;
  }
  return false;
}
