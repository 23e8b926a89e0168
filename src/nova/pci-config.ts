/**
 * `[pci] device_spec` and `alias` for GPUs given whole to VMs (PCI passthrough), from what sysfs says
 * about each card:
 *
 * - every function of the card that shares its IOMMU group goes with it (the HDMI audio function, USB and
 *   UCSI controllers of some boards): one device_spec and one alias per function, and a flavor must ask for
 *   all of them (seed 001: GP102_VGA + GP102_SND);
 * - the alias's device_type is what nova will record for the device: `type-PF` for a card with an SR-IOV
 *   capability (sysfs `sriov_totalvfs` > 0; libvirt reports it as `virt_functions`), `type-PCI` otherwise.
 *   An alias whose device_type differs from the device's never matches;
 * - device_spec names each function by address, so that GPUs of the same model kept for vGPUs on the same
 *   host are never offered for passthrough;
 * - before Zed the option is `passthrough_whitelist`.
 */
import type { Catalogue } from '../catalogue/catalogue.js';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import type { Warning } from '../host/inventory.js';
import { isNvidiaGpu, type PciFunction } from '../host/pci.js';
import type { HostState } from '../lifecycle/host-state.js';
import { cardFunctionsOf, groupPeersOf, roleOf as cardRoleOf } from '../passthrough/cards.js';
import { label, rulesOf, type NovaRelease } from './releases.js';

export type FunctionRole = 'gpu' | 'audio' | 'usb' | 'ucsi' | 'other';

export interface PassthroughFunction {
  address: string;
  vendor_id: string;
  product_id: string;
  class_code: string;
  role: FunctionRole;
  driver: string | null;
  alias: string;
}

export interface PassthroughGpu {
  address: string;
  board: string | null;
  iommu_group: number | null;
  device_type: 'type-PCI' | 'type-PF';
  functions: PassthroughFunction[];
}

export interface PciAlias {
  name: string;
  vendor_id: string;
  product_id: string;
  device_type: 'type-PCI' | 'type-PF';
  role: FunctionRole;
  /** Addresses of the functions it matches. */
  functions: string[];
  /** For a GPU's alias: the aliases of the functions that must go with it. */
  companions: string[];
}

export interface NovaPciConfig {
  release: NovaRelease;
  option: 'device_spec' | 'passthrough_whitelist';
  gpus: PassthroughGpu[];
  device_specs: Array<{ vendor_id: string; product_id: string; address: string }>;
  aliases: PciAlias[];
  lines: string[];
  comments: string[];
  warnings: Warning[];
}

const hex4 = (id: string): string => id.replace(/^0x/, '').padStart(4, '0');

/** The card's function roles (src/passthrough/cards.ts) as nova-config and libvirt-xml name them: the display function is `gpu`. */
export function roleOf(classCode: string): FunctionRole {
  const role = cardRoleOf(classCode);
  return role === 'video' ? 'gpu' : role;
}

const isBridge = (f: PciFunction): boolean => /^0x0604/.test(f.classCode);

/** The functions that must go to the VM with a GPU: its card's functions in its IOMMU group; `others`: the rest of the group but bridges. */
export function functionsOfCard(pci: Map<string, PciFunction>, gpu: PciFunction): { functions: PciFunction[]; others: PciFunction[] } {
  const all = [...pci.values()];
  const functions = cardFunctionsOf(all, gpu).filter((f) => gpu.iommuGroup === null || f.iommuGroup === gpu.iommuGroup);
  const others = gpu.iommuGroup === null ? [] : groupPeersOf(all, [gpu.iommuGroup], functions).filter((f) => !isBridge(f));
  return { functions, others };
}

/**
 * The GPUs meant for passthrough: the ones named, or every NVIDIA GPU bound to vfio-pci (or pci-stub).
 * `optional`: none is no error (the vendor-VFIO [pci] options carry the passthrough ones along, when any).
 */
export function selectPassthroughGpus(pci: Map<string, PciFunction>, state: HostState, addresses: string[], optional = false): { gpus: PciFunction[]; warnings: Warning[] } {
  const warnings: Warning[] = [];
  if (addresses.length === 0) {
    const gpus = [...pci.values()].filter((f) => isNvidiaGpu(f) && f.physfn === null && (f.driver === 'vfio-pci' || f.driver === 'pci-stub'));
    if (gpus.length === 0 && !optional) {
      throw new VgpuctlError(
        'refused',
        'no NVIDIA GPU on this host is bound to vfio-pci, so none is meant for passthrough; bind the cards to vfio-pci (vfio-pci.ids=10de:XXXX) or name them with --gpu ADDRESS',
      );
    }
    return { gpus: gpus.sort((a, b) => (a.address < b.address ? -1 : 1)), warnings };
  }
  const gpus: PciFunction[] = [];
  for (const a of addresses) {
    const f = pci.get(a);
    if (!f) throw new VgpuctlError('not-found', `${a} is not a PCI device on this host (see vgpuctl gpus)`);
    if (!isNvidiaGpu(f)) throw new VgpuctlError('refused', `${a} is not an NVIDIA GPU (vendor ${f.vendorId}, class ${f.classCode}); vgpuctl configures passthrough of NVIDIA GPUs`);
    const parents = [f.address, ...f.virtfns];
    const vgpus = state.active.filter((d) => parents.includes(d.parent));
    if (vgpus.length > 0) {
      throw new VgpuctlError('refused', `${a} carries ${vgpus.length} active vGPU(s) (${vgpus.map((v) => v.uuid).join(', ')}): a GPU is either shared as vGPUs or given whole to one VM; destroy them first`);
    }
    if (f.driver === 'nvidia' || f.driver === 'nouveau') {
      warnings.push({
        code: 'host-driver',
        message: `${a} is bound to ${f.driver}: bind it to vfio-pci before nova uses it, or starting the VM fails with "Device or resource busy"`,
      });
    }
    if (!gpus.includes(f)) gpus.push(f);
  }
  return { gpus, warnings };
}

