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
import { additionalFit } from '../rules/gpu-capacity.js';
import { typeIdOf } from './creatable.js';
import { hasVendorVfio, profileOfId, readVendorState, vfHandle, type VendorGpu, type VendorState } from './discovery.js';
import { createAction, placementOfGpu, resolveVendorId, vendorShape } from './lifecycle.js';
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

export interface VendorPlanPart {
  /** The plan without the vendor-only entries, for converge(); mdevIndex maps its entries back. */
  mdevPlan: Plan;
  mdevIndex: number[];
  devices: VendorPlanDevice[];
  actions: Action[];
  problems: string[];
}

const selectorOf = (e: GpuEntry) => (e.type !== undefined ? ({ kind: 'type', type: e.type } as const) : ({ kind: 'profile', profile: e.profile! } as const));

function vendorGpusFor(vs: VendorState, e: GpuEntry): VendorGpu[] {
  const s = e.select;
  if ('address' in s) return vs.gpus.filter((g) => g.pf === s.address);
  if ('pf' in s) return vs.gpus.filter((g) => g.pf === s.pf);
  if ('board' in s) return vs.gpus.filter((g) => g.board?.toUpperCase() === s.board.toUpperCase());
  return vs.gpus;
}

export async function vendorPlanPart(lc: LifecycleContext, plan: Plan): Promise<VendorPlanPart> {
  const none: VendorPlanPart = { mdevPlan: plan, mdevIndex: plan.gpus.map((_, i) => i), devices: [], actions: [], problems: [] };
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
  for (const { index, entry, gpus } of vendorEntries) {
    const label = `gpus[${index}] (${entry.profile ?? entry.type})`;
    const id = resolveVendorId(vs, lc.catalogue, selectorOf(entry));
    const autostart = entry.autostart ?? plan.defaults.autostart;
    for (const g of gpus) {
      if (id === null) {
        problems.push(`${label}: ${g.pf} offers no such vGPU type (vgpuctl types -p ${g.pf})`);
        continue;
      }
      const shape = vendorShape(vs, lc.catalogue, id);
      const maxFit = Math.min(shape.maxInstance ?? g.vfs.length, g.vfs.length);
      const count = entry.count === 'max' ? maxFit : entry.count;
      const profile = profileOfId(vs, lc.catalogue, id)?.profile ?? null;
      // Adopt: VFs carrying the type, then definitions of it whose VF is free (started after a reboot).
      const carrying = g.vfs.filter((v) => v.current === id && !claimed.has(v.address));
      const definedFree = g.vfs.filter((v) => v.current === 0 && defs.get(v.address)?.type === typeIdOf(id) && !claimed.has(v.address));
      const adopt = [...carrying, ...definedFree].slice(0, count);
      const shapes = g.vfs.filter((v) => v.current !== 0).map((v) => vendorShape(vs, lc.catalogue, v.current));
      for (const v of adopt) {
        claimed.add(v.address);
        const def = defs.get(v.address);
        const needs: VendorPlanDevice['needs'] = [];
        if (v.current === 0) {
          if (!v.creatable.some((t) => t.id === id) || additionalFit(shapes, shape, placementOfGpu(lc.catalogue, g)) < 1) {
            problems.push(`${label}: ${g.pf}: the definition on ${v.address} cannot be started: type ${id} is not creatable there now`);
            continue;
          }
          needs.push('start');
          actions.push(createAction(v.address, id, profile));
          shapes.push(shape);
        }
        if (!def) needs.push('define');
        else if ((def.start === 'auto') !== autostart) needs.push('set-start');
        if (!def || (def.start === 'auto') !== autostart) {
          defs.set(v.address, { vf: v.address, type: typeIdOf(id), profile, start: autostart ? 'auto' : 'manual' });
          defsChanged = true;
        }
        devices.push({ uuid: vfHandle(v.address), parent: v.address, vf: v.address, type: typeIdOf(id), profile, autostart, entry: index, gpu: g.pf, adopted: true, needs });
      }
      const want = count - adopt.length;
      const free = g.vfs.filter((v) => v.current === 0 && !claimed.has(v.address) && !defs.has(v.address) && v.creatable.some((t) => t.id === id));
      const fit = Math.min(free.length, additionalFit(shapes, shape, placementOfGpu(lc.catalogue, g)));
      if (want > fit) {
        problems.push(`${label}: ${g.pf} has room for ${fit} more ${profile ?? typeIdOf(id)} (${adopt.length} present, ${count} planned)`);
        continue;
      }
      for (const v of free.slice(0, want)) {
        claimed.add(v.address);
        actions.push(createAction(v.address, id, profile));
        defs.set(v.address, { vf: v.address, type: typeIdOf(id), profile, start: autostart ? 'auto' : 'manual' });
        defsChanged = true;
        devices.push({ uuid: vfHandle(v.address), parent: v.address, vf: v.address, type: typeIdOf(id), profile, autostart, entry: index, gpu: g.pf, adopted: false, needs: ['create', 'define'] });
      }
    }
  }
  if (defsChanged) requireReadableDefinitions(vs);
  if (defsChanged) actions.push(writeDefinitionsAction(vs.stateContent, [...defs.values()], 'write the vendor-VFIO vGPU definitions of the plan'));
  return { mdevPlan: { ...plan, gpus: keep.map((i) => plan.gpus[i]!) }, mdevIndex: keep, devices, actions, problems };
}

/** converge() numbered the kept entries from 0: put the plan's own numbers back into its messages. */
export const remapEntry = (part: VendorPlanPart, i: number): number => part.mdevIndex[i] ?? i;
export const remapProblem = (part: VendorPlanPart, p: string): string => p.replace(/^gpus\[(\d+)\]/, (_, n) => `gpus[${remapEntry(part, Number(n))}]`);
export type { Catalogue };
