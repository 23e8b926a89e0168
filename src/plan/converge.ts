/**
 * From a plan and the host as it is to the changes that make the host match: which devices to keep, adopt,
 * start, define, create and (with --prune) remove. Every rule is checked for the whole plan before the
 * first write; a plan that cannot be met is refused whole, with every reason.
 *
 * Devices are identified by deterministic UUIDs (UUIDv5 of the host namespace, the parent and the slot
 * index), so a re-apply after a reboot recreates the UUIDs that nova and libvirt already name. Devices of
 * the right type already on the right GPU are adopted, not recreated.
 */
import { readlinkSync } from 'node:fs';
import path from 'node:path';
import { v5 as uuidv5 } from 'uuid';
import type { Catalogue } from '../catalogue/catalogue.js';
import type { Definition } from '../host/definitions.js';
import type { MdevParent, MdevType } from '../host/mdev.js';
import { findTypeOn, type HostState, type PhysicalGpu } from '../lifecycle/host-state.js';
import { usageOf } from '../rules/device-users.js';
import { additionalFit, isNvidiaVgpuType, placementConflict, shapeOf, type VgpuShape } from '../rules/gpu-capacity.js';
import { placementOf } from '../rules/placement.js';
import { typeMatches, type TypeSelector } from '../rules/type-resolution.js';
import type { GpuEntry, Plan } from './plan-file.js';

/** Namespace under which vgpuctl derives host namespaces (a fixed, random v4 UUID). */
export const VGPUCTL_NAMESPACE = '6c1c0a8e-6f0d-4c65-9a3e-7f4b0f3e2d51';

export const hostNamespace = (machineId: string | null): string => uuidv5(machineId?.trim() || 'vgpuctl-default-host', VGPUCTL_NAMESPACE);

export const slotUuid = (namespace: string, parent: string, index: number): string => uuidv5(`${parent}#${index}`, namespace);

/** One device as the host has it: active, defined, or both. */
export interface HostDevice {
  uuid: string;
  parent: string;
  type: string;
  active: boolean;
  definition: Definition | null;
}

export interface PlannedDevice {
  uuid: string;
  parent: string;
  type: string;
  profile: string | null;
  autostart: boolean;
  entry: number;
  /** The physical GPU (PF address) the device belongs to. */
  gpu: string;
  /** What is needed: nothing, create, start (defined but not active), define or modify (start mode). */
  needs: Array<'create' | 'start' | 'define' | 'set-start'>;
  adopted: boolean;
  existing: HostDevice | null;
}

export interface Convergence {
  namespace: string;
  devices: PlannedDevice[];
  /** Devices on planned GPUs or elsewhere that the plan does not hold. */
  unplanned: Array<HostDevice & { in_use: string[]; removable: boolean; reason: string }>;
  /** Devices --prune removes (unplanned, not in use). */
  prune: HostDevice[];
  problems: string[];
  /** The problems that are mistakes in the plan itself whatever the host (an unknown profile): bad input. */
  invalid: string[];
  /** The problems caused by devices the host already carries (they would go with --prune, or are in use). */
  conflicts: string[];
}

export function hostDevices(state: HostState): HostDevice[] {
  const out = new Map<string, HostDevice>();
  for (const a of state.active) out.set(a.uuid, { uuid: a.uuid, parent: a.parent, type: a.type, active: true, definition: null });
  for (const d of state.definitions) {
    const cur = out.get(d.uuid);
    if (cur && cur.parent === d.parent) cur.definition = d;
    else if (!cur) out.set(d.uuid, { uuid: d.uuid, parent: d.parent, type: d.type, active: false, definition: d });
  }
  return [...out.values()].sort((a, b) => (a.uuid < b.uuid ? -1 : 1));
}

function boardOf(catalogue: Catalogue, gpu: PhysicalGpu): string | null {
  for (const p of gpu.parents) for (const t of p.types) if (t.profile) return t.profile.board;
  return gpu.deviceId ? catalogue.boardForDeviceId(gpu.deviceId)?.board ?? null : null;
}