const suffixOf: Record<FunctionRole, string> = { gpu: '', audio: '_AUDIO', usb: '_USB', ucsi: '_UCSI', other: '_FN' };

export function buildPciConfig(
  state: HostState,
  catalogue: Catalogue,
  pci: Map<string, PciFunction>,
  options: { release: NovaRelease; gpus: string[]; optional?: boolean },
): NovaPciConfig {
  const { release } = options;
  const { gpus: selected, warnings } = selectPassthroughGpus(pci, state, options.gpus, options.optional);
  const aliases: PciAlias[] = [];
  const gpus: PassthroughGpu[] = [];
  const aliasFor = (f: PciFunction, base: string, role: FunctionRole, deviceType: PciAlias['device_type']): PciAlias => {
    const vendor_id = hex4(f.vendorId);
    const product_id = hex4(f.deviceId);
    let a = aliases.find((x) => x.vendor_id === vendor_id && x.product_id === product_id && x.device_type === deviceType);
    if (!a) {
      let name = `${base}${role === 'other' ? `${suffixOf.other}${f.address.slice(-1)}` : suffixOf[role]}`;
      if (aliases.some((x) => x.name === name)) name = `${name}_${product_id.toUpperCase()}`;
      if (aliases.some((x) => x.name === name)) name = `${name}_${deviceType === 'type-PF' ? 'PF' : 'PCI'}`;
      a = { name, vendor_id, product_id, device_type: deviceType, role, functions: [], companions: [] };
      aliases.push(a);
    }
    a.functions.push(f.address);
    return a;
  };

  for (const g of selected) {
    const board = catalogue.boardForDeviceId(g.deviceId)?.board ?? null;
    const base = (board ?? `GPU_${hex4(g.deviceId).toUpperCase()}`).replace(/[^A-Za-z0-9_-]/g, '_');
    const deviceType: PciAlias['device_type'] = (g.sriovTotalvfs ?? 0) > 0 ? 'type-PF' : 'type-PCI';
    if ((g.sriovNumvfs ?? 0) > 0) {
      warnings.push({ code: 'vfs-enabled', message: `${g.address} has ${g.sriovNumvfs} SR-IOV virtual functions enabled: disable them (sriov-manage -d ${g.address}) before giving the whole card to a VM` });
    }
    const { functions, others } = functionsOfCard(pci, g);
    if (g.iommuGroup === null) warnings.push({ code: 'no-iommu-group', message: `${g.address} has no IOMMU group: turn the IOMMU on (intel_iommu=on or amd_iommu=on) or it cannot be passed through` });
    for (const o of others) {
      warnings.push({
        code: 'iommu-group-shared',
        message: `IOMMU group ${g.iommuGroup} of ${g.address} also holds ${o.address} (class ${o.classCode}, driver ${o.driver ?? 'none'}): every device of the group must be bound to vfio-pci and cannot be used by the host or another VM`,
      });
    }
    const pf: PassthroughFunction[] = [];
    let gpuAlias: PciAlias | null = null;
    const companionAliases: PciAlias[] = [];
    for (const f of functions) {
      const own = roleOf(f.classCode);
      const role: FunctionRole = f.address === g.address ? 'gpu' : own === 'gpu' ? 'other' : own;
      const a = aliasFor(f, base, role, f.address === g.address ? deviceType : 'type-PCI');
      if (f.address === g.address) gpuAlias = a;
      else companionAliases.push(a);
      pf.push({ address: f.address, vendor_id: a.vendor_id, product_id: a.product_id, class_code: f.classCode, role, driver: f.driver, alias: a.name });
      if (f.address !== g.address && f.driver !== 'vfio-pci' && f.driver !== null) {
        warnings.push({ code: 'companion-driver', message: `${f.address} (${role}, same IOMMU group as ${g.address}) is bound to ${f.driver}: bind it to vfio-pci too` });
      }
    }
    if (gpuAlias) for (const c of companionAliases) if (!gpuAlias.companions.includes(c.name)) gpuAlias.companions.push(c.name);
    gpus.push({ address: g.address, board, iommu_group: g.iommuGroup, device_type: deviceType, functions: pf });
  }

  const rules = rulesOf(release);
  const option = rules.deviceSpec ? 'device_spec' : 'passthrough_whitelist';
  const device_specs = gpus.flatMap((g) => g.functions.map((f) => ({ vendor_id: f.vendor_id, product_id: f.product_id, address: f.address })));
  const lines = [
    ...device_specs.map((s) => `${option} = ${JSON.stringify(s)}`),
    ...aliases.map((a) => `alias = ${JSON.stringify({ name: a.name, vendor_id: a.vendor_id, product_id: a.product_id, device_type: a.device_type })}`),
  ];
  const comments = [`# vgpuctl: nova PCI passthrough options for OpenStack ${label(release)}: ${gpus.map((g) => g.address).join(', ')}`];
  for (const a of aliases.filter((x) => x.companions.length > 0)) {
    comments.push(`# vgpuctl: a flavor asking for ${a.name} must also ask for ${a.companions.join(', ')} (same IOMMU group): pci_passthrough:alias=${[a.name, ...a.companions].map((n) => `${n}:1`).join(',')}`);
  }
  return { release, option, gpus, device_specs, aliases, lines, comments, warnings };
}

export function renderPciConfig(c: NovaPciConfig): string {
  return `${[...c.comments, '[pci]', ...c.lines].join('\n')}\n`;
}
