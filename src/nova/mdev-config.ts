/**
 * The nova-compute vGPU options for what a host carries (or what a plan says it will carry):
 * `[devices] enabled_mdev_types` and one `[mdev_<type>]` group per type with the parents that hold it
 * (the GPU's address on time-sliced boards, the VF addresses on SR-IOV boards), the resource class, and
 * from 2024.1 `max_instances` for SR-IOV types, where each VF is its own resource provider.
 *
 * The release decides the option names and what nova really does; where the file would say more than nova
 * honours (a single enabled type before 2024.1), the generated file says only what nova will do, and a
 * warning says what is lost. What nova would refuse (a parent in two groups, a parent that is not a PCI
 * address, a bad class name) is refused here first, with nova's reason.
 */
import type { Catalogue } from '../catalogue/catalogue.js';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import type { Warning } from '../host/inventory.js';
import { findTypeOn, type HostState } from '../lifecycle/host-state.js';
import { converge, hostNamespace } from '../plan/converge.js';
import type { Plan } from '../plan/plan-file.js';
import { label, rulesOf, type NovaRelease } from './releases.js';
import { mdevClassProblem, pciAddressProblem } from './validate.js';
import type { OwnedSection } from './merge.js';

export interface IntendedVgpu {
  uuid: string | null;
  parent: string;
  type: string;
  source: 'active' | 'defined' | 'plan';
}

/** The vGPUs the host carries: active devices, and definitions whose parent exists and offers the type. */
export function intendedFromHost(state: HostState): { vgpus: IntendedVgpu[]; warnings: Warning[] } {
  const warnings: Warning[] = [];
  const byUuid = new Map<string, IntendedVgpu>();
  for (const a of state.active) byUuid.set(a.uuid, { uuid: a.uuid, parent: a.parent, type: a.type, source: 'active' });
  for (const d of state.definitions) {
    if (byUuid.has(d.uuid)) continue;
    if (!state.parents.some((p) => p.name === d.parent)) {
      warnings.push({ code: 'definition-parent-absent', message: `definition ${d.uuid} (${d.type}) names parent ${d.parent}, which this host does not have; left out of the nova configuration` });
      continue;
    }
    if (!findTypeOn(state, d.parent, d.type)) {
      warnings.push({ code: 'definition-type-absent', message: `definition ${d.uuid} names ${d.type}, which ${d.parent} does not offer; left out of the nova configuration` });
      continue;
    }
    byUuid.set(d.uuid, { uuid: d.uuid, parent: d.parent, type: d.type, source: 'defined' });
  }
  return { vgpus: [...byUuid.values()], warnings };
}

/** The vGPUs a plan puts on this host (the plan's own placement, VFs included), or the plan's problems. */
export async function intendedFromPlan(state: HostState, catalogue: Catalogue, plan: Plan, planLabel: string): Promise<{ vgpus: IntendedVgpu[]; warnings: Warning[] }> {
  const machineId = await state.host.readAttr(state.host.path('/etc/machine-id'));
  const c = converge(state, catalogue, plan, { namespace: plan.uuid_namespace ?? hostNamespace(machineId), prune: false });
  if (c.invalid.length > 0) throw new VgpuctlError('invalid-input', `${planLabel}: ${c.invalid.join('; ')}`);
  if (c.problems.length > 0) throw new VgpuctlError('refused', `${planLabel} cannot be met on this host, so nova cannot be configured for it: ${c.problems.join('; ')}`);
  const warnings: Warning[] = c.unplanned.map((u) => ({
    code: 'unplanned-device',
    message: `${u.uuid} (${u.type} on ${u.parent}) is not in the plan; nova will not count it, but it holds capacity (vgpuctl apply --prune removes it when no VM uses it)`,
  }));
  return { vgpus: c.devices.map((d) => ({ uuid: d.uuid || null, parent: d.parent, type: d.type, source: 'plan' as const })), warnings };
}

/** --mdev-class: auto, VGPU or CUSTOM_… for every type, or TYPE=CLASS / PROFILE=CLASS for one. */
export interface ClassChoice {
  all: string;
  perType: Array<{ key: string; cls: string }>;
}

