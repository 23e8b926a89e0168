/** vendor-VFIO VFs in `types`, `list` and `gpus`: empty answers on hosts without the interface, cheaply. */
import type { Catalogue } from '../catalogue/catalogue.js';
import type { TypeRecord } from '../host/inventory.js';
import type { HostRoot } from '../host/host-root.js';
import { hasVendorVfio } from './presence.js';
import type { VendorDeviceRecord } from './record-rows.js';
import { readVendorDefinitions } from './state.js';

export type { VendorDeviceRecord } from './record-rows.js';

/*
 * The vendor state readers and the row builders (with uuid, whose v5 handles need node:crypto: ~6 ms of
 * every start) load only once a host turns out to have something vendor-VFIO to show.
 */
const stateReader = async () => (await import('./discovery.js')).readVendorState;
const rowBuilders = () => import('./record-rows.js');

/** `types` rows of the vendor VFs (all, or of one VF or PF); [] on hosts without the interface. */
export async function vendorTypesFor(host: HostRoot, catalogue: Catalogue, parent?: string): Promise<TypeRecord[]> {
  if (!(await hasVendorVfio(host))) return [];
  const vs = await (await stateReader())(host, catalogue);
  const rows = (await rowBuilders()).vendorTypeRecords(vs, catalogue);
  if (parent === undefined) return rows;
  const pfVfs = new Set(vs.gpus.filter((g) => g.pf === parent).flatMap((g) => g.vfs.map((v) => v.address)));
  return rows.filter((r) => r.parent === parent || pfVfs.has(r.parent));
}

/** `list` rows of vendor vGPUs; definitions are read even when the VFs are gone (SR-IOV not enabled yet). */
export async function vendorDevicesFor(host: HostRoot, catalogue: Catalogue, which: 'active' | 'defined' | 'all'): Promise<VendorDeviceRecord[]> {
  // Without vgpuctl's own definitions a listing of defined devices has no vendor rows, and a host without
  // the vendor interface no active ones: neither needs the whole host's PCI functions, domains, processes.
  const defs = await readVendorDefinitions(host);
  if (defs.definitions.length === 0 && (which === 'defined' || !(await hasVendorVfio(host)))) return [];
  await host.armReadDeadline(); // the driver answers creatable_vgpu_types (list arms no earlier)
  const vs = await (await stateReader())(host, catalogue);
  if (vs.vfs.length === 0 && vs.definitions.length === 0) return [];
  return (await rowBuilders()).vendorDeviceRecords(vs, catalogue, which);
}

/** Active vendor vGPUs per PF address (for `gpus`). */
export async function vendorActiveByPf(host: HostRoot, catalogue: Catalogue): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (!(await hasVendorVfio(host))) return out;
  const vs = await (await stateReader())(host, catalogue);
  for (const g of vs.gpus) out.set(g.pf, g.vfs.filter((v) => v.current !== 0).length);
  return out;
}
