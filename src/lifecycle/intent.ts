/**
 * The intent record of a changing command (create, define, modify, undefine, start, stop, destroy), the
 * lifecycle's counterpart of apply's journal. Written under the host lock before the first change and
 * removed after the last (or after a complete rollback), it says what a run that is killed half-way had
 * set out to do:
 *   - the devices it creates (UUID, parent, type: the UUIDs it generated, too);
 *   - every definition file it writes or removes, with the content before and what it was to become.
 * The next changing run finds it under the lock (its writer is dead, or it would not hold the lock) and:
 *   - the same command with the same request (a re-run): finishes it. create takes over the devices the
 *     dead run made when they exist with exactly the recorded parent and type, creates the missing ones
 *     and writes the missing definitions, with the same UUIDs (also generated ones);
 *   - anything else: rolls it back first. A device it created goes, unless a VM uses it or a definition
 *     that run did not write asks for it; a definition it wrote goes back to what it was (removed when it
 *     was new), a definition it removed on the way (define --force) is put back. What destroy, undefine
 *     and stop removed is never put back — the operator asked for it to go — and the rest of such a run
 *     is left for its re-run (said in a warning).
 * A file that holds neither what the record says it was nor what it was to become is left alone.
 * vendor-VFIO actions (src/vendor-vfio/) are recorded beside: the VFs whose current_vgpu_type the run sets
 * (with the type), and vendor-vgpus.json before and after. A rollback writes `0` to such a VF while it
 * carries the recorded type, unless a VM uses it or a definition the run did not write asks for it, and
 * puts vendor-vgpus.json back byte for byte (removed when the run made it).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as z from 'zod/mini';
import { isZodError } from '../validation/mini.js';
import { VgpuctlError, errnoOf } from '../errors/vgpuctl-error.js';
import { HOST_PATHS, type HostRoot } from '../host/host-root.js';
import { linkedDefinitionDir, parseDefinition } from '../host/definitions.js';
import { waitForOrphanedMdevctl } from '../host/mdevctl-runner.js';
import { usageOf } from '../rules/device-users.js';
import { removeDeadTemporaries, runActions, writeFileAtomic, type Action } from './actions.js';
import type { Backend } from './backends.js';
import { findTypeOn, type HostState } from './host-state.js';
import { numericTypeId, parseCurrentVgpuType } from '../vendor-vfio/creatable.js';
import { currentTypePath, findVfUsers } from '../vendor-vfio/discovery.js';
import { destroyAction } from '../vendor-vfio/lifecycle.js';
import { parseVendorDefinitions, VENDOR_STATE_PATH } from '../vendor-vfio/state.js';

export const INTENT_PATH = '/var/lib/vgpuctl/intent.json';

const deviceSchema = z.strictObject({ uuid: z.string(), parent: z.string(), type: z.string() });
const defSchema = z.strictObject({ type: z.string(), start: z.enum(['auto', 'manual']) });
const vendorSchema = z.strictObject({
  /** VFs whose nvidia/current_vgpu_type the run sets, with the type (nvidia-ID). */
  creates: z.array(z.strictObject({ vf: z.string(), type: z.string() })),
  /** vendor-vgpus.json: its content before the run (null: none) and what the run writes; null: not written. */
  file: z.nullable(z.strictObject({ before: z.nullable(z.string()), after: z.string() })),
});

// zod/mini (src/validation/mini.ts): every changing command reads this record; classic zod costs its start-up.
export const intentSchema = z.strictObject({
  version: z.literal(1),
  pid: z.int(),
  started: z.string(),
  command: z.string(),
  /** The request, normalised: a re-run with the same key finishes the run. */
  key: z.string(),
  creates: z.array(deviceSchema),
  /** Definition files (host paths): content before the run (null: none), what the run makes of it (null: removed). */
  files: z.array(z.strictObject({ file: z.string(), before: z.nullable(z.string()), after: z.nullable(defSchema) })),
  /** vendor-VFIO actions (absent when the run has none). */
  vendor: z.optional(vendorSchema),
});
export type Intent = z.infer<typeof intentSchema>;

/** Commands whose removals were asked for: never undone by a rollback. */
const REMOVING = new Set(['destroy', 'undefine', 'stop']);