export function parseClassChoice(values: string[]): ClassChoice {
  const choice: ClassChoice = { all: 'auto', perType: [] };
  for (const v of values) {
    const eq = v.indexOf('=');
    const cls = eq >= 0 ? v.slice(eq + 1) : v;
    if (eq < 0 && cls.toLowerCase() === 'auto') {
      choice.all = 'auto';
      continue;
    }
    const why = mdevClassProblem(cls);
    if (why) throw new VgpuctlError('invalid-input', `invalid --mdev-class: ${why}`);
    if (eq < 0) choice.all = cls;
    else {
      const key = v.slice(0, eq).trim();
      if (key === '') throw new VgpuctlError('invalid-input', `invalid --mdev-class ${JSON.stringify(v)}: give TYPE=CLASS or PROFILE=CLASS, e.g. nvidia-700=CUSTOM_A100D_2_20C`);
      choice.perType.push({ key, cls });
    }
  }
  return choice;
}

export interface MdevGroup {
  type: string;
  profile: string | null;
  board: string | null;
  /** device_addresses: the parents that carry the type. */
  addresses: string[];
  /** Physical GPUs (PF addresses) behind those parents. */
  gpus: string[];
  sriov: boolean;
  vgpus: number;
  mdev_class: string;
  max_instances: number | null;
}

export interface NovaView {
  /** Types nova-compute will offer. */
  types: string[];
  /** PCI address → type, or null when nova offers the one type on every GPU that has it. */
  addresses: Record<string, string> | null;
  /** Type → resource class. */
  classes: Record<string, string>;
}

export interface NovaMdevConfig {
  release: NovaRelease;
  option: 'enabled_mdev_types' | 'enabled_vgpu_types';
  enabled_types: string[];
  groups: MdevGroup[];
  /** Groups written to the file (none for a single type before 2024.1). */
  written_groups: string[];
  nova_view: NovaView;
  devices_lines: string[];
  sections: OwnedSection[];
  /** Comment lines for the head of the printed snippet. */
  comments: string[];
  warnings: Warning[];
  notes: string[];
}

const typeNumber = (t: string): number => Number(/(\d+)$/.exec(t)?.[1] ?? Number.MAX_SAFE_INTEGER);
// Ties by code units, not localeCompare (an ICU collator costs ~6 ms to build; type ids are ASCII).
const byTypeId = (a: string, b: string): number => typeNumber(a) - typeNumber(b) || (a === b ? 0 : a < b ? -1 : 1);
const classToken = (s: string): string => s.toUpperCase().replace(/[^A-Z0-9]+/g, '_').replace(/^_+|_+$/g, '');

