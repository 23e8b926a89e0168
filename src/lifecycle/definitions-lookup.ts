/** Finding a device by UUID across active devices and definitions, with operator-friendly errors. */
import { promises as fs } from 'node:fs';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import type { Definition } from '../host/definitions.js';
import type { ActiveMdev } from '../host/mdev.js';
import type { HostState } from './host-state.js';

export function definitionsOf(state: HostState, uuid: string, parent?: string): Definition[] {
  return state.definitions.filter((d) => d.uuid === uuid && (parent === undefined || d.parent === parent));
}

/** Exactly one definition of a UUID, or an error that says how to pick one. */
export function oneDefinition(state: HostState, uuid: string, parent?: string): Definition {
  const defs = definitionsOf(state, uuid, parent);
  if (defs.length === 0) {
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
