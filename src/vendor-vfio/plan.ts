/**
 * Plans on hosts with vendor-VFIO GPUs: the entries that select vendor-VFIO GPUs are converged here (beside
 * src/plan/converge.ts, which keeps the mdev GPUs), so one plan can hold both kinds of GPU. A vGPU is named
 * by its VF (handle = UUIDv5 of the address); vGPUs of the planned type already on the GPU are adopted,
 * definitions go to vgpuctl's own state file, and `apply` after a reboot re-creates them.
 */
import type { Catalogue } from '../catalogue/catalogue.js';
import type { Action } from '../lifecycle/actions.js';
import type { LifecycleContext } from '../lifecycle/operation.js';
import type { GpuEntry, Plan } from '../plan/plan-file.js';
import { discoverParents } from '../host/mdev.js';
import { parentsOffering } from '../rules/type-resolution.js';
import { additionalFit, type VgpuShape } from '../rules/gpu-capacity.js';
import { typeIdOf } from './creatable.js';
import { gpuOfVf, hasVendorVfio, profileOfId, readVendorState, vfHandle, vfOf, type VendorGpu, type VendorState, type VendorVf } from './discovery.js';
import { createAction, destroyAction, placementOfGpu, resolveVendorId, vendorShape } from './lifecycle.js';
import { requireReadableDefinitions, writeDefinitionsAction, type VendorDefinition } from './state.js';

export interface VendorPlanDevice {
  uuid: string;
  parent: string;
  vf: string;
  type: string;
  profile: string | null;
  autostart: boolean;
  entry: number;
  gpu: string;
  adopted: boolean;
  needs: Array<'create' | 'start' | 'define' | 'set-start'>;
}

/** A vendor vGPU (active on its VF, defined, or both) that the plan does not hold, in the shape of converge's. */
export interface VendorUnplanned {
  uuid: string;
  parent: string;
  type: string;
  active: boolean;
  defined: boolean;
  in_use: string[];
  reason: string;
  pruned: boolean;
}

export interface VendorPlanPart {
  /** The plan without the vendor-only entries, for converge(); mdevIndex maps its entries back. */
  mdevPlan: Plan;
  mdevIndex: number[];
  devices: VendorPlanDevice[];
  unplanned: VendorUnplanned[];
  /** remove/undefine of the unplanned vGPUs --prune takes away (before the plan's own changes). */
  pruneChanges: Array<{ action: 'remove' | 'undefine'; uuid: string; parent: string; type: string }>;
  actions: Action[];
  problems: string[];
  /** Problems that only unplanned vGPUs present cause (--prune or freeing a VF changes them). */
  conflicts: string[];
  /** Per planned GPU and type: how many more would still fit after the plan (as converge's report). */
  capacity: Array<{ parent: string; type: string; profile: string | null; available_after: number | null }>;
}

const selectorOf = (e: GpuEntry) => (e.type !== undefined ? ({ kind: 'type', type: e.type } as const) : ({ kind: 'profile', profile: e.profile! } as const));

function vendorGpusFor(vs: VendorState, e: GpuEntry): VendorGpu[] {
  const s = e.select;
  if ('address' in s) return vs.gpus.filter((g) => g.pf === s.address);
  if ('pf' in s) return vs.gpus.filter((g) => g.pf === s.pf);
  if ('board' in s) return vs.gpus.filter((g) => g.board?.toUpperCase() === s.board.toUpperCase());
  return vs.gpus;
}

/**
 * `prune`: remove the unplanned vGPUs no VM uses. `reclaim`: handles an interrupted apply created (its
 * journal); those the plan does not hold go too, unless a running VM uses them.
 */
