/**
 * vgpuctl's own definitions of vendor-VFIO vGPUs (mdevctl cannot hold them): `/etc/vgpuctl/vendor-vgpus.json`,
 * `{"version":1,"vgpus":[{"vf":"0000:41:00.4","type":"nvidia-1150","profile":"L40S-4Q","start":"auto"}]}`,
 * sorted by VF, written through a temporary file and a rename (the write-file action).
 */
import * as z from 'zod/mini';
import { isZodError } from '../validation/mini.js';
import { errnoOf, VgpuctlError } from '../errors/vgpuctl-error.js';
import type { HostRoot } from '../host/host-root.js';
import { promises as fs } from 'node:fs';
import type { Action } from '../lifecycle/actions.js';

export const VENDOR_STATE_PATH = '/etc/vgpuctl/vendor-vgpus.json';

const definitionSchema = z.strictObject({
  vf: z.string().check(z.regex(/^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/)),
  type: z.string().check(z.regex(/^nvidia-\d+$/)),
  profile: z._default(z.nullable(z.string()), null),
  start: z.enum(['auto', 'manual']),
});
export type VendorDefinition = z.infer<typeof definitionSchema>;

const fileSchema = z.strictObject({ version: z.literal(1), vgpus: z.array(definitionSchema) });

export async function readVendorDefinitions(host: HostRoot): Promise<{ definitions: VendorDefinition[]; problems: string[]; content: string | null }> {
  let content: string;
  try {
    content = await fs.readFile(host.path(VENDOR_STATE_PATH), 'utf8');
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return { definitions: [], problems: [], content: null };
    return { definitions: [], problems: [`${VENDOR_STATE_PATH}: cannot read (${errnoOf(e) ?? e})`], content: null };
  }
  try {
    const parsed = fileSchema.parse(JSON.parse(content));
    return { definitions: parsed.vgpus, problems: [], content };
  } catch (e) {
    const why = isZodError(e) ? e.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') : (e as Error).message;
    return { definitions: [], problems: [`${VENDOR_STATE_PATH}: invalid (${why}); fix or remove it`], content };
  }
}

/** The definitions a file's text holds, or null when it is not a definitions file vgpuctl can read. */
export function parseVendorDefinitions(text: string): VendorDefinition[] | null {
  try {
    return fileSchema.parse(JSON.parse(text)).vgpus;
  } catch {
    return null;
  }
}

export function formatVendorDefinitions(defs: VendorDefinition[]): string {
  const sorted = [...defs].sort((a, b) => (a.vf < b.vf ? -1 : 1));
  return `${JSON.stringify({ version: 1, vgpus: sorted }, null, 2)}\n`;
}

/** The action that replaces the definitions with `next`; its undo puts the file back as it was. */
export function writeDefinitionsAction(previous: string | null, next: VendorDefinition[], summary: string): Action {
  return {
    kind: 'write-file',
    path: VENDOR_STATE_PATH,
    content: formatVendorDefinitions(next),
    summary,
    undo:
      previous === null
        ? { kind: 'remove-file', path: VENDOR_STATE_PATH, summary: `remove ${VENDOR_STATE_PATH}` }
        : { kind: 'write-file', path: VENDOR_STATE_PATH, content: previous, summary: `restore ${VENDOR_STATE_PATH}` },
  };
}

/** The definitions must be readable before any of them is rewritten: a broken file is never replaced. */
export function requireReadableDefinitions(vs: { definitionProblems: string[] }): void {
  if (vs.definitionProblems.length > 0) {
    throw new VgpuctlError('host-read', `${vs.definitionProblems.join('; ')}; nothing was written (vgpuctl never rewrites a definitions file it cannot read, so no definition is lost)`);
  }
}
