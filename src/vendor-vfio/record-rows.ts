/** The rows of vendor-VFIO VFs in the JSON contract of `types` and `list` (records.ts loads this module when there are any). */
import type { Catalogue } from '../catalogue/catalogue.js';
import type { DeviceRecord, TypeRecord } from '../host/inventory.js';
import { numericTypeId, typeIdOf } from './creatable.js';
import { profileOfId, vfHandle, type VendorState } from './discovery.js';

function typeRecord(vs: VendorState, catalogue: Catalogue, vf: string, id: number, available: number): TypeRecord {
  const profile = profileOfId(vs, catalogue, id);
  const entry = profile ? catalogue.profile(profile.profile) : undefined;
  return {
    parent: vf,
    type: typeIdOf(id),
    name: vs.names.get(id) ?? (profile ? `NVIDIA ${profile.profile}` : null),
    profile: profile?.profile ?? null,
    series: profile?.series ?? null,
    framebuffer_mib: entry?.profile.framebuffer_mib ?? (profile ? profile.framebufferGib * 1024 : null),
    max_instances: entry?.profile.max_per_gpu ?? null,
    available_instances: available,
    device_api: 'vfio-pci',
    description: null,
    num_heads: null,
    max_resolution: null,
  };
}

/** Per VF: what it can create now (available 1) and the type it carries (available 0). */
export function vendorTypeRecords(vs: VendorState, catalogue: Catalogue): TypeRecord[] {
  const out: TypeRecord[] = [];
  for (const vf of [...vs.vfs].sort((a, b) => (a.address < b.address ? -1 : 1))) {
    const ids = new Map<number, number>();
    if (vf.current !== 0) ids.set(vf.current, 0);
    for (const t of vf.creatable) if (!ids.has(t.id)) ids.set(t.id, 1);
    for (const [id, avail] of [...ids.entries()].sort((a, b) => a[0] - b[0])) out.push(typeRecord(vs, catalogue, vf.address, id, avail));
  }
  return out;
}

export type VendorDeviceRecord = DeviceRecord & { vf: string };

export function vendorDeviceRecords(vs: VendorState, catalogue: Catalogue, which: 'active' | 'defined' | 'all'): VendorDeviceRecord[] {
  const out = new Map<string, VendorDeviceRecord>();
  const record = (vf: string, id: number, active: boolean): VendorDeviceRecord => {
    const def = vs.definitions.find((d) => d.vf === vf) ?? null;
    const u = vs.users.get(vf);
    return {
      uuid: vfHandle(vf),
      parent: vf,
      type: typeIdOf(id),
      profile: profileOfId(vs, catalogue, id)?.profile ?? def?.profile ?? null,
      active,
      defined: def !== null,
      autostart: def?.start === 'auto',
      attrs: [],
      vm: u?.vm ?? null,
      vm_running: (u?.running.length ?? 0) > 0,
      vf,
    };
  };
  if (which !== 'defined') for (const v of vs.vfs) if (v.current !== 0) out.set(v.address, record(v.address, v.current, true));
  if (which !== 'active') {
    for (const d of vs.definitions) {
      if (out.has(d.vf)) continue;
      const v = vs.vfs.find((x) => x.address === d.vf);
      const id = numericTypeId(d.type)!;
      out.set(d.vf, record(d.vf, id, v !== undefined && v.current === id));
    }
  }
  return [...out.values()].sort((a, b) => (a.parent < b.parent ? -1 : 1));
}
