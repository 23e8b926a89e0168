/**
 * `vgpuctl destroy`: stop, undefine, and remove the per-device boot units (StackHPC's
 * nvidia-mdev@UUID.service) — the three steps seed 002 does by hand when changing vGPU types.
 */
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import { findDeviceUnits } from '../host/systemd-units.js';
import { checkNotInUse } from '../rules/device-users.js';
import type { Action } from './actions.js';
import { activeDevice, definitionContent, definitionsOf } from './definitions-lookup.js';
import { findTypeOn } from './host-state.js';
import { isVendorHandle, vendorDestroy } from '../vendor-vfio/ops.js';
import { runOperation, type LifecycleContext, type OperationOutcome } from './operation.js';

export interface DestroyRequest {
  uuid: string;
  keepDefinition?: boolean;
  force?: boolean;
}

export interface DestroyResult {
  destroyed: { uuid: string; stopped: boolean; undefined: string[]; units_removed: string[]; /** vendor-VFIO: the VF */ vf?: string };
}

export async function destroyDevice(lc: LifecycleContext, req: DestroyRequest): Promise<OperationOutcome<DestroyResult>> {
  // vendor-VFIO vGPUs (handle = UUIDv5 of the VF address): src/vendor-vfio.
  if (await isVendorHandle(lc, req.uuid)) {
    const v = await vendorDestroy(lc, req.uuid, { keepDefinition: req.keepDefinition ?? false, force: req.force ?? false, verb: 'destroy' });
    return { ...v, result: { destroyed: { uuid: v.result.uuid, vf: v.result.vf, stopped: v.result.stopped, undefined: v.result.undefined, units_removed: [] } } };
  }
  const units = await findDeviceUnits(lc.host);
  const key = JSON.stringify({ uuid: req.uuid, keepDefinition: req.keepDefinition ?? false, force: req.force ?? false });
  return runOperation(lc, 'destroy', async (state, backend, resume) => {
    const { uuid } = req;
    const active = activeDevice(state, uuid);
    const defs = req.keepDefinition ? [] : definitionsOf(state, uuid);
    const mine = units.filter((u) => u.uuid === uuid);
    if (!active && definitionsOf(state, uuid).length === 0 && mine.length === 0) {
      // The interrupted destroy of this very request had done it all.
      if (resume) return { actions: [], notes: ['the interrupted destroy had already removed everything'], result: { destroyed: { uuid, stopped: false, undefined: [], units_removed: [] } } };
      throw new VgpuctlError('not-found', `no mdev ${uuid} on this host: not active, not defined, no boot unit; see 'vgpuctl list --all'`);
    }
    checkNotInUse(state.users, uuid, 'destroy', req.force ?? false);
    const actions: Action[] = [];
    if (active) {
      const profile = findTypeOn(state, active.parent, active.type)?.profile?.profile ?? null;
      actions.push(backend.remove({ uuid, parent: active.parent, type: active.type, profile }));
    }
    for (const d of defs) actions.push(backend.undefine(d, await definitionContent(state, d)));
    const notes: string[] = [];
    for (const u of mine) {
      actions.push({
        kind: 'remove-file',
        path: u.path,
        summary: `remove ${u.kind === 'wants-link' ? 'boot link' : 'unit file'} ${u.path}`,
        undo:
          u.kind === 'wants-link'
            ? { kind: 'write-link', path: u.path, target: u.target ?? '', summary: `restore ${u.path}` }
            : { kind: 'write-file', path: u.path, content: u.content ?? '', summary: `restore ${u.path}` },
      });
      // A dry run removes nothing: say what it would remove.
      notes.push(`${lc.dryRun ? 'would remove' : 'removed'} ${u.path}`);
    }
    if (mine.length > 0 && !lc.dryRun) notes.push("run 'systemctl daemon-reload' so systemd forgets the removed unit");
    return {
      actions,
      notes,
      result: { destroyed: { uuid, stopped: active !== undefined, undefined: defs.map((d) => d.parent), units_removed: mine.map((u) => u.path) } },
    };
  }, key);
}
