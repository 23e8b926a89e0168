/** Finding a device by UUID across active devices and definitions, with operator-friendly errors. */
import { promises as fs } from 'node:fs';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import type { Definition } from '../host/definitions.js';
import type { ActiveMdev } from '../host/mdev.js';
import type { HostState } from './host-state.js';

export function definitionsOf(state: HostState, uuid: string, parent?: string): Definition[] {
  return state.definitions.filter((d) => d.uuid === uuid && (parent === undefined || d.parent === parent));
}

/**
 * A file where a definition of the UUID would be (under `parent`, or any parent) that is not one: a
 * symbolic link, or not a valid definition. vgpuctl neither follows nor replaces nor removes such a file:
 * the refusal says which file and why.
 */
export function refuseBrokenDefinition(state: HostState, uuid: string, parent?: string): void {
  const p = state.definitionProblems.find((x) => {
    const dir = x.file.split('/');
    return dir[dir.length - 1]!.toLowerCase() === uuid && (parent === undefined || dir[dir.length - 2] === parent);
  });
  if (!p) return;
  const what = p.problem.startsWith('is ') ? p.problem : `is ${p.problem}`;
  throw new VgpuctlError('refused', `${p.file} ${what}; vgpuctl does not follow, replace or remove it: look at it and remove it by hand`);
}

/** Exactly one definition of a UUID, or an error that says how to pick one. */
export function oneDefinition(state: HostState, uuid: string, parent?: string): Definition {
  const defs = definitionsOf(state, uuid, parent);
  if (defs.length === 0) {
    refuseBrokenDefinition(state, uuid, parent);
    const active = activeDevice(state, uuid);
    throw new VgpuctlError(
      'not-found',
      active
        ? `${uuid} is active (${active.type} on ${active.parent}) but not defined; persist it with 'vgpuctl define -u ${uuid}'`
        : `no definition of ${uuid}${parent ? ` under ${parent}` : ''}; see 'vgpuctl list --defined'`,
    );
  }
  if (defs.length > 1) {
    throw new VgpuctlError('invalid-input', `${uuid} is defined under several parents (${defs.map((d) => d.parent).join(', ')}); choose one with -p`);
  }
  return defs[0]!;
}

export const activeDevice = (state: HostState, uuid: string): ActiveMdev | undefined => state.active.find((d) => d.uuid === uuid);

export async function definitionContent(state: HostState, def: Definition): Promise<string> {
  return fs.readFile(state.host.path(def.file), 'utf8');
}
