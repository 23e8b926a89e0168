/**
 * Capacity of vendor-VFIO GPUs for `health`, per physical GPU and type as on mdev GPUs: `available` is how
 * many more vGPUs of the type fit now (free VFs that list it, bounded by the board's placement rule and
 * size), `active` how many VFs carry it. Per-VF rows (available 0 or 1 on each of 32 VFs) would add up to
 * more than the GPU holds.
 */
import type { Catalogue } from '../catalogue/catalogue.js';
import type { HostRoot } from '../host/host-root.js';
import { additionalFit } from '../rules/gpu-capacity.js';
import { typeIdOf } from './creatable.js';
import { hasVendorVfio, profileOfId, readVendorState } from './discovery.js';
import { placementOfGpu, vendorShape } from './lifecycle.js';

export interface VendorCapacity {
  parent: string;
  type: string;
  profile: string | null;
  available: number;
  active: number;
}

export async function vendorCapacity(host: HostRoot, catalogue: Catalogue): Promise<{ rows: VendorCapacity[]; vfs: Set<string> }> {
  if (!(await hasVendorVfio(host))) return { rows: [], vfs: new Set() };
  const vs = await readVendorState(host, catalogue);
  const rows: VendorCapacity[] = [];
  for (const g of vs.gpus) {
    const ids = new Set<number>();
    for (const v of g.vfs) {
      if (v.current !== 0) ids.add(v.current);
      if (v.current === 0) for (const t of v.creatable) ids.add(t.id);
    }
    const existing = g.vfs.filter((v) => v.current !== 0).map((v) => vendorShape(vs, catalogue, v.current));
    for (const id of [...ids].sort((a, b) => a - b)) {
      const free = g.vfs.filter((v) => v.current === 0 && v.creatable.some((t) => t.id === id)).length;
      const fit = additionalFit(existing, vendorShape(vs, catalogue, id), placementOfGpu(catalogue, g));
      rows.push({
        parent: g.pf,
        type: typeIdOf(id),
        profile: profileOfId(vs, catalogue, id)?.profile ?? null,
        available: Math.min(free, Number.isFinite(fit) ? fit : free),
        active: g.vfs.filter((v) => v.current === id).length,
      });
    }
  }
  return { rows, vfs: new Set(vs.vfs.map((v) => v.address)) };
}
