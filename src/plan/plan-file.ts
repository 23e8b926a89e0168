/**
 * The plan file: what a hypervisor should carry, in YAML or JSON, validated strictly (unknown keys are
 * errors) with messages that name the line and the field.
 *
 *   version: 1
 *   defaults: { autostart: true }
 *   gpus:
 *     - select: { address: "0000:82:00.0" }   # or { board: P40 } | { pf: "0000:21:00.0" } | { all: true }
 *       profile: P40-12C                      # or type: nvidia-286
 *       count: 2                              # or max
 *
 * On an SR-IOV GPU whose VFs are mdev parents, `select: { pf: "0000:21:00.0", vfs: [1, 3] }` places the vGPUs
 * on those virtual functions (index N = the PF's virtfnN, as sriov and StackHPC's vgpu role number them), one
 * per VF, in order; count is then the number of VFs.
 */
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isMap, isSeq, type Node } from 'yaml';
import { z } from 'zod';
import { VgpuctlError } from '../errors/vgpuctl-error.js';

const pciAddress = z
  .string()
  .transform((s) => (/^[0-9a-fA-F]{2}:[0-1][0-9a-fA-F]\.[0-7]$/.test(s) ? `0000:${s}` : s).toLowerCase())
  .pipe(z.string().regex(/^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/, 'expected a PCI address like 0000:82:00.0'));

export const selectSchema = z.union([
  z.object({ address: pciAddress }).strict(),
  z
    .object({
      pf: pciAddress,
      /** Virtual function indexes (virtfnN of the PF) that carry the entry's vGPUs, one each, in order. */
      vfs: z
        .array(z.number().int().min(0, 'expected a VF index (0 = virtfn0)').max(255, 'expected a VF index (0 = virtfn0)'))
        .min(1, 'name at least one VF index, or leave vfs out')
        .refine((v) => new Set(v).size === v.length, 'names a VF index twice')
        .optional(),
    })
    .strict(),
  z.object({ board: z.string().regex(/^[A-Za-z0-9]+$/, 'expected a board name like P40 or A100D') }).strict(),
  z.object({ all: z.literal(true) }).strict(),
], { error: 'select must be one of { address: ... }, { pf: ... [, vfs: [N, ...]] }, { board: ... }, { all: true }' });
export type GpuSelect = z.infer<typeof selectSchema>;

const uuidSchema = z
  .string()
  .regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, 'expected a UUID')
  .transform((s) => s.toLowerCase());

export const gpuEntrySchema = z
  .object({
    select: selectSchema,
    profile: z.string().regex(/^[A-Za-z0-9]+-(?:\d+-)?\d+[ABCQabcq][A-Za-z0-9]*$/, 'expected a vGPU profile like P40-12C').optional(),
    type: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}$/, 'expected an mdev type id like nvidia-286').optional(),
    count: z.union([z.number().int().min(1, 'must be at least 1').max(1024), z.literal('max')], {
      error: (iss) => (iss.input === undefined ? 'count is required: a whole number of vGPUs per selected GPU, or max' : 'expected a whole number from 1 to 1024, or max'),
    }),
    autostart: z.boolean().optional(),
    /** Explicit UUIDs, slot by slot (per selected GPU in address order); the rest are derived. */
    uuids: z.array(uuidSchema).optional(),
  })
  .strict()
  .refine((e) => (e.profile === undefined) !== (e.type === undefined), { message: 'give exactly one of profile or type' })
  .refine((e) => !('pf' in e.select) || e.select.vfs === undefined || e.count === e.select.vfs.length, {
    message: 'select.vfs puts one vGPU on each VF it names: count must be the number of VF indexes',
    path: ['count'],
  });
export type GpuEntry = z.infer<typeof gpuEntrySchema>;

export const planSchema = z
  .object({
    version: z.literal(1, { message: 'version must be 1' }),
    /** Namespace of the deterministic UUIDs; default: derived from /etc/machine-id. */
    uuid_namespace: uuidSchema.optional(),
    defaults: z.object({ autostart: z.boolean().default(true) }).strict().default({ autostart: true }),
    gpus: z.array(gpuEntrySchema).min(1, 'a plan needs at least one gpus entry'),
  })
  .strict();
export type Plan = z.infer<typeof planSchema>;

/** Line of the YAML node at a zod issue path, for messages such as "plan.yaml:7: gpus.0.count: …". */
function lineOf(doc: ReturnType<typeof parseDocument>, counter: LineCounter, pathParts: PropertyKey[]): number | null {
  let node: Node | null | undefined = doc.contents as Node | null;
  let found: Node | null = node ?? null;
  for (const key of pathParts) {
    if (isMap(node)) {
      const pair: { key: unknown; value: unknown } | undefined = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === key);
      node = (pair?.value as Node | undefined) ?? (pair?.key as Node | undefined);
    } else if (isSeq(node) && typeof key === 'number') {
      node = node.items[key] as Node | undefined;
    } else break;
    if (node?.range) found = node;
  }
  const offset = found?.range?.[0];
  return offset === undefined ? null : counter.linePos(offset).line;
}

export function parsePlanText(text: string, source: string, schema: z.ZodType = planSchema): unknown {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const line = e.linePos?.[0]?.line;
    throw new VgpuctlError('invalid-input', `${source}${line ? `:${line}` : ''}: not valid YAML or JSON: ${e.message.split('\n')[0]}`);
  }
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (e) {
    // yaml refuses to expand aliases past a limit ("billion laughs"): a plan never needs that many.
    throw new VgpuctlError('invalid-input', `${source}: not a usable plan: ${(e as Error).message}`);
  }
  const r = schema.safeParse(data);
  if (!r.success) {
    const one = (pathParts: PropertyKey[], message: string) => {
      const line = lineOf(doc, counter, pathParts);
      const field = pathParts.length > 0 ? pathParts.map(String).join('.') : '(top level)';
      return `${source}${line ? `:${line}` : ''}: ${field}: ${message}`;
    };
    // An unknown key is named as the field it would be (gpus.0.colour), on its own line.
    const msgs = r.error.issues.flatMap((i) =>
      i.code === 'unrecognized_keys' ? i.keys.map((k) => one([...i.path, k], 'unknown key')) : [one(i.path, i.message)],
    );
    throw new VgpuctlError('invalid-input', `invalid plan: ${msgs.join('; ')}`);
  }
  return r.data;
}

export function loadPlanFile(file: string): Plan {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new VgpuctlError('invalid-input', `cannot read plan ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  return parsePlanText(text, file) as Plan;
}