export async function vendorPlanPart(lc: Pick<LifecycleContext, 'host' | 'catalogue'>, plan: Plan, opts: { prune?: boolean; reclaim?: Set<string> } = {}): Promise<VendorPlanPart> {
  const none: VendorPlanPart = { mdevPlan: plan, mdevIndex: plan.gpus.map((_, i) => i), devices: [], unplanned: [], pruneChanges: [], actions: [], problems: [], conflicts: [], capacity: [] };
  if (!(await hasVendorVfio(lc.host))) {
    const vs = await readVendorState(lc.host, lc.catalogue);
    if (vs.definitions.length === 0) return none;
  }
  const vs = await readVendorState(lc.host, lc.catalogue);
  const mdevParents = await discoverParents(lc.host);
  const keep: number[] = [];
  const vendorEntries: Array<{ index: number; entry: GpuEntry; gpus: VendorGpu[] }> = [];
  for (const [index, entry] of plan.gpus.entries()) {
    const gpus = vendorGpusFor(vs, entry);
    const s = entry.select;
    const mdevToo = 'all' in s ? parentsOffering(mdevParents, selectorOf(entry)).length > 0 : 'board' in s ? mdevParents.some((p) => p.types.some((t) => t.profile?.board.toUpperCase() === s.board.toUpperCase())) : gpus.length === 0;
    const vendorToo = gpus.length > 0 && ('all' in s ? resolveVendorId(vs, lc.catalogue, selectorOf(entry)) !== null : true);
    if (vendorToo) vendorEntries.push({ index, entry, gpus });
    if (mdevToo || !vendorToo) keep.push(index);
  }
  const problems: string[] = [];
  const devices: VendorPlanDevice[] = [];
  const actions: Action[] = [];
  const defs = new Map<string, VendorDefinition>(vs.definitions.map((d) => [d.vf, d]));
  let defsChanged = false;
  const claimed = new Set<string>();
  const managed = new Set<string>();

  // Pass 1: what each entry adopts (VFs carrying its type, then definitions of it on free VFs).
  interface Work { index: number; entry: GpuEntry; g: VendorGpu; id: number; count: number; profile: string | null; autostart: boolean; adopt: VendorVf[] }
  const work: Work[] = [];
  for (const { index, entry, gpus } of vendorEntries) {
    const label = `gpus[${index}] (${entry.profile ?? entry.type})`;
    const id = resolveVendorId(vs, lc.catalogue, selectorOf(entry));
    const autostart = entry.autostart ?? plan.defaults.autostart;
    for (const g of gpus) {
      managed.add(g.pf);
      if ('pf' in entry.select && entry.select.vfs !== undefined) {
        problems.push(`${label}: select.vfs places mdev vGPUs on chosen VFs; ${g.pf} is a vendor-VFIO GPU, where vgpuctl picks the VFs: leave vfs out`);
        continue;
      }
      if (id === null) {
        problems.push(`${label}: ${g.pf} offers no such vGPU type (vgpuctl types -p ${g.pf})`);
        continue;
      }
      const shape = vendorShape(vs, lc.catalogue, id);
      const maxFit = Math.min(shape.maxInstance ?? g.vfs.length, g.vfs.length);
      const count = entry.count === 'max' ? maxFit : entry.count;
      const carrying = g.vfs.filter((v) => v.current === id && !claimed.has(v.address));
      const definedFree = g.vfs.filter((v) => v.current === 0 && defs.get(v.address)?.type === typeIdOf(id) && !claimed.has(v.address));
      const adopt = [...carrying, ...definedFree].slice(0, count);
      for (const v of adopt) claimed.add(v.address);
      work.push({ index, entry, g, id, count, profile: profileOfId(vs, lc.catalogue, id)?.profile ?? null, autostart, adopt });
    }
  }

  // What the plan does not hold: active VFs and definitions nobody adopted. --prune takes away those no VM uses.
  const unplanned: VendorUnplanned[] = [];
  const pruneChanges: VendorPlanPart['pruneChanges'] = [];
  const pruneActions: Action[] = [];
  const prunedVfs = new Set<string>();
  const addrs = [...new Set([...vs.vfs.filter((v) => v.current !== 0).map((v) => v.address), ...vs.definitions.map((d) => d.vf)])].sort();
  for (const a of addrs.filter((x) => !claimed.has(x))) {
    const v = vfOf(vs, a);
    const def = defs.get(a) ?? null;
    const active = v !== undefined && v.current !== 0;
    const type = active ? typeIdOf(v.current) : def!.type;
    const u = vs.users.get(a);
    const inUse = [...(u?.running ?? []), ...(u?.inactiveDomains ?? []).map((n) => `domain ${n} (off)`)];
    const g = gpuOfVf(vs, a);
    const reason = g === undefined ? 'its virtual function is not present' : managed.has(g.pf) ? `on ${g.pf}, which the plan manages` : 'on a GPU the plan does not manage';
    const pruned = (opts.prune === true && inUse.length === 0) || (opts.reclaim?.has(vfHandle(a)) === true && (u?.running.length ?? 0) === 0);
    unplanned.push({ uuid: vfHandle(a), parent: a, type, active, defined: def !== null, in_use: inUse, reason, pruned });
    if (!pruned) continue;
    prunedVfs.add(a);
    if (active) {
      pruneActions.push(destroyAction(a, v.current, profileOfId(vs, lc.catalogue, v.current)?.profile ?? null));
      pruneChanges.push({ action: 'remove', uuid: vfHandle(a), parent: a, type });
    }
    if (def) {
      defs.delete(a);
      defsChanged = true;
      pruneChanges.push({ action: 'undefine', uuid: vfHandle(a), parent: a, type: def.type });
    }
  }

  // Pass 2, per GPU with what stays on it: start adopted definitions, create the rest on free VFs.
  const conflicts: string[] = [];
  const shapesOf = new Map<string, VgpuShape[]>();
  const shapesOn = (g: VendorGpu) => {
    let s = shapesOf.get(g.pf);
    if (!s) shapesOf.set(g.pf, (s = g.vfs.filter((v) => v.current !== 0 && !prunedVfs.has(v.address)).map((v) => vendorShape(vs, lc.catalogue, v.current))));
    return s;
  };
  // A VF can take the type when its table lists it now, or (after --prune freed the GPU) the GPU knows the type.
  const canTake = (g: VendorGpu, v: VendorVf, id: number) =>
    v.creatable.some((t) => t.id === id) || (g.vfs.some((x) => prunedVfs.has(x.address) && x.current !== 0) && (v.current === 0 || prunedVfs.has(v.address)) && knownOn(g, id));
  const knownOn = (g: VendorGpu, id: number) => vs.names.has(id) || (g.board !== null && lc.catalogue.profileByTypeId(typeIdOf(id))?.board.board.toUpperCase() === g.board.toUpperCase());
  for (const { index, entry, g, id, count, profile, autostart, adopt } of work) {
    const label = `gpus[${index}] (${entry.profile ?? entry.type})`;
    const shape = vendorShape(vs, lc.catalogue, id);
    const shapes = shapesOn(g);
    const placement = placementOfGpu(lc.catalogue, g);
    const blockedByUnplanned = unplanned.some((u) => u.active && !u.pruned && g.vfs.some((v) => v.address === u.parent));
    for (const v of adopt) {
      const def = defs.get(v.address);
      const needs: VendorPlanDevice['needs'] = [];
      if (v.current === 0) {
        if (!canTake(g, v, id) || additionalFit(shapes, shape, placement) < 1) {
          const p = `${label}: ${g.pf}: the definition on ${v.address} cannot be started: type ${id} is not creatable there now`;
          problems.push(p);
          if (blockedByUnplanned) conflicts.push(p);
          continue;
        }
        needs.push('start');
        actions.push(createAction(v.address, id, profile));
        shapes.push(shape);
      }
      // A definition of another type on a VF that carries the planned one (an apply killed between its
      // destroy/create and its definitions write) is rewritten: the boot job would start the wrong type.
      const stale = def !== undefined && def.type !== typeIdOf(id);
      if (!def || stale) needs.push('define');
      else if ((def.start === 'auto') !== autostart) needs.push('set-start');
      if (!def || stale || (def.start === 'auto') !== autostart) {
        defs.set(v.address, { vf: v.address, type: typeIdOf(id), profile, start: autostart ? 'auto' : 'manual' });
        defsChanged = true;
      }
      devices.push({ uuid: vfHandle(v.address), parent: v.address, vf: v.address, type: typeIdOf(id), profile, autostart, entry: index, gpu: g.pf, adopted: true, needs });
    }
    const want = count - adopt.length;
    const free = g.vfs.filter((v) => (v.current === 0 || prunedVfs.has(v.address)) && !claimed.has(v.address) && !defs.has(v.address) && canTake(g, v, id));
    const fit = Math.min(free.length, additionalFit(shapes, shape, placement));
    if (want > fit) {
      const p = `${label}: ${g.pf} has room for ${fit} more ${profile ?? typeIdOf(id)} (${adopt.length} present, ${count} planned)`;
      problems.push(p);
      if (blockedByUnplanned) conflicts.push(p);
      continue;
    }
    for (const v of free.slice(0, want)) {
      claimed.add(v.address);
      shapes.push(shape);
      actions.push(createAction(v.address, id, profile));
      defs.set(v.address, { vf: v.address, type: typeIdOf(id), profile, start: autostart ? 'auto' : 'manual' });
      defsChanged = true;
      devices.push({ uuid: vfHandle(v.address), parent: v.address, vf: v.address, type: typeIdOf(id), profile, autostart, entry: index, gpu: g.pf, adopted: false, needs: ['create', 'define'] });
    }
  }
  const capacity: VendorPlanPart['capacity'] = [];
  for (const { g, id, profile } of work) {
    if (capacity.some((x) => x.parent === g.pf && x.type === typeIdOf(id))) continue;
    const free = g.vfs.filter((v) => (v.current === 0 || prunedVfs.has(v.address)) && !claimed.has(v.address) && !defs.has(v.address) && canTake(g, v, id)).length;
    const fit = additionalFit(shapesOn(g), vendorShape(vs, lc.catalogue, id), placementOfGpu(lc.catalogue, g));
    capacity.push({ parent: g.pf, type: typeIdOf(id), profile, available_after: Math.min(free, Number.isFinite(fit) ? fit : free) });
  }
  if (defsChanged) requireReadableDefinitions(vs);
  const all = [...pruneActions, ...actions];
  if (defsChanged) all.push(writeDefinitionsAction(vs.stateContent, [...defs.values()], 'write the vendor-VFIO vGPU definitions of the plan'));
  return { mdevPlan: { ...plan, gpus: keep.map((i) => plan.gpus[i]!) }, mdevIndex: keep, devices, unplanned, pruneChanges, actions: all, problems, conflicts, capacity };
}

/** converge() numbered the kept entries from 0: put the plan's own numbers back into its messages. */
export const remapEntry = (part: VendorPlanPart, i: number): number => part.mdevIndex[i] ?? i;
export const remapProblem = (part: VendorPlanPart, p: string): string => p.replace(/^gpus\[(\d+)\]/, (_, n) => `gpus[${remapEntry(part, Number(n))}]`);
export type { Catalogue };
