/**
 * nova-config for vendor-VFIO hosts: nova sees these vGPUs as PCI passthrough of the VFs (no mdev), so
 * `[pci] device_spec` lists every VF that carries (or is defined to carry) a vGPU, by address, with
 * `"managed": "no"` (the VF stays on the nvidia driver; libvirt must not rebind it) and a resource class per
 * profile; `[pci] alias` names each class for flavors (`pci_passthrough:alias=L40S-8Q:1`). Needs nova
 * 2023.1 (27) or later: resource_class in device_spec and alias came with PCI devices in placement, which
 * nova-compute reports only with `[pci] report_in_placement = True` (and the scheduler uses with
 * `[filter_scheduler] pci_in_placement = True`).
 */
import type { Catalogue } from '../catalogue/catalogue.js';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import type { HostRoot } from '../host/host-root.js';
import { discoverParents } from '../host/mdev.js';
import type { OwnedKeys } from '../nova/merge.js';
import type { NovaPciConfig } from '../nova/pci-config.js';
import { commandFor, type FlavorSpecs } from '../nova/flavor.js';
import { multiVgpuProblem } from '../libvirt/vm-check.js';
import type { Plan } from '../plan/plan-file.js';
import { numericTypeId } from './creatable.js';
import { profileOfId, readVendorState } from './discovery.js';
import { vendorPlanPart } from './plan.js';

export interface VendorNovaConfig {
  device_specs: Array<Record<string, string>>;
  aliases: Array<Record<string, string>>;
  /** The [pci] lines (device_spec, alias, report_in_placement). */
  lines: string[];
  text: string;
  /** What `--merge` owns in an existing nova.conf. */
  mergeKeys: OwnedKeys[];
  /** Alias name → the type id it stands for (for `flavor -t`). */
  aliasTypes: Record<string, string>;
  /** Why the release cannot use these options (nova before 2023.1), or null. */
  releaseProblem: string | null;
}