/** The pending record, or null. A record that cannot be read is reported: a run must not guess around it. */
export async function readIntent(host: HostRoot): Promise<Intent | null> {
  let text: string;
  try {
    text = await fs.readFile(host.path(INTENT_PATH), 'utf8');
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return null;
    throw new VgpuctlError('refused', `cannot read the intent record ${INTENT_PATH}: ${errnoOf(e) ?? e}`, { cause: e });
  }
  try {
    return intentSchema.parse(JSON.parse(text));
  } catch (e) {
    // It is written by rename, so never torn by vgpuctl: someone else wrote it.
    throw new VgpuctlError(
      'refused',
      `${INTENT_PATH} is not an intent record of vgpuctl (${isZodError(e) ? e.issues[0]?.message : (e as Error).message}); look at it, and remove it if no vgpuctl run was interrupted`,
      { cause: e },
    );
  }
}

/** Directories this process made for the record (real paths, outermost first): removed with it. */
const madeDirs = new Map<string, string[]>();

export async function writeIntent(host: HostRoot, intent: Intent): Promise<void> {
  try {
    const dir = path.dirname(host.path(INTENT_PATH));
    const first = await fs.mkdir(dir, { recursive: true, mode: 0o755 });
    if (first !== undefined && !madeDirs.has(host.root)) {
      const made: string[] = [];
      for (let d = dir; d.length >= first.length; d = path.dirname(d)) made.unshift(d);
      madeDirs.set(host.root, made);
    }
    await writeFileAtomic(host.path(INTENT_PATH), `${JSON.stringify(intent, null, 2)}\n`);
  } catch (e) {
    await removeMadeDirs(host);
    throw new VgpuctlError('refused', `cannot write the intent record ${INTENT_PATH}: ${errnoOf(e) ?? e}; nothing was changed`, { cause: e });
  }
}

/** The directories writeIntent made, deepest first, as far as they are empty. */
async function removeMadeDirs(host: HostRoot): Promise<void> {
  const dirs = [path.dirname(host.path(INTENT_PATH)), ...[...(madeDirs.get(host.root) ?? [])].reverse()];
  madeDirs.delete(host.root);
  for (const d of new Set(dirs)) if ((await fs.rmdir(d).then(() => true, () => false)) === false) break;
}

/** Removes the record, and its directory when that is empty (a run leaves no trace). */
export async function removeIntent(host: HostRoot): Promise<void> {
  await fs.rm(host.path(INTENT_PATH), { force: true });
  await removeMadeDirs(host);
}

const isDefinitionFile = (p: string): boolean => p.startsWith(`${HOST_PATHS.mdevctlConfig}/`);

const readOrNull = (host: HostRoot, hostPath: string): Promise<string | null> => fs.readFile(host.path(hostPath), 'utf8').catch(() => null);

function parseOrNull(text: string | null): z.infer<typeof defSchema> | null {
  if (text === null) return null;
  try {
    const d = parseDefinition(text);
    return { type: d.mdev_type, start: d.start };
  } catch {
    return null;
  }
}

const argAfter = (args: string[], flag: string): string | undefined => {
  const i = args.indexOf(flag);
  return i < 0 ? undefined : args[i + 1];
};

/** What the actions create and which definition files they change; `previous`: the record being finished. */
export async function intentOf(host: HostRoot, command: string, key: string, actions: Action[], previous: Intent | null): Promise<Intent> {
  const creates = [...(previous?.creates ?? [])];
  for (const a of actions) {
    if (a.kind !== 'sysfs-write' && a.kind !== 'mdevctl') continue;
    const { action, uuid, parent, type } = a.ctx;
    if (action !== 'create' || !uuid || !parent || !type) continue;
    if (!creates.some((c) => c.uuid === uuid)) creates.push({ uuid, parent, type });
  }
  const files = new Map<string, Intent['files'][number]>((previous?.files ?? []).map((f) => [f.file, { ...f }]));
  const touch = async (file: string, after: (before: z.infer<typeof defSchema> | null) => z.infer<typeof defSchema> | null) => {
    let f = files.get(file);
    if (!f) {
      const before = await readOrNull(host, file);
      f = { file, before, after: parseOrNull(before) };
      files.set(file, f);
    }
    f.after = after(f.after);
  };
  for (const a of actions) {
    if (a.kind === 'write-file' && isDefinitionFile(a.path)) await touch(a.path, () => parseOrNull(a.content));
    if (a.kind === 'remove-file' && isDefinitionFile(a.path)) await touch(a.path, () => null);
    if (a.kind === 'mdevctl' && isDefinitionFile(a.ctx.path)) {
      const [verb] = a.args;
      if (verb === 'define') await touch(a.ctx.path, () => ({ type: argAfter(a.args, '-t') ?? '', start: a.args.includes('-a') ? 'auto' : 'manual' }));
      if (verb === 'undefine') await touch(a.ctx.path, () => null);
      if (verb === 'modify' && (a.args.includes('--auto') || a.args.includes('--manual'))) {
        await touch(a.ctx.path, (was) => (was === null ? null : { type: was.type, start: a.args.includes('--auto') ? 'auto' : 'manual' }));
      }
    }
  }
  const vendor = await vendorIntentOf(host, actions, previous);
  return { version: 1, pid: process.pid, started: new Date().toISOString(), command, key, creates, files: [...files.values()], ...(vendor ? { vendor } : {}) };
}

