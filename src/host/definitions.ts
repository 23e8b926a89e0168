/**
 * Persistent mdev definitions in mdevctl's own format and place: /etc/mdevctl.d/<parent>/<uuid>, a JSON
 * object `{"mdev_type": ..., "start": "auto"|"manual", "attrs": [{"name": "value"}, ...]}` pretty-printed
 * with two spaces and no trailing newline (what mdevctl 1.2 writes). Sharing the format means either tool
 * reads what the other wrote.
 */
import { lstatSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import * as z from 'zod/mini';
import { isZodError } from '../validation/mini.js';
import { HOST_PATHS, type HostRoot, readFileText } from './host-root.js';
import { isUuid } from './identifiers.js';

// The type becomes a sysfs path component (mdev_supported_types/<type>/create) and an attribute name a path
// under the device (a sub-directory such as nvidia/vgpu_params is fine): neither may leave its directory.
const TYPE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}$/;
const isAttrName = (k: string): boolean => !k.includes('..') && k.split('/').every((seg) => /^[A-Za-z0-9_][A-Za-z0-9_.:-]*$/.test(seg));

export const definitionFileSchema = z.object({
  mdev_type: z.string().check(
    z.minLength(1),
    z.refine((t) => TYPE_ID_RE.test(t) && !t.includes('..'), 'not an mdev type id (like nvidia-286)'),
  ),
  start: z.enum(['auto', 'manual']),
  attrs: z._default(
    z.array(
      z.record(z.string(), z.string()).check(
        z.refine((o) => Object.keys(o).length === 1, 'each attribute is an object with exactly one key'),
        z.refine((o) => Object.keys(o).every(isAttrName), 'an attribute name is a sysfs attribute of the device, like nvidia/vgpu_params'),
      ),
    ),
    [],
  ),
});
export type DefinitionFile = z.infer<typeof definitionFileSchema>;

export interface Definition {
  uuid: string;
  parent: string;
  type: string;
  start: 'auto' | 'manual';
  attrs: Array<[string, string]>;
  /** Host path of the definition file. */
  file: string;
}

export interface DefinitionProblem {
  file: string;
  problem: string;
}

/** The byte-exact file content mdevctl 1.2 writes for a definition. */
export function formatDefinition(def: Pick<Definition, 'type' | 'start' | 'attrs'>): string {
  const body: DefinitionFile = {
    mdev_type: def.type,
    start: def.start,
    attrs: def.attrs.map(([k, v]) => ({ [k]: v })),
  };
  return JSON.stringify(body, null, 2);
}

export function parseDefinition(text: string): DefinitionFile {
  return definitionFileSchema.parse(JSON.parse(text));
}

export function definitionPath(host: HostRoot, parent: string, uuid: string): string {
  return path.join(host.path(HOST_PATHS.mdevctlConfig), parent, uuid);
}

/*
 * Links in the definition tree. mdevctl makes /etc/mdevctl.d/<parent> itself, as a directory; a symbolic
 * link there was put by someone else, and following it would read definitions from (and write them into)
 * a directory nobody chose: such a directory is reported and never followed, read or written, and the
 * rest of the listing goes on. /etc/mdevctl.d itself may be a link (a stateless host keeps it on
 * persistent storage, and mdevctl follows it): it is followed when it leads to a directory inside the
 * root, so under --root a link to the machine's own /etc never is.
 */
const linkTarget = (p: string): string => {
  try {
    return readlinkSync(p);
  } catch {
    return '?';
  }
};

/** Why /etc/mdevctl.d (when it is a link) is not followed, or null. */
function linkedBaseProblem(host: HostRoot): DefinitionProblem | null {
  const base = host.path(HOST_PATHS.mdevctlConfig);
  const st = lstatOrNull(base);
  if (!st?.isSymbolicLink()) return null;
  const file = HOST_PATHS.mdevctlConfig;
  let real: string;
  try {
    real = realpathSync(base);
  } catch {
    return { file, problem: `is a symbolic link (to ${linkTarget(base)}) that leads nowhere; definitions cannot be read or written until it leads to a directory` };
  }
  const root = realpathSync(host.root);
  const inside = host.isSystemRoot || real === root || real.startsWith(`${root}/`);
  if (!inside) {
    return { file, problem: `is a symbolic link (to ${linkTarget(base)}) that leads outside the root ${host.root}; vgpuctl does not follow it` };
  }
  if (!statSync(real).isDirectory()) return { file, problem: `is a symbolic link (to ${linkTarget(base)}) to something that is not a directory` };
  return null;
}