export const resourceClassOf = (profile: string): string => `CUSTOM_NVIDIA_${profile.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;

/**
 * The vendor-VFIO part of nova-config: the VFs that carry or are defined to carry a vGPU, or (`planned`)
 * the ones a plan puts there. null when there is none.
 */
export async function buildVendorNovaConfig(host: HostRoot, catalogue: Catalogue, release: { name: string; nova: number }, planned?: Map<string, number>): Promise<VendorNovaConfig | null> {
  const vs = await readVendorState(host, catalogue);
  if (planned ? planned.size === 0 : vs.vfs.length === 0 && vs.definitions.length === 0) return null;
  const releaseProblem =
    release.nova < 27 ? `vendor-VFIO vGPUs reach nova as PCI devices with a resource_class, which nova reads from 2023.1 on; ${release.name} cannot use them (give --release 2023.1 or later)` : null;
  const vfs = new Map<string, number>(planned ?? []);
  if (!planned) {
    for (const v of vs.vfs) if (v.current !== 0) vfs.set(v.address, v.current);
    for (const d of vs.definitions) if (!vfs.has(d.vf)) vfs.set(d.vf, numericTypeId(d.type)!);
  }
  const pfOf = (vf: string) => vs.gpus.find((g) => g.vfs.some((v) => v.address === vf));
  const device_specs: Array<Record<string, string>> = [];
  const aliases = new Map<string, Record<string, string>>();
  const aliasTypes: Record<string, string> = {};
  for (const [vf, id] of [...vfs.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const profile = profileOfId(vs, catalogue, id)?.profile ?? vs.definitions.find((d) => d.vf === vf)?.profile ?? `nvidia-${id}`;
    const rc = resourceClassOf(profile);
    const product = (pfOf(vf)?.deviceId ?? '').replace(/^0x/, '');
    device_specs.push({ vendor_id: '10de', ...(product ? { product_id: product } : {}), address: vf, managed: 'no', resource_class: rc });
    if (!aliases.has(rc)) aliases.set(rc, { name: profile, device_type: 'type-VF', resource_class: rc });
    aliasTypes[profile] = `nvidia-${id}`;
  }
  const lines = [...device_specs.map((s) => `device_spec = ${JSON.stringify(s)}`), ...[...aliases.values()].map((a) => `alias = ${JSON.stringify(a)}`), 'report_in_placement = True'];
  const text = ['# vendor-VFIO vGPUs (VFs with nvidia/current_vgpu_type), given to VMs as PCI devices', '[pci]', ...lines, '', '[filter_scheduler]', 'pci_in_placement = True', ''].join('\n');
  const mergeKeys: OwnedKeys[] = [
    { group: 'pci', keys: ['device_spec', 'passthrough_whitelist', 'alias', 'report_in_placement'], lines },
    { group: 'filter_scheduler', keys: ['pci_in_placement'], lines: ['pci_in_placement = True'] },
  ];
  return { device_specs, aliases: [...aliases.values()], lines, text, mergeKeys, aliasTypes, releaseProblem };
}

/**
 * `[pci] device_spec` and `alias` are multi-valued options (nova reads every line of every [pci] section), and
 * both passthrough GPUs (`nova-config --pci`) and vendor-VFIO VFs need them: whichever of the two merges runs
 * owns the union and writes the lines of both, so neither replaces the other's. Passthrough lines first
 * (device_spec, then alias), then the VFs'. null `passthrough` (or one without GPUs): the vendor options as
 * they are.
 */
export function withPassthrough(vendor: VendorNovaConfig, passthrough: NovaPciConfig | null): { lines: string[]; text: string; mergeKeys: OwnedKeys[] } {
  if (passthrough === null || passthrough.gpus.length === 0) return { lines: vendor.lines, text: vendor.text, mergeKeys: vendor.mergeKeys };
  const isAlias = (l: string) => /^alias\s*=/.test(l);
  const vendorOwn = vendor.lines.filter((l) => !/^report_in_placement\s*=/.test(l));
  const lines = [
    ...passthrough.lines.filter((l) => !isAlias(l)),
    ...vendorOwn.filter((l) => !isAlias(l)),
    ...passthrough.lines.filter(isAlias),
    ...vendorOwn.filter(isAlias),
    'report_in_placement = True',
  ];
  const text = [
    ...passthrough.comments,
    '# vgpuctl: and the vendor-VFIO vGPUs (VFs with nvidia/current_vgpu_type), given to VMs as PCI devices',
    '[pci]',
    ...lines,
    '',
    '[filter_scheduler]',
    'pci_in_placement = True',
    '',
  ].join('\n');
  const mergeKeys = vendor.mergeKeys.map((k) => (k.group === 'pci' ? { ...k, lines } : k));
  return { lines, text, mergeKeys };
}

export interface NovaSources {
  /** The vendor-VFIO options, or null when there are no vendor vGPUs (on the host, or in the plan). */
  vendor: VendorNovaConfig | null;
  /** Whether the mdev options are wanted too, and the plan's mdev entries for them. */
  mdev: boolean;
  mdevPlan: Plan | undefined;
}

/**
 * What nova-config configures on this host: with a plan, its vendor entries (checked as `apply` checks
 * them) and its mdev entries; without, the vendor vGPUs present or defined, and the mdev side when the host
 * has mdev parents (or nothing vendor-VFIO at all).
 */
export async function novaSources(
  host: HostRoot,
  catalogue: Catalogue,
  release: { name: string; nova: number },
  plan?: { plan: Plan; label: string },
  opts: { lenientRelease?: boolean } = {},
): Promise<NovaSources> {
  const out = await sourcesOf(host, catalogue, release, plan);
  if (out.vendor?.releaseProblem && !opts.lenientRelease) throw new VgpuctlError('refused', out.vendor.releaseProblem);
  return out;
}

async function sourcesOf(host: HostRoot, catalogue: Catalogue, release: { name: string; nova: number }, plan?: { plan: Plan; label: string }): Promise<NovaSources> {
  if (plan) {
    const part = await vendorPlanPart({ host, catalogue }, plan.plan);
    if (part.problems.length > 0) throw new VgpuctlError('refused', `${plan.label} cannot be met on this host, so nova cannot be configured for it: ${part.problems.join('; ')}`);
    const planned = new Map(part.devices.map((d) => [d.vf, numericTypeId(d.type)!]));
    const vendor = await buildVendorNovaConfig(host, catalogue, release, planned);
    return { vendor, mdev: vendor === null || part.mdevPlan.gpus.length > 0, mdevPlan: part.mdevPlan };
  }
  const vendor = await buildVendorNovaConfig(host, catalogue, release);
  return { vendor, mdev: vendor === null || (await discoverParents(host)).length > 0, mdevPlan: undefined };
}

/**
 * `flavor --profile` for a vendor-VFIO vGPU: the PCI alias nova-config wrote for it,
 * `pci_passthrough:alias=<PROFILE>:1`. null when the profile is not one of the host's vendor vGPUs.
 */
export function vendorFlavor(config: VendorNovaConfig, catalogue: Catalogue, profileOrType: string, count: number): FlavorSpecs | null {
  const wanted = profileOrType.toUpperCase();
  const alias = config.aliases.find((a) => a['name']!.toUpperCase() === wanted || config.aliasTypes[a['name']!]?.toUpperCase() === wanted);
  if (!alias) return null;
  if (config.releaseProblem) throw new VgpuctlError('refused', config.releaseProblem);
  const name = alias['name']!;
  if (count > 1) {
    // Several VFs in one instance: the board's multi-vGPU rule (as vm-check applies it), and enough VFs here.
    const multi = multiVgpuProblem(catalogue, [name]);
    if (multi) throw new VgpuctlError('refused', `${count} x ${name} in one instance: ${multi}`);
    const vfs = config.device_specs.filter((s) => s['resource_class'] === alias['resource_class']).length;
    if (count > vfs) throw new VgpuctlError('refused', `${count} x ${name} in one instance needs ${count} virtual functions carrying it; this host has ${vfs}`);
  }
  const specs = { 'pci_passthrough:alias': `${name}:${count}` };
  return { extra_specs: specs, command: commandFor(specs), warnings: [] };
}
