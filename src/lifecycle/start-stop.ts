/** `vgpuctl start`, `start --autostart` and `stop`. */
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import { checkNotInUse } from '../rules/device-users.js';
import { planPlacement, typeUsage } from '../rules/placement.js';
import { activeDevice, oneDefinition } from './definitions-lookup.js';
import { findParent, findTypeOn, readHostState } from './host-state.js';
import { isVendorHandle, vendorAutostart, vendorDestroy, vendorStart } from '../vendor-vfio/ops.js';
import { runOperation, type LifecycleContext, type OperationOutcome } from './operation.js';

export interface StartResult {
  started: Array<{ uuid: string; parent: string; type: string; profile: string | null }>;
}

export async function startDevice(lc: LifecycleContext, uuid: string, parent?: string): Promise<OperationOutcome<StartResult>> {
  if (await isVendorHandle(lc, uuid)) return vendorStart(lc, uuid); // vendor-VFIO (src/vendor-vfio)
  return runOperation(lc, 'start', (state, backend, resume) => {
    const def = oneDefinition(state, uuid, parent);
    const active = activeDevice(state, uuid);
    if (active) {
      if (active.parent === def.parent && active.type === def.type) {
        if (resume) {
          // The interrupted start had made the device: write its attributes again (sysfs backend; mdevctl writes them with the create).
          const profile = findTypeOn(state, def.parent, def.type)?.profile?.profile ?? null;
          return { actions: backend.start(def, profile).slice(1), result: { started: [{ uuid, parent: def.parent, type: def.type, profile }] } };
        }
        return { actions: [], result: { started: [] }, notes: [`${uuid} is already active (${def.type} on ${def.parent})`] };
      }
      throw new VgpuctlError('refused', `${uuid} is already active as ${active.type} on ${active.parent}, not as defined (${def.type} on ${def.parent}); stop it first`);
    }
    if (!findParent(state, def.parent)) {
      throw new VgpuctlError(
        'not-found',
        `the parent ${def.parent} of ${uuid} is not present: the GPU is missing, its driver is not loaded, or SR-IOV is not enabled (vgpuctl gpus)`,
      );
    }
    const [placed] = planPlacement(state, lc.catalogue, { selector: { kind: 'type', type: def.type }, count: 1, parent: def.parent });
    const profile = placed!.type.profile?.profile ?? null;
    const gpu = state.gpuOfParent.get(def.parent)!;
    const actions = backend.start(def, profile, { usage: typeUsage(state, gpu, placed!.type) });
    return { actions, result: { started: [{ uuid, parent: def.parent, type: def.type, profile }] } };
  }, JSON.stringify({ uuid, parent: parent ?? null }));
}

export interface AutostartResult {
  started: StartResult['started'];
  already_active: string[];
  skipped: Array<{ uuid: string; parent: string; reason: string }>;
  failed: Array<{ uuid: string; parent: string; error: string }>;
}

/**
 * The boot-time job: every `start: auto` definition whose parent exists is started; devices whose
 * parent is absent are skipped and reported; one failure does not stop the others.
 */
export async function startAutostart(lc: LifecycleContext): Promise<AutostartResult> {
  const state = await readHostState(lc.host);
  // vendor-VFIO definitions (vgpuctl's own state, src/vendor-vfio) start alongside mdevctl's.
  const out: AutostartResult = await vendorAutostart(lc);
  for (const def of state.definitions.filter((d) => d.start === 'auto')) {
    if (!findParent(state, def.parent)) {
      out.skipped.push({ uuid: def.uuid, parent: def.parent, reason: 'parent not present' });
      continue;
    }
    if (!findTypeOn(state, def.parent, def.type)) {
      out.skipped.push({ uuid: def.uuid, parent: def.parent, reason: `${def.parent} does not offer ${def.type}` });
      continue;
    }
    try {
      const r = await startDevice(lc, def.uuid, def.parent);
      if (r.result.started.length > 0) out.started.push(...r.result.started);
      else out.already_active.push(def.uuid);
    } catch (e) {
      out.failed.push({ uuid: def.uuid, parent: def.parent, error: (e as Error).message });
    }
  }
  return out;
}

export interface StopResult {
  stopped: Array<{ uuid: string; parent: string; type: string }>;
}

export async function stopDevice(lc: LifecycleContext, uuid: string, force = false): Promise<OperationOutcome<StopResult>> {
  if (await isVendorHandle(lc, uuid)) {
    const v = await vendorDestroy(lc, uuid, { keepDefinition: true, force, verb: 'stop' });
    return { ...v, result: { stopped: v.actions.length > 0 ? [{ uuid: v.result.uuid, parent: v.result.vf, type: v.result.type }] : [] } };
  }
  return runOperation(lc, 'stop', (state, backend, resume) => {
    const active = activeDevice(state, uuid);
    if (!active && resume) return { actions: [], result: { stopped: [] }, notes: ['the interrupted stop had already removed the device'] };
    if (!active) {
      if (state.definitions.some((d) => d.uuid === uuid)) return { actions: [], result: { stopped: [] }, notes: [`${uuid} is not active (already stopped)`] };
      throw new VgpuctlError('not-found', `no mdev ${uuid} on this host, active or defined; see 'vgpuctl list --all'`);
    }
    checkNotInUse(state.users, uuid, 'stop', force);
    const profile = findTypeOn(state, active.parent, active.type)?.profile?.profile ?? null;
    return {
      actions: [backend.remove({ uuid, parent: active.parent, type: active.type, profile })],
      result: { stopped: [{ uuid, parent: active.parent, type: active.type }] },
    };
  }, JSON.stringify({ uuid, force }));
}
