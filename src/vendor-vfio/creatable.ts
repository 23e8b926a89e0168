/**
 * NVIDIA's vendor vGPU interface on SR-IOV virtual functions (kernel >= 6.8, vGPU 17+, no mdev bus):
 * `/sys/bus/pci/devices/<VF>/nvidia/creatable_vgpu_types` is a table
 *
 *     ID    : vGPU Name
 *     1145  : NVIDIA L40S-1B
 *
 * (only the header when nothing more can be created on the VF), `current_vgpu_type` holds the numeric id
 * of the VF's vGPU (`0`: none; write an id to create, `0` to destroy). The id equals the mdev type number
 * (1145 = nvidia-1145).
 */
import { parseTypeName, type ParsedProfile } from '../host/type-name.js';

export interface CreatableType {
  /** Numeric vGPU type id as written to current_vgpu_type. */
  id: number;
  /** The mdev-style type id (nvidia-1145): the JSON contract's `type`. */
  typeId: string;
  /** The driver's name, e.g. "NVIDIA L40S-1B". */
  name: string;
  profile: ParsedProfile | null;
}

export const HEADER = 'ID    : vGPU Name';

export const typeIdOf = (id: number): string => `nvidia-${id}`;

/** 1145, "1145" or "nvidia-1145" → 1145; null for anything else. */
export function numericTypeId(value: string | number): number | null {
  if (typeof value === 'number') return Number.isInteger(value) && value > 0 ? value : null;
  const m = /^(?:nvidia-)?(\d+)$/.exec(value.trim());
  return m && Number.isSafeInteger(Number(m[1])) ? Number(m[1]) : null;
}

export function parseCreatableVgpuTypes(text: string): CreatableType[] {
  const out: CreatableType[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s*:\s*(.*?)\s*$/.exec(line);
    if (!m) continue; // the header (`ID : vGPU Name`) and blank lines
    const id = Number(m[1]);
    const name = m[2]!;
    if (id === 0 || !Number.isSafeInteger(id) || out.some((t) => t.id === id)) continue;
    out.push({ id, typeId: typeIdOf(id), name, profile: parseTypeName(name) });
  }
  return out;
}

/** The file as the driver prints it: the header, then one `ID : name` line per type. */
export function formatCreatableVgpuTypes(types: Array<{ id: number; name: string }>): string {
  return [HEADER, ...types.map((t) => `${String(t.id).padEnd(5)} : ${t.name}`)].join('\n') + '\n';
}

/** current_vgpu_type: a decimal id, 0 when the VF carries no vGPU. */
export function parseCurrentVgpuType(text: string | null): number {
  if (text === null) return 0;
  const m = /^\s*(\d+)\s*$/.exec(text);
  return m ? Number(m[1]) : 0;
}
