/**
 * Two ways to make the same change: writing sysfs and /etc/mdevctl.d ourselves, or asking mdevctl.
 * Both produce Actions; both must reach the same end state.
 */
import { definitionPath, formatDefinition, type Definition } from '../host/definitions.js';
import { HOST_PATHS, type HostRoot } from '../host/host-root.js';
import type { Action } from './actions.js';
import type { WriteContext } from './kernel-errors.js';

// The flag's values; the CLI validates them (no zod here: cleanup and health load this module).
export const BACKENDS = ['sysfs', 'mdevctl'] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface DeviceSpec {
  uuid: string;
  parent: string;
  type: string;
  profile: string | null;
}

export interface DefinitionSpec extends DeviceSpec {
  start: 'auto' | 'manual';
  attrs: Array<[string, string]>;
}

export interface Backend {
  name: BackendName;
  create(d: DeviceSpec, ctx?: Partial<WriteContext>): Action;
  /** Starts a defined device: create it, then write its attributes as mdevctl does. */
  start(def: Definition, profile: string | null, ctx?: Partial<WriteContext>): Action[];
  /** Changes the start mode of a definition. */
  setStart(def: Definition, content: string, start: 'auto' | 'manual'): Action;
  remove(d: DeviceSpec): Action;
  /** previous: the definition this replaces (only with --force), restored by the undo. */
  define(d: DefinitionSpec, previous: Definition | null, previousContent: string | null): Action[];
  undefine(d: Definition, content: string): Action;
}

const label = (d: DeviceSpec) => `${d.uuid} (${d.profile ?? d.type} on ${d.parent})`;

export function sysfsBackend(host: HostRoot): Backend {
  const hostDefPath = (parent: string, uuid: string) => host.hostPathOf(definitionPath(host, parent, uuid));
  const remove = (d: DeviceSpec): Action => ({
    kind: 'sysfs-write',
    path: `${HOST_PATHS.mdevDevices}/${d.uuid}/remove`,
    data: '1',
    summary: `remove ${label(d)}`,
    ctx: { action: 'remove', path: `${HOST_PATHS.mdevDevices}/${d.uuid}/remove`, uuid: d.uuid, parent: d.parent, type: d.type, profile: d.profile },
  });
  return {
    name: 'sysfs',
    create: (d, ctx) => {
      const p = `${HOST_PATHS.mdevBus}/${d.parent}/mdev_supported_types/${d.type}/create`;
      return {
        kind: 'sysfs-write',
        path: p,
        data: d.uuid,
        summary: `create ${label(d)}`,
        ctx: { action: 'create', path: p, uuid: d.uuid, parent: d.parent, type: d.type, profile: d.profile, ...ctx },
        undo: remove(d),
      };
    },
    remove,
    start: (def, profile, ctx) => {
      const d = { uuid: def.uuid, parent: def.parent, type: def.type, profile };
      const p = `${HOST_PATHS.mdevBus}/${d.parent}/mdev_supported_types/${d.type}/create`;
      const create: Action = {
        kind: 'sysfs-write',
        path: p,
        data: d.uuid,
        summary: `create ${label(d)}`,
        ctx: { action: 'create', path: p, uuid: d.uuid, parent: d.parent, type: d.type, profile, ...ctx },
        undo: remove(d),
      };
      const attrs: Action[] = def.attrs.map(([k, v]) => {
        const ap = `${HOST_PATHS.mdevDevices}/${d.uuid}/${k}`;
        return { kind: 'sysfs-write', path: ap, data: v, summary: `set ${k}=${v} on ${d.uuid}`, ctx: { action: 'write', path: ap, uuid: d.uuid, parent: d.parent } };
      });
      return [create, ...attrs];
    },
    setStart: (def, content, start) => ({
      kind: 'write-file',
      path: def.file,
      content: formatDefinition({ type: def.type, start, attrs: def.attrs }),
      summary: `set start ${start} for ${def.uuid}`,
      undo: { kind: 'write-file', path: def.file, content, summary: `restore the definition of ${def.uuid}` },
    }),
    define: (d, previous, previousContent) => {
      const p = hostDefPath(d.parent, d.uuid);
      const undo: Action =
        previous && previousContent !== null && previous.parent === d.parent
          ? { kind: 'write-file', path: p, content: previousContent, summary: `restore the previous definition of ${d.uuid}` }
          : { kind: 'remove-file', path: p, summary: `remove the new definition of ${d.uuid}` };
      const actions: Action[] = [];
      if (previous && previousContent !== null && previous.parent !== d.parent) {
        // Moving a definition to another parent: drop the old file, restore it on failure.
        actions.push({
          kind: 'remove-file',
          path: previous.file,
          summary: `remove the old definition of ${d.uuid} under ${previous.parent}`,
          undo: { kind: 'write-file', path: previous.file, content: previousContent, summary: `restore the definition of ${d.uuid} under ${previous.parent}` },
        });
      }
      actions.push({
        kind: 'write-file',
        path: p,
        content: formatDefinition({ type: d.type, start: d.start, attrs: d.attrs }),
        summary: `define ${label(d)}, start ${d.start}`,
        undo,
      });
      return actions;
    },
    undefine: (def, content) => ({
      kind: 'remove-file',
      path: def.file,
      summary: `undefine ${def.uuid} (${def.type} on ${def.parent})`,
      undo: { kind: 'write-file', path: def.file, content, summary: `restore the definition of ${def.uuid}` },
    }),
  };
}