function selectGpus(state: HostState, catalogue: Catalogue, entry: GpuEntry, sel: TypeSelector, problems: string[], label: string): PhysicalGpu[] {
  const s = entry.select;
  const sorted = [...state.gpus].sort((a, b) => (a.key < b.key ? -1 : 1));
  if ('address' in s || 'pf' in s) {
    const addr = 'address' in s ? s.address : s.pf;
    const gpu = sorted.find((g) => g.key === addr);
    if (!gpu) {
      const ofVf = state.gpuOfParent.get(addr);
      problems.push(
        ofVf && ofVf.key !== addr
          ? `${label}: ${addr} is a virtual function of ${ofVf.key}; select the GPU with { pf: "${ofVf.key}" }`
          : `${label}: ${addr} is not a vGPU-capable GPU on this host (vgpuctl gpus)`,
      );
      return [];
    }
    if ('pf' in s && !gpu.sriov) problems.push(`${label}: ${addr} is not an SR-IOV GPU; select it with { address: "${addr}" }`);
    return [gpu];
  }
  const matching = 'board' in s ? sorted.filter((g) => boardOf(catalogue, g)?.toUpperCase() === s.board.toUpperCase()) : sorted.filter((g) => g.parents.some((p) => p.types.some((t) => typeMatches(t, sel))));
  if (matching.length === 0) problems.push(`${label}: ${'board' in s ? `no ${s.board} GPU` : 'no GPU offering it'} on this host`);
  return matching;
}

const selectorOf = (e: GpuEntry): TypeSelector => (e.type !== undefined ? { kind: 'type', type: e.type } : { kind: 'profile', profile: e.profile! });

interface GpuWork {
  gpu: PhysicalGpu;
  /** vfParents: with select.vfs, the VF (mdev parent) of each slot, in order. */
  entries: Array<{ index: number; entry: GpuEntry; type: MdevType; count: number; vfParents: string[] | null }>;
}

/** The address of virtual function `index` of `pf`: the PF's virtfnN link, as the kernel numbers VFs. */
function vfAddress(state: HostState, pf: string, index: number): string | null {
  try {
    return path.basename(readlinkSync(path.join(state.host.path('/sys/bus/pci/devices'), pf, `virtfn${index}`)));
  } catch {
    return null;
  }
}

/** select.vfs as mdev parents of the GPU offering `type`, or null with the reasons added to `problems`. */
function vfParentsOf(state: HostState, gpu: PhysicalGpu, vfs: number[], type: MdevType, problems: string[], label: string): string[] | null {
  if (!gpu.sriov) {
    problems.push(`${label}: ${gpu.key} has no virtual functions (not an SR-IOV mdev GPU); leave select.vfs out`);
    return null;
  }
  const out: string[] = [];
  for (const i of vfs) {
    const addr = vfAddress(state, gpu.key, i);
    const parent = addr === null ? undefined : gpu.parents.find((p) => p.name === addr);
    if (addr === null) problems.push(`${label}: ${gpu.key} has no virtual function ${i} (no virtfn${i}); enable its VFs (sriov-manage -e ${gpu.key}) or fix select.vfs`);
    else if (!parent) problems.push(`${label}: VF ${i} of ${gpu.key} (${addr}) is not an mdev parent (vgpuctl gpus --vfs)`);
    else if (!parent.types.some((t) => t.id === type.id)) problems.push(`${label}: VF ${i} of ${gpu.key} (${addr}) does not offer ${type.id} (vgpuctl types -p ${addr})`);
    else out.push(addr);
  }
  return out.length === vfs.length ? out : null;
}