const isVendorTypePath = (p: string): boolean => /^\/sys\/bus\/pci\/devices\/[^/]+\/nvidia\/current_vgpu_type$/.test(p);

/** The vendor-VFIO part of the record: VFs the actions give a type, and the definitions file they write. */
async function vendorIntentOf(host: HostRoot, actions: Action[], previous: Intent | null): Promise<Intent['vendor'] | undefined> {
  const creates = [...(previous?.vendor?.creates ?? [])];
  let file = previous?.vendor?.file ? { ...previous.vendor.file } : null;
  for (const a of actions) {
    if (a.kind === 'sysfs-write' && isVendorTypePath(a.path) && a.data !== '0' && a.ctx.parent && a.ctx.type) {
      const vf = a.ctx.parent;
      if (!creates.some((c) => c.vf === vf)) creates.push({ vf, type: a.ctx.type });
    }
    if (a.kind === 'write-file' && a.path === VENDOR_STATE_PATH) file = { before: file ? file.before : await readOrNull(host, VENDOR_STATE_PATH), after: a.content };
  }
  return creates.length > 0 || file !== null ? { creates, file } : undefined;
}

/** What takes back the vendor-VFIO part of an interrupted run (see the header). */
async function vendorRollback(host: HostRoot, intent: Intent, actions: Action[], kept: string[]): Promise<void> {
  const v = intent.vendor;
  if (!v) return;
  const now = await readOrNull(host, VENDOR_STATE_PATH);
  // The definitions the interrupted run did not write: they ask for their VF's vGPU (start of a defined one).
  const others = parseVendorDefinitions((v.file ? v.file.before : now) ?? '{"version":1,"vgpus":[]}') ?? [];
  const users = await findVfUsers(host, v.creates.map((c) => c.vf));
  for (const c of v.creates) {
    const id = numericTypeId(c.type);
    if (id === null || parseCurrentVgpuType(await readOrNull(host, currentTypePath(c.vf))) !== id) continue;
    const running = users.get(c.vf)?.running ?? [];
    if (running.length > 0) {
      kept.push(`the vGPU on ${c.vf} stays: in use by ${running.join(', ')}`);
      continue;
    }
    if (others.some((d) => d.vf === c.vf && d.type === c.type)) {
      kept.push(`the vGPU on ${c.vf} stays: defined in ${VENDOR_STATE_PATH}`);
      continue;
    }
    actions.push(destroyAction(c.vf, id, null));
  }
  if (REMOVING.has(intent.command) || !v.file || now === v.file.before) return;
  if (now !== v.file.after) {
    kept.push(`${VENDOR_STATE_PATH} stays as it is: it holds neither what it held nor what the interrupted run wrote`);
    return;
  }
  actions.push(
    v.file.before === null
      ? { kind: 'remove-file', path: VENDOR_STATE_PATH, summary: `remove ${VENDOR_STATE_PATH}, written by the interrupted run` }
      : { kind: 'write-file', path: VENDOR_STATE_PATH, content: v.file.before, summary: `put back ${VENDOR_STATE_PATH} as it was` },
  );
}

const sameDef = (a: z.infer<typeof defSchema> | null, b: z.infer<typeof defSchema> | null): boolean => a !== null && b !== null && a.type === b.type && a.start === b.start;

/**
 * The actions that take back what an interrupted run did (see the header), and what stays with why.
 * Removals a destroy, undefine or stop made are not taken back.
 */
