/** `vgpuctl create`: N active mdevs of a type or profile, placed by the rules, optionally defined. */
import { v4 as uuidv4 } from 'uuid';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import { planPlacement, typeUsage } from '../rules/placement.js';
import type { TypeSelector } from '../rules/type-resolution.js';
import { checkUuidsFree } from '../rules/uuid-rules.js';
import type { Action } from './actions.js';
import type { Backend, DeviceSpec } from './backends.js';
import { activeDevice, definitionsOf, refuseBrokenDefinition } from './definitions-lookup.js';
import { findTypeOn, type HostState } from './host-state.js';
import type { Intent } from './intent.js';
import { routesToVendor, vendorCreate } from '../vendor-vfio/ops.js';
import { runOperation, type LifecycleContext, type OperationOutcome } from './operation.js';

export interface CreateRequest {
  selector: TypeSelector;
  parent?: string;
  count?: number;
  uuids?: string[];
  spread?: boolean;
  define?: { start: 'auto' | 'manual' };
}

export interface CreateResult {
  created: DeviceSpec[];
  defined: string[];
}

export async function createDevices(lc: LifecycleContext, req: CreateRequest): Promise<OperationOutcome<CreateResult>> {
  const uuids = req.uuids ?? [];
  const count = req.count ?? (uuids.length > 0 ? uuids.length : 1);
  if (uuids.length > 0 && uuids.length !== count) {
    throw new VgpuctlError('invalid-input', `--count ${count} but ${uuids.length} UUID(s) given with -u; give one UUID per device, or leave out -u`);
  }
  // Generated UUIDs are random v4 (as uuidgen and mdevctl make them); given ones are checked by the rules.
  // vendor-VFIO VFs (nvidia/current_vgpu_type, no mdev bus): src/vendor-vfio.
  if (await routesToVendor(lc, req.selector, req.parent)) return vendorCreate(lc, { ...req, count });
  const chosen = uuids.length > 0 ? uuids : Array.from({ length: count }, () => uuidv4());
  // The request as the operator gave it: a re-run of the same command line finishes an interrupted one
  // (with the UUIDs that run generated, when it generated them).
  const key = JSON.stringify({ selector: req.selector, parent: req.parent ?? null, count, uuids: uuids.length > 0 ? uuids : null, spread: req.spread ?? false, define: req.define ?? null });
  return runOperation(lc, 'create', (state, backend, resume) => {
    if (resume && resume.creates.length === count) return finishCreate(state, backend, resume, req.define);
    checkUuidsFree(state, chosen);
    const placed = planPlacement(state, lc.catalogue, { selector: req.selector, count, parent: req.parent, spread: req.spread });
    const devices: DeviceSpec[] = placed.map((p, i) => ({ uuid: chosen[i]!, parent: p.parent, type: p.type.id, profile: p.type.profile?.profile ?? null }));
    const actions: Action[] = [];
    for (const [i, d] of devices.entries()) {
      const gpu = state.gpuOfParent.get(d.parent)!;
      actions.push(backend.create(d, { usage: typeUsage(state, gpu, placed[i]!.type) }));
    }
    if (req.define) {
      for (const d of devices) actions.push(...backend.define({ ...d, start: req.define.start, attrs: [] }, null, null));
    }
    return { actions, result: { created: devices, defined: req.define ? devices.map((d) => d.uuid) : [] } };
  }, key);
}

/**
 * Finishes an interrupted create: its devices, in its order, with its UUIDs, parents and types. One that
 * exists with exactly that parent and type is taken over; a missing one is created; a missing definition
 * (--define) is written, an existing one taken over when it says exactly what was asked. Anything else
 * under one of those UUIDs is refused, as a UUID in use.
 */
function finishCreate(state: HostState, backend: Backend, resume: Intent, define: CreateRequest['define']) {
  const devices: DeviceSpec[] = resume.creates.map((c) => ({ ...c, profile: findTypeOn(state, c.parent, c.type)?.profile?.profile ?? null }));
  const actions: Action[] = [];
  const adopted: string[] = [];
  for (const d of devices) {
    const active = activeDevice(state, d.uuid);
    if (active && (active.parent !== d.parent || active.type !== d.type)) {
      throw new VgpuctlError(
        'refused',
        `UUID ${d.uuid} is active as ${active.type} on ${active.parent}, not as ${d.type} on ${d.parent} as the interrupted create made it; stop it ('vgpuctl stop -u ${d.uuid}') or create with other UUIDs`,
      );
    }
    if (active) {
      adopted.push(d.uuid);
      continue;
    }
    const gpu = state.gpuOfParent.get(d.parent);
    const t = findTypeOn(state, d.parent, d.type);
    if (!gpu || !t) throw new VgpuctlError('not-found', `${d.parent} no longer offers ${d.type}, which the interrupted create was making ${d.uuid} of; see 'vgpuctl types'`);
    actions.push(backend.create(d, { usage: typeUsage(state, gpu, t) }));
  }
  for (const d of devices) {
    refuseBrokenDefinition(state, d.uuid, d.parent);
    const defs = definitionsOf(state, d.uuid);
    const ours = define && defs.length === 1 && defs[0]!.parent === d.parent && defs[0]!.type === d.type && defs[0]!.start === define.start && defs[0]!.attrs.length === 0;
    if (defs.length > 0 && !ours) {
      const e = defs[0]!;
      throw new VgpuctlError('refused', `UUID ${d.uuid} is already defined (${e.type} on ${e.parent}, start ${e.start}, ${e.file}), not as the interrupted create asked; undefine it or create with other UUIDs`);
    }
    if (define && !ours) actions.push(...backend.define({ ...d, start: define.start, attrs: [] }, null, null));
  }
  const notes = adopted.length > 0 ? [`took over ${adopted.length} device(s) the interrupted create had made: ${adopted.join(', ')}`] : [];
  return { actions, notes, result: { created: devices, defined: define ? devices.map((d) => d.uuid) : [] } };
}