export function converge(
  state: HostState,
  catalogue: Catalogue,
  plan: Plan,
  options: {
    namespace: string;
    prune: boolean;
    /** UUIDs an interrupted apply announced in its journal: taken back when the plan does not hold them and no VM runs on them. */
    reclaim?: ReadonlySet<string>;
  },
): Convergence {
  const problems: string[] = [];
  const invalid: string[] = [];
  const conflicts: string[] = [];
  const work = new Map<string, GpuWork>();
  for (const [index, entry] of plan.gpus.entries()) {
    const sel = selectorOf(entry);
    const label = `gpus[${index}] (${entry.profile ?? entry.type})`;
    if (entry.profile !== undefined && !catalogue.profile(entry.profile) && !state.parents.some((p) => p.types.some((t) => typeMatches(t, sel)))) {
      // A name that is no profile at all is bad input whatever the host (exit 2), as with `create --profile`.
      const msg = `gpus[${index}].profile: unknown profile ${JSON.stringify(entry.profile)}; profiles look like P40-12C (see 'vgpuctl profiles')`;
      invalid.push(msg);
      problems.push(msg);
      continue;
    }
    for (const gpu of selectGpus(state, catalogue, entry, sel, problems, label)) {
      const offered = gpu.parents.map((p) => p.types.find((t) => typeMatches(t, sel))).find((t) => t !== undefined);
      if (!offered) {
        const profiles = [...new Set(gpu.parents.flatMap((p) => p.types.map((t) => t.profile?.profile ?? t.id)))];
        problems.push(`${label}: ${gpu.key} does not offer it (it offers ${profiles.slice(0, 12).join(', ')}${profiles.length > 12 ? ', …' : ''})`);
        continue;
      }
      const offering = gpu.parents.filter((p) => p.types.some((t) => t.id === offered.id));
      // Types without max_instance (other drivers): what is free now plus what the type already carries.
      const carried = state.active.filter((a) => offering.some((p) => p.name === a.parent) && a.type === offered.id).length;
      const maxFit = gpu.sriov ? Math.min(offered.parsedDescription.maxInstance ?? offering.length, offering.length) : offered.parsedDescription.maxInstance ?? offered.availableInstances + carried;
      const count = entry.count === 'max' ? maxFit : entry.count;
      const w = work.get(gpu.key) ?? { gpu, entries: [] };
      if (w.entries.some((e) => e.type.id === offered.id)) {
        problems.push(`${label}: ${gpu.key} is already given ${offered.id} by another entry; merge the two entries`);
        continue;
      }
      const vfs = 'pf' in entry.select ? entry.select.vfs : undefined;
      const vfParents = vfs === undefined ? null : vfParentsOf(state, gpu, vfs, offered, problems, label);
      if (vfs !== undefined && vfParents === null) continue;
      w.entries.push({ index, entry, type: offered, count, vfParents });
      work.set(gpu.key, w);
    }
  }

  const devices = hostDevices(state);
  const planned: PlannedDevice[] = [];
  const claimed = new Set<string>();
  const plannedGpus = new Set(work.keys());

  for (const w of [...work.values()].sort((a, b) => (a.gpu.key < b.gpu.key ? -1 : 1))) {
    const parentNames = new Set(w.gpu.parents.map((p) => p.name));
    const onGpu = devices.filter((d) => parentNames.has(d.parent));
    for (const e of w.entries) {
      const autostart = e.entry.autostart ?? plan.defaults.autostart;
      const profile = e.type.profile?.profile ?? null;
      const explicit = e.entry.uuids ?? [];
      // Wanted UUIDs per slot: explicit ones first, then deterministic ones.
      const slots: Array<{ uuid: string; parent: string | null }> = [];
      for (let i = 0; i < e.count; i++) {
        const parentForName = e.vfParents?.[i] ?? (w.gpu.sriov ? null : w.gpu.parents[0]!.name);
        slots.push({ uuid: explicit[i] ?? '', parent: parentForName });
      }
      // 1. devices already carrying a wanted explicit UUID, 2. other devices of the type on the GPU (adopted);
      // a slot pinned to a VF (select.vfs) only takes a device on that VF.
      const candidates = onGpu.filter((d) => d.type === e.type.id && !claimed.has(d.uuid));
      const fits = (i: number, c: HostDevice) => e.vfParents === null || c.parent === e.vfParents[i];
      const assigned: Array<HostDevice | null> = slots.map((s, i) => (s.uuid ? candidates.find((c) => c.uuid === s.uuid && fits(i, c)) ?? null : null));
      for (const a of assigned) if (a) claimed.add(a.uuid);
      for (let i = 0; i < slots.length; i++) {
        if (assigned[i] || slots[i]!.uuid) continue;
        const adopt = candidates.filter((c) => !claimed.has(c.uuid) && fits(i, c)).sort((a, b) => Number(b.active) - Number(a.active) || (a.uuid < b.uuid ? -1 : 1))[0];
        if (adopt) {
          assigned[i] = adopt;
          claimed.add(adopt.uuid);
        }
      }
      for (let i = 0; i < slots.length; i++) {
        const dev = assigned[i] ?? null;
        const needs: PlannedDevice['needs'] = [];
        if (dev) {
          if (!dev.active) needs.push('start');
          if (!dev.definition) needs.push('define');
          else if ((dev.definition.start === 'auto') !== autostart) needs.push('set-start');
          planned.push({ uuid: dev.uuid, parent: dev.parent, type: e.type.id, profile, autostart, entry: e.index, gpu: w.gpu.key, needs, adopted: !slots[i]!.uuid, existing: dev });
        } else {
          planned.push({ uuid: slots[i]!.uuid, parent: slots[i]!.parent ?? '', type: e.type.id, profile, autostart, entry: e.index, gpu: w.gpu.key, needs: ['create', 'define'], adopted: false, existing: null });
        }
      }
    }
  }

  // Devices the plan does not hold.
  const plannedUuids = new Set(planned.filter((p) => p.existing).map((p) => p.uuid));
  const unplanned = devices
    .filter((d) => !plannedUuids.has(d.uuid))
    .map((d) => {
      const u = usageOf(state.users, d.uuid);
      const inUse = [...u.running, ...u.inactiveDomains.map((n) => `domain ${n} (off)`)];
      const gpu = state.gpuOfParent.get(d.parent);
      const onPlanned = gpu !== undefined && plannedGpus.has(gpu.key);
      return { ...d, in_use: inUse, removable: inUse.length === 0, reason: onPlanned ? `on ${gpu!.key}, which the plan manages` : 'on a GPU the plan does not manage' };
    });
  // What goes: with --prune, every unplanned device no VM uses; always, what an interrupted apply made and
  // the plan does not hold (before the rules are checked, so that it cannot stand in the plan's way).
  const reclaim = options.reclaim ?? new Set<string>();
  const goes = (d: (typeof unplanned)[number]) => (options.prune && d.removable) || (reclaim.has(d.uuid) && usageOf(state.users, d.uuid).running.length === 0);
  const prune = unplanned.filter((d) => goes(d) && d.active).map((d) => d as HostDevice);
  const pruneDefs = unplanned.filter((d) => goes(d) && !d.active);
  const pruned = new Set([...prune, ...pruneDefs].map((d) => d.uuid));

  // Capacity and placement, per GPU, with what stays and what is added.
  for (const w of work.values()) {
    const parentNames = new Set(w.gpu.parents.map((p) => p.name));
    const staying = [
      ...planned.filter((p) => p.existing && parentNames.has(p.parent)).map((p) => ({ uuid: p.uuid, parent: p.parent, type: p.type })),
      ...unplanned.filter((d) => parentNames.has(d.parent) && !pruned.has(d.uuid) && (d.active || d.definition)).map((d) => ({ uuid: d.uuid, parent: d.parent, type: d.type })),
    ];
    // NVIDIA's placement model covers NVIDIA vGPU types only (as in rules/placement.ts); other drivers' types
    // (the kernel's mtty, mdpy, mbochs samples, s390 devices) have no such rule: available_instances decides.
    const shapes: VgpuShape[] = staying
      .map((s) => findTypeOn(state, s.parent, s.type))
      .filter((t): t is MdevType => t !== undefined && isNvidiaVgpuType(t))
      .map(shapeOf);
    const placement = placementOf(catalogue, w.gpu);
    const busyParents = new Set(staying.map((s) => s.parent));
    const news = planned.filter((p) => !p.existing && p.gpu === w.gpu.key);
    // VFs that select.vfs names for new devices are not free for the entries that let vgpuctl choose.
    const pinned = new Set(w.entries.filter((e) => e.vfParents !== null).flatMap((e) => news.filter((n) => n.entry === e.index).map((n) => n.parent)));
    const otherUsed = new Map<string, number>();
    for (const n of news) {
      const t = w.entries.find((e) => e.index === n.entry)!.type;
      // A VF that select.vfs names must be free: one vGPU per virtual function (checked first: it is the reason).
      if (w.gpu.sriov && pinned.has(n.parent) && busyParents.has(n.parent)) {
        const holder = [...staying, ...news.filter((x) => x !== n)].find((x) => x.parent === n.parent);
        const blocked = unplanned.some((d) => d.parent === n.parent && !pruned.has(d.uuid));
        const problem = `gpus[${n.entry}].select.vfs (${n.profile ?? n.type}): ${n.parent} of ${w.gpu.key} already carries ${holder ? `${holder.type} (${holder.uuid || 'another entry'})` : 'a vGPU'}; one vGPU per virtual function${blocked && !options.prune ? ': run with --prune to remove the devices the plan does not hold' : ''}`;
        problems.push(problem);
        // A device the host carries stands in the way (a difference), not the plan itself.
        if (blocked) conflicts.push(problem);
        break;
      }
      if (!isNvidiaVgpuType(t)) {
        const key = `${n.parent}/${t.id}`;
        // Defined devices the plan starts take an instance too; active devices that are pruned give one back.
        const starting = planned.filter((p) => p.existing && !p.existing.active && p.parent === n.parent && p.type === t.id).length;
        const freed = prune.filter((d) => d.parent === n.parent && d.type === t.id).length;
        const used = (otherUsed.get(key) ?? starting) + 1;
        if (used > t.availableInstances + freed) {
          problems.push(`gpus[${n.entry}].count (${n.profile ?? n.type}): ${n.parent} has no room for another ${t.id} (${t.availableInstances} available)`);
          break;
        }
        otherUsed.set(key, used);
        continue;
      }
      const shape = shapeOf(t);
      const conflict = placementConflict(shapes, shape, placement);
      if (conflict) {
        const blockers = unplanned.filter((d) => parentNames.has(d.parent) && !pruned.has(d.uuid));
        const hint = blockers.length > 0 ? (options.prune ? ` (in use, cannot be pruned: ${blockers.map((b) => `${b.uuid} by ${b.in_use.join(', ')}`).join('; ')})` : '; run with --prune to remove the devices the plan does not hold') : '';
        const problem = `gpus[${n.entry}].${n.type === n.profile ? 'type' : 'profile'} (${n.profile ?? n.type}): ${w.gpu.key}: ${conflict}${hint}`;
        problems.push(problem);
        if (blockers.length > 0) conflicts.push(problem);
        break;
      }
      if (additionalFit(shapes, shape, placement) < 1) {
        problems.push(`gpus[${n.entry}].count (${n.profile ?? n.type}): ${w.gpu.key} has no room for another ${n.profile ?? n.type} (${shapes.filter((s) => s.typeId === t.id).length} of ${t.parsedDescription.maxInstance ?? '?'} already planned or present)`);
        break;
      }
      if (w.gpu.sriov && pinned.has(n.parent)) {
        busyParents.add(n.parent);
      } else if (w.gpu.sriov) {
        const vf = w.gpu.parents.find((p: MdevParent) => !busyParents.has(p.name) && !pinned.has(p.name) && p.types.some((x) => x.id === t.id));
        if (!vf) {
          problems.push(`gpus[${n.entry}] (${n.profile ?? n.type}): ${w.gpu.key} has no free virtual function left for it`);
          break;
        }
        n.parent = vf.name;
        busyParents.add(vf.name);
      }
      shapes.push(shape);
    }
  }

  // Deterministic UUIDs for new devices, now that every new device has its parent: the lowest slot index of
  // the parent whose UUID nothing holds yet. A UUID is held by a device that stays or is adopted (possibly
  // into another slot, when its own slot's device was destroyed) and by an explicit UUID; so a destroyed
  // device comes back with its own UUID, and a new one never collides with a device that is kept.
  const held = new Set<string>([...planned.map((p) => p.uuid).filter((u) => u !== ''), ...devices.filter((d) => !pruned.has(d.uuid)).map((d) => d.uuid)]);
  const nextIndex = new Map<string, number>();
  for (const p of planned) {
    if (p.existing || p.uuid) continue;
    let idx = nextIndex.get(p.parent) ?? 0;
    while (held.has(slotUuid(options.namespace, p.parent, idx))) idx++;
    p.uuid = slotUuid(options.namespace, p.parent, idx);
    held.add(p.uuid);
    nextIndex.set(p.parent, idx + 1);
  }
  const seen = new Map<string, PlannedDevice>();
  for (const p of planned) {
    const other = seen.get(p.uuid);
    if (other) problems.push(`gpus[${p.entry}]: UUID ${p.uuid} is planned twice (also by gpus[${other.entry}])`);
    seen.set(p.uuid, p);
    if (!p.existing) {
      const taken = devices.find((d) => d.uuid === p.uuid && !pruned.has(d.uuid));
      if (taken) problems.push(`gpus[${p.entry}]: UUID ${p.uuid} is already used by ${taken.type} on ${taken.parent}`);
    }
  }
  return { namespace: options.namespace, devices: planned, unplanned, prune: [...prune, ...pruneDefs], problems, invalid, conflicts };
}

export const isConverged = (c: Convergence): boolean => c.devices.every((d) => d.needs.length === 0);