export async function rollbackActions(state: HostState, backend: Backend, intent: Intent): Promise<{ actions: Action[]; kept: string[] }> {
  const actions: Action[] = [];
  const kept: string[] = [];
  const newFiles = new Set(intent.files.filter((f) => f.before === null).map((f) => f.file));
  for (const c of intent.creates) {
    const active = state.active.find((d) => d.uuid === c.uuid);
    if (!active || active.parent !== c.parent || active.type !== c.type) continue;
    const users = usageOf(state.users, c.uuid);
    if (users.running.length > 0) {
      kept.push(`${c.uuid} stays: in use by ${users.running.join(', ')}`);
      continue;
    }
    // A definition the interrupted run did not write asks for the device (start of a defined device).
    const wanted = state.definitions.filter((d) => d.uuid === c.uuid && !newFiles.has(d.file));
    if (wanted.length > 0) {
      kept.push(`${c.uuid} stays: defined in ${wanted.map((d) => d.file).join(', ')}`);
      continue;
    }
    const profile = findTypeOn(state, c.parent, c.type)?.profile?.profile ?? null;
    actions.push(backend.remove({ uuid: c.uuid, parent: c.parent, type: c.type, profile }));
  }
  if (!REMOVING.has(intent.command)) {
    for (const f of intent.files) {
      const now = await readOrNull(state.host, f.file);
      if (now === f.before) continue;
      // Gone (define --force through mdevctl removes before it writes): the definition that was there comes back.
      const landed = now === null || sameDef(parseOrNull(now), f.after);
      if (!landed) {
        kept.push(`${f.file} stays as it is: it holds neither what it held nor what the interrupted run wrote`);
        continue;
      }
      actions.push(
        f.before === null
          ? { kind: 'remove-file', path: f.file, summary: `remove ${f.file}, written by the interrupted run` }
          : { kind: 'write-file', path: f.file, content: f.before, summary: `put back ${path.posix.basename(f.file)} under ${path.posix.basename(path.posix.dirname(f.file))} as it was` },
      );
    }
  }
  await vendorRollback(state.host, intent, actions, kept);
  return { actions, kept };
}

export interface Recovery {
  /** The record to finish (a re-run of the same request), or null. */
  resume: Intent | null;
}

const describeRun = (i: Intent): string => `a previous '${i.command}' (pid ${i.pid}, started ${i.started})`;

/**
 * Under the host lock, before a changing run plans: finds an interrupted run's record and either hands it
 * back to be finished (same command and key) or rolls it back and removes it.
 */
export async function recoverInterrupted(
  ex: { host: HostRoot; writer: import('../host/sysfs-writer.js').SysfsWriter; warn: (m: string) => void },
  readState: () => Promise<HostState>,
  backend: Backend,
  command: string,
  key: string | null,
): Promise<Recovery> {
  const pending = await readIntent(ex.host);
  if (pending === null) return { resume: null };
  // mdevctl runs the killed vgpuctl started may still be writing (--backend mdevctl).
  if ((await waitForOrphanedMdevctl(ex.host)) > 0) ex.warn('waited for mdevctl runs of the interrupted vgpuctl to finish');
  if (key !== null && pending.command === command && pending.key === key) {
    ex.warn(`${describeRun(pending)} was interrupted; finishing it`);
    return { resume: pending };
  }
  const { actions, kept } = await rollbackActions(await readState(), backend, pending);
  const what = actions.map((a) => a.summary);
  if (actions.length > 0) {
    try {
      await runActions({ host: ex.host, writer: ex.writer }, actions);
    } catch (e) {
      throw new VgpuctlError('refused', `${describeRun(pending)} was interrupted and cannot be rolled back: ${(e as Error).message}; the record stays in ${INTENT_PATH}`, { cause: e });
    }
  }
  // A file write the kill cut short leaves its temporary file (mdevctl warns about it on every listing).
  for (const dir of new Set([...pending.files.map((f) => f.file), ...(pending.vendor?.file ? [VENDOR_STATE_PATH] : [])].map((f) => path.posix.dirname(f)))) {
    if (linkedDefinitionDir(ex.host, `${dir}/x`) === null) await removeDeadTemporaries(ex.host.path(dir));
  }
  const removing = REMOVING.has(pending.command);
  ex.warn(
    `${describeRun(pending)} was interrupted; ` +
      (what.length > 0 ? `rolled back: ${what.join('; ')}` : removing ? `what it removed stays removed; run it again to finish it` : 'nothing of it was left to roll back') +
      (kept.length > 0 ? `; ${kept.join('; ')}` : ''),
  );
  await removeIntent(ex.host);
  return { resume: null };
}
