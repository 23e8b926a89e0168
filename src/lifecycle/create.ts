/** `vgpuctl create`: N active mdevs of a type or profile, placed by the rules, optionally defined. */
import { v4 as uuidv4 } from 'uuid';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import { planPlacement, typeUsage } from '../rules/placement.js';
import type { TypeSelector } from '../rules/type-resolution.js';
import { checkUuidsFree } from '../rules/uuid-rules.js';
import type { Action } from './actions.js';
import type { DeviceSpec } from './backends.js';
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
  return runOperation(lc, 'create', (state, backend) => {
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
  });
}
