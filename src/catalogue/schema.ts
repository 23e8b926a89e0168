/**
 * Schema of the vGPU profile catalogue (profiles/<board>.json).
 *
 * The catalogue is offline knowledge (NVIDIA's published profile tables). Live sysfs data always wins;
 * the catalogue fills what sysfs does not say (board, architecture, placement rule, multi-vGPU support)
 * and disagreements between the two are reported as warnings.
 */
// zod/mini: the catalogue module is on the way of every command (src/validation/mini.ts).
import * as z from 'zod/mini';

export const seriesSchema = z.enum(['A', 'B', 'C', 'Q']);
export type Series = z.infer<typeof seriesSchema>;

/**
 * How vGPUs may share one physical GPU:
 * - same-type: every time-sliced vGPU on a GPU has the same type (pre-vGPU-17 drivers, and boards
 *   without equal/mixed-size support);
 * - equal-size: same framebuffer size, series may differ (vGPU 17+ default);
 * - mixed-size: sizes may differ (vGPU 17+, `nvidia-smi vgpu -shm 1`, boards that support it).
 */
export const placementSchema = z.enum(['same-type', 'equal-size', 'mixed-size']);
export type Placement = z.infer<typeof placementSchema>;

export const profileSchema = z.strictObject({
  /** Profile name without the GRID/NVIDIA prefix, e.g. P40-12C, A100D-2-20C, P40-2B4. */
  name: z.string().check(z.regex(/^[A-Z0-9]+-(?:\d+-)?\d+[ABCQ][A-Z0-9]*$/)),
  series: seriesSchema,
  framebuffer_mib: z.int().check(z.positive()),
  max_per_gpu: z.int().check(z.positive()),
  /** Public mdev type id where known (nvidia-286); ids can change between driver branches. */
  type_id: z.optional(z.string().check(z.regex(/^nvidia-\d+$/))),
  /** Several vGPUs of this profile may be attached to one VM. */
  multi_vgpu_per_vm: z.boolean(),
  /** MIG-backed profile: compute slices of the GPU it takes (A100 1-10C = 1 … 7-80C = 7). */
  mig_slices: z.optional(z.int().check(z.positive())),
});
export type Profile = z.infer<typeof profileSchema>;

export const boardSchema = z.strictObject({
  board: z.string().check(z.regex(/^[A-Z0-9]+$/)),
  /** Marketing name, e.g. "Tesla P40", "NVIDIA A100 80GB PCIe". */
  product: z.string(),
  architecture: z.enum(['Maxwell', 'Pascal', 'Volta', 'Turing', 'Ampere', 'Ada', 'Hopper', 'Blackwell']),
  /** PCI device ids of the physical function (lower-case, 0x-prefixed). */
  pci_device_ids: z.array(z.string().check(z.regex(/^0x[0-9a-f]{4}$/))).check(z.minLength(1)),
  /** GPUs per board (A16 carries four). */
  gpus_per_board: z._default(z.int().check(z.positive()), 1),
  framebuffer_mib: z.int().check(z.positive()),
  /** vGPUs live on SR-IOV virtual functions (Ampere and later). */
  sriov: z.boolean(),
  placement: placementSchema,
  /** Mixed-size mode may be enabled on this board (vGPU 17+). */
  mixed_size_capable: z.boolean(),
  profiles: z.array(profileSchema).check(z.minLength(1)),
  sources: z.array(z.string()).check(z.minLength(1)),
  notes: z.optional(z.string()),
});
export type Board = z.infer<typeof boardSchema>;