export function mdevctlBackend(host: HostRoot): Backend {
  const remove = (d: DeviceSpec): Action => ({
    kind: 'mdevctl',
    args: ['stop', '-u', d.uuid],
    summary: `remove ${label(d)}`,
    ctx: { action: 'remove', path: `${HOST_PATHS.mdevDevices}/${d.uuid}/remove`, uuid: d.uuid, parent: d.parent, type: d.type, profile: d.profile },
  });
  return {
    name: 'mdevctl',
    create: (d, ctx) => ({
      kind: 'mdevctl',
      args: ['start', '-u', d.uuid, '-p', d.parent, '-t', d.type],
      summary: `create ${label(d)}`,
      ctx: { action: 'create', path: `${HOST_PATHS.mdevBus}/${d.parent}/mdev_supported_types/${d.type}/create`, uuid: d.uuid, parent: d.parent, type: d.type, profile: d.profile, ...ctx },
      undo: remove(d),
    }),
    remove,
    start: (def, profile, ctx) => [
      {
        kind: 'mdevctl',
        args: ['start', '-u', def.uuid, '-p', def.parent],
        summary: `create ${label({ uuid: def.uuid, parent: def.parent, type: def.type, profile })}`,
        ctx: { action: 'create', path: `${HOST_PATHS.mdevBus}/${def.parent}/mdev_supported_types/${def.type}/create`, uuid: def.uuid, parent: def.parent, type: def.type, profile, ...ctx },
        undo: remove({ uuid: def.uuid, parent: def.parent, type: def.type, profile }),
      },
    ],
    setStart: (def, content, start) => ({
      kind: 'mdevctl',
      args: ['modify', '-u', def.uuid, '-p', def.parent, start === 'auto' ? '--auto' : '--manual'],
      summary: `set start ${start} for ${def.uuid}`,
      ctx: { action: 'write', path: def.file },
      undo: { kind: 'write-file', path: def.file, content, summary: `restore the definition of ${def.uuid}` },
    }),
    define: (d, previous, previousContent) => {
      const actions: Action[] = [];
      if (previous && previousContent !== null) {
        // mdevctl refuses to overwrite ("Cowardly refusing"): undefine first; the undo puts the old file back byte for byte.
        actions.push({
          kind: 'mdevctl',
          args: ['undefine', '-u', previous.uuid, '-p', previous.parent],
          summary: `undefine the previous definition of ${d.uuid}`,
          ctx: { action: 'write', path: previous.file },
          undo: { kind: 'write-file', path: previous.file, content: previousContent, summary: `restore the previous definition of ${d.uuid}` },
        });
      }
      const args = ['define', '-u', d.uuid, '-p', d.parent, '-t', d.type];
      if (d.start === 'auto') args.push('-a');
      actions.push({
        kind: 'mdevctl',
        args,
        summary: `define ${label(d)}, start ${d.start}`,
        ctx: { action: 'write', path: host.hostPathOf(definitionPath(host, d.parent, d.uuid)) },
        undo: { kind: 'remove-file', path: host.hostPathOf(definitionPath(host, d.parent, d.uuid)), summary: `remove the new definition of ${d.uuid}` },
      });
      // mdevctl define takes no attributes on the command line; add them with modify.
      for (const [k, v] of d.attrs) {
        actions.push({
          kind: 'mdevctl',
          args: ['modify', '-u', d.uuid, '-p', d.parent, `--addattr=${k}`, `--value=${v}`],
          summary: `set attribute ${k} of ${d.uuid}`,
          ctx: { action: 'write', path: host.hostPathOf(definitionPath(host, d.parent, d.uuid)) },
        });
      }
      return actions;
    },
    undefine: (def, content) => ({
      kind: 'mdevctl',
      args: ['undefine', '-u', def.uuid, '-p', def.parent],
      summary: `undefine ${def.uuid} (${def.type} on ${def.parent})`,
      ctx: { action: 'write', path: def.file },
      undo: { kind: 'write-file', path: def.file, content, summary: `restore the definition of ${def.uuid}` },
    }),
  };
}

export const makeBackend = (name: BackendName, host: HostRoot): Backend => (name === 'mdevctl' ? mdevctlBackend(host) : sysfsBackend(host));