const lstatOrNull = (p: string) => {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
};

/** Why /etc/mdevctl.d/<parent> is not followed (it is a symbolic link), or null. */
function linkedParentProblem(host: HostRoot, parent: string): DefinitionProblem | null {
  const dir = path.join(host.path(HOST_PATHS.mdevctlConfig), parent);
  if (!lstatOrNull(dir)?.isSymbolicLink()) return null;
  return {
    file: host.hostPathOf(dir),
    problem: `is a symbolic link (to ${linkTarget(dir)}), not a directory; vgpuctl neither reads nor writes definitions through it — look at it, and if the definitions behind it are yours, replace the link by a real directory holding them`,
  };
}

/**
 * A linked directory on the way to a file under /etc/mdevctl.d (host path), or null: what a change of that
 * file must refuse (sysfs backend and mdevctl backend alike).
 */
export function linkedDefinitionDir(host: HostRoot, hostFile: string): DefinitionProblem | null {
  const prefix = `${HOST_PATHS.mdevctlConfig}/`;
  if (!hostFile.startsWith(prefix)) return null;
  const base = linkedBaseProblem(host);
  if (base) return base;
  const parent = hostFile.slice(prefix.length).split('/')[0]!;
  return parent === '' || !hostFile.slice(prefix.length).includes('/') ? null : linkedParentProblem(host, parent);
}

/**
 * Every definition, sorted by parent then UUID. A file that is not a valid definition is reported in
 * `problems` and skipped (mdevctl aborts the whole listing; an operator is better served by the rest).
 */
export async function readDefinitions(host: HostRoot): Promise<{ definitions: Definition[]; problems: DefinitionProblem[] }> {
  return host.memo('mdevctl-definitions', () => readDefinitionFiles(host));
}

async function readDefinitionFiles(host: HostRoot): Promise<{ definitions: Definition[]; problems: DefinitionProblem[] }> {
  const base = host.path(HOST_PATHS.mdevctlConfig);
  const definitions: Definition[] = [];
  const problems: DefinitionProblem[] = [];
  const baseProblem = linkedBaseProblem(host);
  if (baseProblem) return { definitions, problems: [baseProblem] };
  const parents = host.listEntries(base).filter((e) => e.name !== 'scripts.d');
  await Promise.all(
    parents.map(async (entry) => {
      const parent = entry.name;
      // Names from readdir are single path components: plain joins (path.join is a tenth of this loop).
      const dir = `${base}/${parent}`;
      if (entry.isSymbolicLink()) {
        problems.push(linkedParentProblem(host, parent) ?? { file: host.hostPathOf(dir), problem: 'is a symbolic link' });
        return;
      }
      if (!entry.isDirectory()) return;
      for (const child of host.listEntries(dir)) {
        const name = child.name;
        const file = `${dir}/${name}`;
        const hostFile = `${HOST_PATHS.mdevctlConfig}/${parent}/${name}`;
        if (!child.isFile()) {
          if (child.isSymbolicLink()) problems.push({ file: hostFile, problem: 'is a symbolic link; definitions must be plain files' });
          continue;
        }
        if (!isUuid(name)) {
          problems.push({ file: hostFile, problem: 'file name is not a UUID' });
          continue;
        }
        let parsed: DefinitionFile;
        try {
          parsed = parseDefinition(readFileText(file));
        } catch (e) {
          const why = isZodError(e) ? e.issues.map((i) => `${i.path.join('.') || 'file'}: ${i.message}`).join('; ') : (e as Error).message;
          problems.push({ file: hostFile, problem: `not a valid mdevctl definition (${why})` });
          continue;
        }
        definitions.push({
          uuid: name.toLowerCase(),
          parent,
          type: parsed.mdev_type,
          start: parsed.start,
          attrs: parsed.attrs.map((o) => Object.entries(o)[0] as [string, string]),
          file: hostFile,
        });
      }
    }),
  );
  definitions.sort((a, b) => (a.parent === b.parent ? (a.uuid < b.uuid ? -1 : 1) : a.parent < b.parent ? -1 : 1));
  problems.sort((a, b) => (a.file < b.file ? -1 : 1));
  return { definitions, problems };
}
