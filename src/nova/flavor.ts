/**
 * Flavor extra specs that match the generated nova configuration: `resources:<class>=1` for a vGPU profile
 * (the class the generated `[mdev_<type>]` group gives it, or VGPU where nova ignores the group), and
 * `pci_passthrough:alias=NAME:N` for passthrough, with the aliases of the functions that must go with the
 * GPU (seed 001: GP102_VGA:1,GP102_SND:1).
 *
 * Several vGPUs per instance: nova takes one per instance before 2026.1 (nova bug 1758086); from 2026.1 a
 * flavor asks for them in granular groups (`resources1:…=1`, `resources2:…=1`) with
 * `group_policy=isolate`, so that each comes from another resource provider (another GPU, or another VF).
 */
import type { Catalogue } from '../catalogue/catalogue.js';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import type { Warning } from '../host/inventory.js';
import { multiVgpuProblem } from '../libvirt/vm-check.js';
import type { NovaMdevConfig } from './mdev-config.js';
import type { NovaPciConfig } from './pci-config.js';
import { rulesOf } from './releases.js';

export interface FlavorSpecs {
  extra_specs: Record<string, string>;
  /** `openstack flavor set FLAVOR --property …` */
  command: string;
  warnings: Warning[];
}

const quote = (s: string): string => `"${s.replace(/(["\\$`])/g, '\\$1')}"`;
export const commandFor = (specs: Record<string, string>): string =>
  `openstack flavor set FLAVOR ${Object.entries(specs).map(([k, v]) => `--property ${quote(`${k}=${v}`)}`).join(' ')}`;

export function vgpuFlavor(config: NovaMdevConfig, catalogue: Catalogue, profileOrType: string, count: number): FlavorSpecs {
  const wanted = profileOrType.toUpperCase();
  const group = config.groups.find((g) => g.type.toUpperCase() === wanted || g.profile?.toUpperCase() === wanted);
  const configured = config.groups.map((g) => g.profile ?? g.type).join(', ');
  if (!group) throw new VgpuctlError('refused', `${profileOrType} is not in the nova configuration of this host (it has ${configured}); a flavor for it would never be scheduled here`);
  if (!config.nova_view.types.includes(group.type)) {
    throw new VgpuctlError('refused', `nova ${config.release.name} does not offer ${group.profile ?? group.type} with this configuration (it offers ${config.nova_view.types.join(', ')} only)`);
  }
  const cls = config.nova_view.classes[group.type]!;
  const warnings: Warning[] = [];
  if (cls === 'VGPU' && config.nova_view.types.length > 1) {
    warnings.push({ code: 'shared-class', message: `several types are resource class VGPU here: resources:VGPU may be given any of them; choose a CUSTOM_ class per type with --mdev-class` });
  }
  if (count === 1) {
    const specs = { [`resources:${cls}`]: '1' };
    return { extra_specs: specs, command: commandFor(specs), warnings };
  }
  if (!rulesOf(config.release).multipleVgpusPerInstance) {
    throw new VgpuctlError('refused', `nova ${config.release.name} gives an instance one vGPU (several per instance need 2026.1 or later, nova bug 1758086)`);
  }
  const multi = group.profile ? multiVgpuProblem(catalogue, [group.profile]) : null;
  if (multi) throw new VgpuctlError('refused', `${count} x ${group.profile} in one instance: ${multi}`);
  // Each vGPU from another provider: another GPU on time-sliced boards (one vGPU of a GPU per VM), another VF on SR-IOV.
  const providers = group.sriov ? group.addresses.length : group.gpus.length;
  if (count > providers) {
    throw new VgpuctlError(
      'refused',
      `${count} x ${group.profile ?? group.type} in one instance needs ${count} ${group.sriov ? 'virtual functions' : 'GPUs'} carrying it; this host has ${providers}`,
    );
  }
  const specs: Record<string, string> = {};
  for (let i = 1; i <= count; i++) specs[`resources${i}:${cls}`] = '1';
  specs['group_policy'] = 'isolate';
  return { extra_specs: specs, command: commandFor(specs), warnings };
}

export interface AliasRequest {
  name: string;
  count: number;
}

export function parseAliasRequest(value: string): AliasRequest {
  const m = /^([^:,\s]+):([1-9]\d{0,2})$/.exec(value.trim());
  if (!m) throw new VgpuctlError('invalid-input', `invalid --pci-alias ${JSON.stringify(value)}: give NAME:COUNT, e.g. T4:1`);
  return { name: m[1]!, count: Number(m[2]) };
}

export function pciFlavor(config: NovaPciConfig, requests: AliasRequest[]): FlavorSpecs {
  const warnings: Warning[] = [];
  const parts: AliasRequest[] = [];
  const add = (r: AliasRequest) => {
    const have = parts.find((p) => p.name === r.name);
    if (have) have.count = Math.max(have.count, r.count);
    else parts.push({ ...r });
  };
  for (const r of requests) {
    const alias = config.aliases.find((a) => a.name.toUpperCase() === r.name.toUpperCase());
    if (!alias) throw new VgpuctlError('refused', `alias ${r.name} is not in the generated [pci] configuration (it has ${config.aliases.map((a) => a.name).join(', ')})`);
    add({ name: alias.name, count: r.count });
    for (const c of alias.companions) add({ name: c, count: r.count });
    if (alias.functions.length < r.count) warnings.push({ code: 'not-enough', message: `alias ${alias.name} matches ${alias.functions.length} device(s) on this host; ${r.count} were asked for` });
  }
  const specs = { 'pci_passthrough:alias': parts.map((p) => `${p.name}:${p.count}`).join(',') };
  return { extra_specs: specs, command: commandFor(specs), warnings };
}
