/**
 * The hostdev elements for devices of this host: vGPUs by UUID (checked to exist, with the mdev's own
 * device API as the model) and passthrough cards with every function that shares their IOMMU group.
 */
import type { Catalogue } from '../catalogue/catalogue.js';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import type { Warning } from '../host/inventory.js';
import { isNvidiaGpu, type PciFunction } from '../host/pci.js';
import { findTypeOn, type HostState } from '../lifecycle/host-state.js';
import { functionsOfCard, roleOf } from '../nova/pci-config.js';
import { mdevHostdevXml, pciHostdevXml, type Display } from './hostdev-xml.js';
import { checkVms, describeVgpu, DEFAULT_MAX_VGPUS_PER_VM, type VmVerdict } from './vm-check.js';

export interface HostdevEntry {
  kind: 'mdev' | 'pci';
  uuid: string | null;
  address: string | null;
  /** vGPU profile (mdev) or the function's role (pci: gpu, audio, usb, ucsi, other). */
  what: string | null;
  xml: string;
}

export interface HostdevsResult {
  hostdevs: HostdevEntry[];
  xml: string;
  notes: string[];
  warnings: Warning[];
  /** vm-check's verdict when several vGPUs are meant for one VM. */
  vm_check: VmVerdict | null;
}

const MODELS: Record<string, 'vfio-pci' | 'vfio-ccw' | 'vfio-ap'> = { 'vfio-pci': 'vfio-pci', 'vfio-ccw': 'vfio-ccw', 'vfio-ap': 'vfio-ap' };

export function buildHostdevs(
  state: HostState,
  catalogue: Catalogue,
  pci: Map<string, PciFunction>,
  request: { uuids: string[]; pciAddresses: string[]; display: Display; indent?: string },
): HostdevsResult {
  const indent = request.indent ?? '';
  const hostdevs: HostdevEntry[] = [];
  const notes: string[] = [];
  const warnings: Warning[] = [];
  for (const uuid of request.uuids) {
    const info = describeVgpu(state, catalogue, uuid);
    if (!info.active && !info.defined) {
      throw new VgpuctlError('not-found', `${uuid} is not an mdev on this host (neither active nor defined); create or define it first (vgpuctl create, vgpuctl define), see vgpuctl list --all`);
    }
    if (!info.active) warnings.push({ code: 'not-active', message: `${uuid} is defined but not active: start it (vgpuctl start -u ${uuid}) before the VM` });
    const t = info.parent && info.type ? findTypeOn(state, info.parent, info.type) : undefined;
    const model = MODELS[t?.deviceApi ?? 'vfio-pci'] ?? 'vfio-pci';
    if (model !== 'vfio-pci' && request.display === 'on') throw new VgpuctlError('invalid-input', `--display on applies to vfio-pci mdevs; ${uuid} is ${model}`);
    if (request.display === 'on' && info.series === 'C') {
      warnings.push({ code: 'display-on-compute', message: `${uuid} is ${info.profile}, a C-series (compute) vGPU without a display: use --display off` });
    }
    hostdevs.push({ kind: 'mdev', uuid, address: null, what: info.profile, xml: mdevHostdevXml(uuid, request.display, indent, model) });
  }
  if (request.display === 'on' && request.uuids.length > 0) {
    notes.push(
      "display='on' needs a graphics device in the domain (for example <graphics type='vnc'/> or spice): without one libvirt refuses the domain with \"graphics device is needed for attribute value 'display=on' in <hostdev>\"",
    );
  }

  const seen = new Set<string>();
  for (const address of request.pciAddresses) {
    const f = pci.get(address);
    if (!f) throw new VgpuctlError('not-found', `${address} is not a PCI device on this host (see vgpuctl gpus)`);
    const vgpus = state.active.filter((d) => d.parent === address || f.virtfns.includes(d.parent));
    if (vgpus.length > 0) {
      throw new VgpuctlError('refused', `${address} carries ${vgpus.length} active vGPU(s) (${vgpus.map((v) => v.uuid).join(', ')}): it cannot be passed through while they exist`);
    }
    const card = isNvidiaGpu(f) && f.physfn === null ? functionsOfCard(pci, f) : { functions: [f], others: [] };
    for (const fn of card.functions) {
      if (seen.has(fn.address)) continue;
      seen.add(fn.address);
      const role = fn.address === f.address ? (isNvidiaGpu(f) ? 'gpu' : roleOf(f.classCode)) : roleOf(fn.classCode);
      hostdevs.push({ kind: 'pci', uuid: null, address: fn.address, what: role, xml: pciHostdevXml(fn.address, indent) });
      if (fn.driver === 'nvidia' || fn.driver === 'nouveau') {
        warnings.push({
          code: 'host-driver',
          message: `${fn.address} is bound to ${fn.driver}: managed='yes' makes libvirt move it to vfio-pci when the VM starts, which fails with "Device or resource busy" while the host driver uses the card; bind it to vfio-pci at boot (vfio-pci.ids=${f.vendorId.slice(2)}:${fn.deviceId.slice(2)})`,
        });
      }
    }
    if (card.functions.length > 1) notes.push(`${address}: all ${card.functions.length} functions of the card share IOMMU group ${f.iommuGroup} and go to the VM together (${card.functions.map((x) => x.address).join(', ')})`);
    for (const o of card.others) {
      warnings.push({ code: 'iommu-group-shared', message: `IOMMU group ${f.iommuGroup} of ${address} also holds ${o.address} (class ${o.classCode}): it must be bound to vfio-pci as well, and no other VM or host driver may use it` });
    }
    if (f.iommuGroup === null) warnings.push({ code: 'no-iommu-group', message: `${address} has no IOMMU group: turn the IOMMU on (intel_iommu=on or amd_iommu=on) or it cannot be passed through` });
  }

  let vm_check: VmVerdict | null = null;
  if (request.uuids.length > 1 || (request.uuids.length > 0 && request.pciAddresses.length > 0)) {
    vm_check = checkVms(state, catalogue, [{ name: '(these devices)', source: 'command line', uuids: request.uuids, pciAddresses: request.pciAddresses }], { maxPerVm: DEFAULT_MAX_VGPUS_PER_VM, pci })[0]!;
    for (const r of vm_check.reasons) {
      if (r.code === 'not-active' || r.code === 'unknown-mdev') continue; // said above
      warnings.push({ code: `vm-check-${r.code}`, message: `${r.severity === 'error' ? 'a VM with all of these would not start: ' : ''}${r.message}` });
    }
  }
  return { hostdevs, xml: hostdevs.map((h) => h.xml).join('\n'), notes, warnings, vm_check };
}
