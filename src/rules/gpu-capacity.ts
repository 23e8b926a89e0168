/**
 * How many more vGPUs of a type fit on one physical GPU, given the vGPUs it already carries. This is
 * NVIDIA's published model: time-sliced vGPUs share the framebuffer under the board's placement rule,
 * MIG-backed vGPUs share the GPU's seven compute slices, and the two never mix on one GPU. The driver's
 * available_instances stays the final word; this model lets vgpuctl check a whole request (several
 * devices, SR-IOV VFs that each say "1") before the first write.
 */
import type { Placement } from '../catalogue/schema.js';
import type { MdevType } from '../host/mdev.js';

export const MIG_COMPUTE_SLICES = 7;

export interface VgpuShape {
  typeId: string;
  framebufferMib: number | null;
  maxInstance: number | null;
  migSlices: number | null;
}

/** An NVIDIA vGPU type: a profile in its name and a max_instance in its description. */
export const isNvidiaVgpuType = (t: MdevType): boolean => t.profile !== null && t.parsedDescription.maxInstance !== null;

export const shapeOf = (t: MdevType): VgpuShape => ({
  typeId: t.id,
  framebufferMib: t.parsedDescription.framebufferMib,
  maxInstance: t.parsedDescription.maxInstance,
  migSlices: t.profile?.migSlices ?? null,
});

/** The reason a GPU cannot take a type at all, or null when the rule allows it. */
export function placementConflict(existing: VgpuShape[], candidate: VgpuShape, placement: Placement): string | null {
  const isMig = candidate.migSlices !== null;
  if (isMig && existing.some((e) => e.migSlices === null)) return 'the GPU carries time-sliced vGPUs and cannot take MIG-backed ones';
  if (!isMig && existing.some((e) => e.migSlices !== null)) return 'the GPU carries MIG-backed vGPUs and cannot take time-sliced ones';
  if (isMig) return null;
  const other = existing.find((e) => e.typeId !== candidate.typeId);
  if (!other) return null;
  if (placement === 'same-type') return `the GPU already carries ${other.typeId} and allows one vGPU type per GPU`;
  if (placement === 'equal-size' && other.framebufferMib !== candidate.framebufferMib) {
    return `the GPU already carries ${other.typeId} (${other.framebufferMib} MiB) and runs in equal-size mode`;
  }
  return null;
}

/** How many more of `candidate` fit next to `existing` (Infinity when the type states no limit). */
export function additionalFit(existing: VgpuShape[], candidate: VgpuShape, placement: Placement): number {
  if (candidate.maxInstance === null) return Number.POSITIVE_INFINITY;
  if (placementConflict(existing, candidate, placement) !== null) return 0;
  const same = existing.filter((e) => e.typeId === candidate.typeId).length;
  let fit = candidate.maxInstance - same;
  if (candidate.migSlices !== null) {
    const used = existing.reduce((n, e) => n + (e.migSlices ?? 0), 0);
    fit = Math.min(fit, Math.floor((MIG_COMPUTE_SLICES - used) / candidate.migSlices));
  } else if (candidate.framebufferMib !== null) {
    // The GPU's usable framebuffer is what max_instance of this type adds up to.
    const total = candidate.maxInstance * candidate.framebufferMib;
    const used = existing.reduce((n, e) => n + (e.framebufferMib ?? 0), 0);
    fit = Math.min(fit, Math.floor((total - used) / candidate.framebufferMib));
  }
  return Math.max(0, fit);
}