export function buildMdevConfig(
  state: HostState,
  catalogue: Catalogue,
  vgpus: IntendedVgpu[],
  options: { release: NovaRelease; classes: ClassChoice; sourceLabel: string; fromPlan?: boolean },
): NovaMdevConfig {
  const { release } = options;
  const rules = rulesOf(release);
  const warnings: Warning[] = [];
  const notes: string[] = [];
  if (vgpus.length === 0) {
    throw new VgpuctlError(
      'refused',
      options.fromPlan
        ? `${options.sourceLabel} puts no vGPUs on this host, so there is nothing to configure nova for`
        : 'this host has no vGPUs (active or defined) to configure nova for: create them first (vgpuctl create, vgpuctl apply) or give the intended ones with --from-plan FILE',
    );
  }
  // nova manages mdevs of PCI devices only and names each parent by its PCI address.
  const nonPci = [...new Set(vgpus.map((v) => v.parent).filter((p) => pciAddressProblem(p) !== null))];
  if (nonPci.length > 0) {
    throw new VgpuctlError(
      'refused',
      `nova configures vGPUs of PCI devices only: ${nonPci.join(', ')} ${nonPci.length === 1 ? 'is' : 'are'} not a PCI address (nova-compute would stop with "incorrect PCI address: ${nonPci[0]}")`,
    );
  }

  // Group by type; one parent may carry one type only as far as nova is concerned.
  const byType = new Map<string, IntendedVgpu[]>();
  for (const v of vgpus) byType.set(v.type, [...(byType.get(v.type) ?? []), v]);
  const typeOfParent = new Map<string, string>();
  for (const [type, list] of byType) {
    for (const v of list) {
      const other = typeOfParent.get(v.parent);
      if (other !== undefined && other !== type) {
        throw new VgpuctlError(
          'refused',
          `${v.parent} would be in [mdev_${other}] and [mdev_${type}]: nova-compute stops with "duplicate types for PCI ID ${v.parent}" because a GPU offers nova one type; keep one type on it (the host has ${other} and ${type} there: vgpuctl list --all)`,
        );
      }
      typeOfParent.set(v.parent, type);
    }
  }
  const types = [...byType.keys()].sort(byTypeId);
  if (types.length > 1 && !rules.perTypeGroups) {
    throw new VgpuctlError(
      'refused',
      `nova ${release.name} offers one vGPU type per compute node (the first of enabled_vgpu_types, on every GPU); this host carries ${types.join(', ')}. Use one type, or Ussuri or later`,
    );
  }

  // Groups, with profile, board and SR-IOV from the host.
  const groups: MdevGroup[] = types.map((type) => {
    const list = byType.get(type)!;
    const addresses = [...new Set(list.map((v) => v.parent))].sort();
    const t = findTypeOn(state, addresses[0]!, type);
    const gpus = [...new Set(addresses.map((a) => state.gpuOfParent.get(a)?.key ?? a))].sort();
    const sriov = addresses.some((a) => state.gpuOfParent.get(a)?.sriov === true);
    return {
      type,
      profile: t?.profile?.profile ?? catalogue.profileByTypeId(type)?.profile.name ?? null,
      board: t?.profile?.board ?? catalogue.profileByTypeId(type)?.board.board ?? null,
      addresses,
      gpus,
      sriov,
      vgpus: list.length,
      mdev_class: 'VGPU',
      max_instances: null,
    };
  });

  // Resource classes.
  const choice = options.classes;
  for (const p of choice.perType) {
    const g = groups.find((x) => x.type === p.key || x.profile?.toUpperCase() === p.key.toUpperCase());
    if (!g) {
      throw new VgpuctlError(
        'invalid-input',
        `invalid --mdev-class ${p.key}=${p.cls}: ${p.key} is not one of the types being configured (${groups.map((x) => `${x.type}${x.profile ? ` ${x.profile}` : ''}`).join(', ')})`,
      );
    }
  }
  const several = groups.length > 1;
  const used = new Set<string>();
  for (const g of groups) {
    const explicit = choice.perType.find((p) => p.key === g.type || p.key.toUpperCase() === g.profile?.toUpperCase())?.cls;
    let cls = explicit ?? (choice.all !== 'auto' ? choice.all : several ? `CUSTOM_VGPU_${classToken(g.profile ?? g.type)}` : 'VGPU');
    if (!explicit && choice.all === 'auto' && used.has(cls)) cls = `${cls}_${classToken(g.type)}`;
    used.add(cls);
    g.mdev_class = cls;
  }
  const requestedCustom = choice.perType.some((p) => p.cls !== 'VGPU') || (choice.all !== 'auto' && choice.all !== 'VGPU');
  if (several && !rules.mdevClass) {
    warnings.push({
      code: 'shared-class',
      message: `nova ${release.name} has no mdev_class (Xena and later): ${types.join(', ')} are all resource class VGPU, so a flavor cannot choose between them (tag their resource providers with custom traits instead)`,
    });
  } else if (several && new Set(groups.map((g) => g.mdev_class)).size < groups.length) {
    warnings.push({
      code: 'shared-class',
      message: `${groups.filter((g) => groups.filter((x) => x.mdev_class === g.mdev_class).length > 1).map((g) => g.type).join(', ')} share a resource class: a flavor asking for it may get any of them`,
    });
  }

  // What nova will really do, by release.
  let nova_view: NovaView;
  let singleTypeMessage: string | null = null;
  const honoursGroups = rules.perTypeGroups && (several || rules.singleTypeHonoursGroup);
  if (!rules.mdevClass && requestedCustom) {
    warnings.push({ code: 'class-ignored', message: `--mdev-class is ignored: nova ${release.name} has no mdev_class (Xena and later), every vGPU is resource class VGPU` });
  }
  if (honoursGroups) {
    nova_view = {
      types,
      addresses: Object.fromEntries(groups.flatMap((g) => g.addresses.map((a) => [a, g.type]))),
      classes: Object.fromEntries(groups.map((g) => [g.type, rules.mdevClass ? g.mdev_class : 'VGPU'])),
    };
  } else {
    const t = types[0]!;
    nova_view = { types: [t], addresses: null, classes: { [t]: 'VGPU' } };
    const g = groups[0]!;
    const others = state.parents.filter((p) => p.types.some((x) => x.id === t) && !g.addresses.includes(p.name)).map((p) => p.name);
    const lost: string[] = [];
    if (others.length > 0) lost.push(`it also offers ${t} on ${others.slice(0, 8).join(', ')}${others.length > 8 ? `, … (${others.length} in all)` : ''}, not only on ${g.addresses.join(', ')}`);
    if (rules.mdevClass && g.mdev_class !== 'VGPU') lost.push(`the resource class is VGPU, not ${g.mdev_class}`);
    const reason = !rules.perTypeGroups
      ? `nova ${release.name} has no per-type groups (Ussuri and later)`
      : rules.mdevClass
        ? `nova ${release.name} ignores device_addresses and mdev_class when only one type is enabled (fixed in 2024.1)`
        : `nova ${release.name} ignores [vgpu_${t}] device_addresses when only one type is enabled (fixed in 2024.1)`;
    singleTypeMessage = `${reason}: the file enables ${t} only${lost.length > 0 ? `, and ${lost.join('; ')}` : ' (every GPU that offers it is meant for it, so nothing is lost)'}`;
    if (lost.length > 0) warnings.push({ code: 'single-type', message: singleTypeMessage });
    else notes.push(singleTypeMessage);
    g.mdev_class = 'VGPU';
  }
  if (!rules.mdevClass) for (const g of groups) g.mdev_class = 'VGPU';
  if (rules.maxInstances) for (const g of groups) if (g.sriov) g.max_instances = g.addresses.length;
  if (!rules.persistentMdevs) {
    notes.push(`nova ${release.name} does not persist the mdevs it creates (2024.2 does): keep the vGPUs defined (vgpuctl define, vgpuctl apply) so that they come back after a reboot`);
  }

  // Lines.
  const option = rules.mdevOptionNames ? 'enabled_mdev_types' : 'enabled_vgpu_types';
  const groupPrefix = rules.mdevOptionNames ? 'mdev_' : 'vgpu_';
  const devices_lines = [`${option} = ${nova_view.types.join(', ')}`];
  const sections: OwnedSection[] = [];
  if (honoursGroups) {
    for (const g of groups) {
      const what = g.sriov ? `${g.vgpus} vGPU(s) on the virtual functions of ${g.gpus.join(', ')}` : `${g.vgpus} vGPU(s) on ${g.gpus.join(', ')}`;
      const lines = [`# vgpuctl: ${g.profile ?? g.type}, ${what}`, `device_addresses = ${g.addresses.join(',')}`];
      if (rules.mdevClass) lines.push(`mdev_class = ${g.mdev_class}`);
      if (g.max_instances !== null) lines.push(`max_instances = ${g.max_instances}`);
      sections.push({ name: `${groupPrefix}${g.type}`, lines });
    }
  }
  const comments = [`# vgpuctl: nova-compute vGPU options for OpenStack ${label(release)}, from ${options.sourceLabel}`];
  if (singleTypeMessage !== null) comments.push(`# vgpuctl: ${singleTypeMessage}`);
  return {
    release,
    option,
    enabled_types: nova_view.types,
    groups,
    written_groups: sections.map((s) => s.name),
    nova_view,
    devices_lines,
    sections,
    comments,
    warnings,
    notes,
  };
}

/** The snippet as printed: comments, [devices], the groups. */
export function renderMdevConfig(c: NovaMdevConfig): string {
  const out = [...c.comments, '[devices]', ...c.devices_lines];
  for (const s of c.sections) out.push('', `[${s.name}]`, ...s.lines);
  return `${out.join('\n')}\n`;
}
