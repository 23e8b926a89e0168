/**
 * Parses `nvidia-smi vgpu -q`: per GPU (`GPU 00000000:82:00.0`) the vGPUs the driver still holds, with
 * their `MDEV UUID` — the state seed 004 found left behind after its mdevs were destroyed.
 */
export interface DriverVgpu {
  /** PCI address of the physical GPU (0000:82:00.0). */
  gpu: string;
  vgpuId: string;
  vmUuid: string | null;
  vmName: string | null;
  vgpuName: string | null;
  vgpuType: string | null;
  mdevUuid: string | null;
}

const field = (line: string): [string, string] | null => {
  const m = /^\s*([A-Za-z][A-Za-z ]*?)\s+:\s*(.*?)\s*$/.exec(line);
  return m ? [m[1]!, m[2]!] : null;
};

/** nvidia-smi writes an 8-digit PCI domain (00000000:82:00.0); the kernel writes 4. */
export const normalizeBusId = (busId: string): string => {
  const m = /^([0-9a-fA-F]{4,8}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/.exec(busId.trim());
  return m ? `${m[1]!.slice(-4)}:${m[2]}:${m[3]}.${m[4]}`.toLowerCase() : busId.trim().toLowerCase();
};

const value = (v: string): string | null => (v === '' || v === 'N/A' ? null : v);
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export function parseVgpuQuery(text: string): DriverVgpu[] {
  const out: DriverVgpu[] = [];
  let gpu: string | null = null;
  let cur: DriverVgpu | null = null;
  for (const line of text.split('\n')) {
    const g = /^GPU\s+([0-9a-fA-F:.]+)\s*$/.exec(line);
    if (g) {
      gpu = normalizeBusId(g[1]!);
      cur = null;
      continue;
    }
    const f = field(line);
    if (!f || gpu === null) continue;
    const [key, val] = f;
    if (key === 'vGPU ID') {
      cur = { gpu, vgpuId: val, vmUuid: null, vmName: null, vgpuName: null, vgpuType: null, mdevUuid: null };
      out.push(cur);
      continue;
    }
    if (!cur) continue;
    if (key === 'VM UUID') cur.vmUuid = value(val);
    else if (key === 'VM Name') cur.vmName = value(val);
    else if (key === 'vGPU Name') cur.vgpuName = value(val);
    else if (key === 'vGPU Type') cur.vgpuType = value(val);
    else if (key === 'MDEV UUID') cur.mdevUuid = UUID.test(val) ? val.toLowerCase() : null;
  }
  return out;
}
