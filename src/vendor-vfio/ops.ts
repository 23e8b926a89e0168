/**
 * The vendor-VFIO side of the changing commands, in the same shape as the mdev side (runOperation: read,
 * check every rule, write down actions, perform them with rollback under the host lock).
 */
import { discoverParents } from '../host/mdev.js';
import { runOperation, type LifecycleContext, type OperationOutcome } from '../lifecycle/operation.js';
import { parentsOffering, type TypeSelector } from '../rules/type-resolution.js';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import { hasVendorVfio, readVendorState, vfHandle } from './discovery.js';
import { recordedVfs, runVendorOperation, vendorKey } from './resume.js';
import { findVendorDevice, isVendorTarget, planVendorCreate, planVendorDestroy, planVendorStart, resolveVendorId, vendorBoardKnows, type VendorDevice } from './lifecycle.js';

/** Does a create request go to the vendor interface? Its parent is a vendor VF/PF, or no mdev parent offers the type but a VF knows it. */
export async function routesToVendor(lc: LifecycleContext, selector: TypeSelector, parent: string | undefined): Promise<boolean> {
  if (!(await hasVendorVfio(lc.host))) return false;
  const vs = await readVendorState(lc.host, lc.catalogue);
  if (parent !== undefined) return isVendorTarget(vs, parent);
  const mdev = await discoverParents(lc.host);
  if (parentsOffering(mdev, selector).length > 0) return false;
  return resolveVendorId(vs, lc.catalogue, selector) !== null || (selector.kind === 'profile' && vendorBoardKnows(vs, lc.catalogue, selector.profile));
}

export async function vendorCreate(
  lc: LifecycleContext,
  req: { selector: TypeSelector; parent?: string; count?: number; uuids?: string[]; spread?: boolean; define?: { start: 'auto' | 'manual' } },
): Promise<OperationOutcome<{ created: VendorDevice[]; defined: string[] }>> {
  if (req.uuids && req.uuids.length > 0) {
    throw new VgpuctlError('usage', 'vGPUs on vendor-VFIO virtual functions are named by their VF (their handle is derived from its address); leave out -u');
  }
  const request = { selector: req.selector, parent: req.parent, count: req.count ?? 1, spread: req.spread, define: req.define };
  return runVendorOperation(lc, 'create', { ...request, parent: req.parent ?? null, spread: req.spread ?? false, define: req.define ?? null }, (vs, resume) => {
    const p = planVendorCreate(vs, lc.catalogue, request, recordedVfs(vs, resume));
    return { actions: p.actions, result: { created: p.created, defined: p.defined } };
  });
}

/** Is this UUID the handle of a vendor vGPU (active or defined)? */
export async function isVendorHandle(lc: LifecycleContext, uuid: string): Promise<boolean> {
  if (!(await hasVendorVfio(lc.host))) {
    const vs = await readVendorState(lc.host, lc.catalogue);
    return vs.definitions.some((d) => vfHandle(d.vf) === uuid);
  }
  return findVendorDevice(await readVendorState(lc.host, lc.catalogue), uuid) !== null;
}

export async function vendorDestroy(lc: LifecycleContext, uuid: string, opts: { keepDefinition: boolean; force: boolean; verb: 'destroy' | 'stop' }) {
  const key = vendorKey(opts.verb, { uuid, keepDefinition: opts.keepDefinition, force: opts.force });
  return runOperation(
    lc,
    opts.verb,
    async () => {
      const vs = await readVendorState(lc.host, lc.catalogue);
      const p = planVendorDestroy(vs, lc.catalogue, uuid, opts);
      if (!p) throw new VgpuctlError('not-found', `no vGPU ${uuid} on this host; see 'vgpuctl list --all'`);
      const notes = p.actions.length === 0 ? [`${p.result.vf} carries no vGPU (already stopped)`] : [];
      return { actions: p.actions, notes, result: p.result };
    },
    key,
  );
}

export async function vendorStart(lc: LifecycleContext, uuid: string) {
  return runOperation(lc, 'start', async () => {
    const vs = await readVendorState(lc.host, lc.catalogue);
    const d = findVendorDevice(vs, uuid);
    if (!d?.def) throw new VgpuctlError('not-found', `no definition ${uuid} on this host; see 'vgpuctl list --defined'`);
    const p = planVendorStart(vs, lc.catalogue, d.def);
    const started = p.already ? [] : [{ uuid: vfHandle(d.vf), parent: d.vf, type: d.def.type, profile: d.def.profile }];
    return { actions: p.actions, result: { started }, notes: p.already ? [`${uuid} is already active (${d.def.type} on ${d.vf})`] : [] };
  }, vendorKey('start', { uuid }));
}

export interface VendorAutostart {
  started: Array<{ uuid: string; parent: string; type: string; profile: string | null }>;
  already_active: string[];
  skipped: Array<{ uuid: string; parent: string; reason: string }>;
  failed: Array<{ uuid: string; parent: string; error: string }>;
}

/** The boot job for vendor definitions: each start-auto definition whose VF exists; one failure does not stop the rest. */
export async function vendorAutostart(lc: LifecycleContext): Promise<VendorAutostart> {
  const out: VendorAutostart = { started: [], already_active: [], skipped: [], failed: [] };
  const vs = await readVendorState(lc.host, lc.catalogue);
  for (const def of vs.definitions.filter((d) => d.start === 'auto')) {
    const uuid = vfHandle(def.vf);
    if (!vs.vfs.some((v) => v.address === def.vf)) {
      out.skipped.push({ uuid, parent: def.vf, reason: 'virtual function not present (vgpuctl sriov enable)' });
      continue;
    }
    try {
      const r = await vendorStart(lc, uuid);
      if (r.result.started.length > 0) out.started.push(...r.result.started);
      else out.already_active.push(uuid);
    } catch (e) {
      out.failed.push({ uuid, parent: def.vf, error: (e as Error).message });
    }
  }
  return out;
}
