/**
 * Leftovers of vendor-VFIO vGPUs for `cleanup` and `health`: definitions in /etc/vgpuctl/vendor-vgpus.json
 * whose virtual function no longer exists (SR-IOV disabled, GPU gone or moved). Definitions of a VF that
 * exists are never orphans, whatever the VF carries now.
 */
import type { Catalogue } from '../catalogue/catalogue.js';
import type { HostRoot } from '../host/host-root.js';
import type { Action } from '../lifecycle/actions.js';
import { numericTypeId, typeIdOf } from './creatable.js';
import { profileOfId, readVendorState, vfHandle } from './discovery.js';
import { destroyAction } from './lifecycle.js';
import { requireReadableDefinitions, VENDOR_STATE_PATH, writeDefinitionsAction, type VendorDefinition } from './state.js';

export interface VendorOrphan {
  uuid: string;
  def: VendorDefinition;
  reason: string;
}

export interface VendorUndefinedActive {
  uuid: string;
  vf: string;
  type: string;
  profile: string | null;
}

export async function findVendorOrphans(
  host: HostRoot,
  catalogue: Catalogue,
): Promise<{ orphans: VendorOrphan[]; undefinedActive: VendorUndefinedActive[]; problems: string[]; remove: () => Action | null; destroy: (d: VendorUndefinedActive) => Action }> {
  const vs = await readVendorState(host, catalogue);
  // Active on a VF, defined nowhere, named by no VM (running or not): what `create` without --define left.
  // While the definitions file cannot be read, every vGPU may be defined: none is called undefined.
  const undefinedActive = vs.definitionProblems.length > 0 ? [] : vs.vfs
    .filter((v) => v.current !== 0 && !vs.definitions.some((d) => d.vf === v.address))
    .filter((v) => { const u = vs.users.get(v.address); return (u?.running.length ?? 0) === 0 && (u?.inactiveDomains.length ?? 0) === 0; })
    .map((v) => ({ uuid: vfHandle(v.address), vf: v.address, type: typeIdOf(v.current), profile: profileOfId(vs, catalogue, v.current)?.profile ?? null }));
  const orphans = vs.definitions
    .filter((d) => !vs.vfs.some((v) => v.address === d.vf))
    .map((def) => ({ uuid: vfHandle(def.vf), def, reason: `virtual function ${def.vf} does not exist (SR-IOV disabled, or the GPU is gone)` }));
  return {
    orphans,
    undefinedActive,
    destroy: (d) => destroyAction(d.vf, numericTypeId(d.type)!, d.profile),
    problems: vs.definitionProblems,
    remove: () => {
      if (orphans.length === 0) return null;
      requireReadableDefinitions(vs);
      const gone = new Set(orphans.map((o) => o.def.vf));
      return writeDefinitionsAction(vs.stateContent, vs.definitions.filter((d) => !gone.has(d.vf)), `remove ${orphans.length} orphan vendor-VFIO definition(s) from ${VENDOR_STATE_PATH}: ${[...gone].join(', ')}`);
    },
  };
}

/**
 * What `cleanup` must know of live vendor vGPUs before it restarts nvidia-vgpu-mgr or counts its
 * processes: how many VFs carry a vGPU (each may have its manager process) and the running VMs using them
 * (a restart would take their vGPUs away).
 */
export async function vendorRuntime(host: HostRoot, catalogue: Catalogue): Promise<{ active: number; runningVms: string[] }> {
  const vs = await readVendorState(host, catalogue);
  const vms = new Set<string>();
  for (const v of vs.vfs) {
    if (v.current === 0) continue;
    for (const r of vs.users.get(v.address)?.running ?? []) vms.add(r.replace(/^domain /, '').replace(/^qemu (\S+) \(pid \d+\)$/, '$1'));
  }
  return { active: vs.vfs.filter((v) => v.current !== 0).length, runningVms: [...vms].sort() };
}
