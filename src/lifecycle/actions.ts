/**
 * Every change vgpuctl makes is first written down as an Action; a dry run prints them, a real run
 * performs them in order. Each action carries its undo, so a failure at step k undoes steps k-1..1 and
 * the error says what failed and what was undone.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import { linkedDefinitionDir } from '../host/definitions.js';
import type { HostRoot } from '../host/host-root.js';
import { runMdevctl } from '../host/mdevctl-runner.js';
import type { SysfsWriter } from '../host/sysfs-writer.js';
import { settle } from '../simulator/kernel.js';
import { translateWriteError, type WriteContext } from './kernel-errors.js';

/** What undoes an action: one action, or several performed in order. */
export type Undo = Action | Action[];

export type Action =
  | { kind: 'sysfs-write'; path: string; data: string; summary: string; ctx: WriteContext; undo?: Undo }
  | { kind: 'write-file'; path: string; content: string; summary: string; undo?: Undo }
  | { kind: 'remove-file'; path: string; summary: string; undo?: Undo }
  | { kind: 'write-link'; path: string; target: string; summary: string; undo?: Undo }
  | { kind: 'mdevctl'; args: string[]; summary: string; ctx: WriteContext; undo?: Undo };

/** The JSON form of an action for --dry-run and reports (host paths, exact data). */
export function describeAction(a: Action): Record<string, unknown> {
  return { ...describeFields(a), line: actionLine(a) };
}

function describeFields(a: Action): Record<string, unknown> {
  switch (a.kind) {
    case 'sysfs-write':
      return { kind: a.kind, path: a.path, data: a.data, summary: a.summary };
    case 'write-file':
      return { kind: a.kind, path: a.path, content: a.content, summary: a.summary };
    case 'remove-file':
      return { kind: a.kind, path: a.path, summary: a.summary };
    case 'write-link':
      return { kind: a.kind, path: a.path, target: a.target, summary: a.summary };
    case 'mdevctl':
      return { kind: 'command', argv: ['mdevctl', ...a.args], summary: a.summary };
  }
}

export function actionLine(a: Action): string {
  switch (a.kind) {
    case 'sysfs-write':
      return `echo ${a.data} > ${a.path}`;
    case 'write-file':
      return `write ${a.path}`;
    case 'remove-file':
      return `rm ${a.path}`;
    case 'write-link':
      return `ln -s ${a.target} ${a.path}`;
    case 'mdevctl':
      return `mdevctl ${a.args.join(' ')}`;
  }
}

export interface Executor {
  host: HostRoot;
  writer: SysfsWriter;
}

const TMP_RE = /^\..+\.vgpuctl-(\d+)\.tmp$/;

/** Temporary files of vgpuctl runs that died before their rename (kill -9): removed, never read. */
export async function removeDeadTemporaries(dir: string): Promise<void> {
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    const pid = Number(TMP_RE.exec(name)?.[1] ?? 0);
    if (pid <= 0 || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch (e) {
      // Only files: a directory there is not one of ours.
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') await fs.unlink(path.join(dir, name)).catch(() => undefined);
    }
  }
}

/**
 * Writes a file the way an operator's tools expect: temporary file in the same directory, then rename.
 * The file is 0644 whatever the umask; a failed step leaves no temporary file behind (nor does a run
 * killed before its rename, once the next write in that directory has run: removeDeadTemporaries).
 */
export async function writeFileAtomic(realPath: string, content: string): Promise<void> {
  const dir = path.dirname(realPath);
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  await removeDeadTemporaries(dir);
  const tmp = path.join(dir, `.${path.basename(realPath)}.vgpuctl-${process.pid}.tmp`);
  // O_EXCL: whatever sits at the temporary name (a link, anything) is never written through.
  const handle = await fs.open(tmp, 'wx', 0o644);
  try {
    try {
      await handle.chmod(0o644);
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, realPath);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}

/** A file vgpuctl is about to replace must not be a symbolic link: rename would drop the link, but whoever planted it meant something. */
async function refuseLink(ex: Executor, hostPath: string, verb: string): Promise<void> {
  const st = await fs.lstat(ex.host.path(hostPath)).catch(() => null);
  if (!st?.isSymbolicLink()) return;
  const target = await fs.readlink(ex.host.path(hostPath)).catch(() => '?');
  throw new VgpuctlError(
    'refused',
    `will not ${verb} ${hostPath}: it is a symbolic link (to ${target}); vgpuctl never writes through links — remove the link if you did not put it there`,
  );
}

/** A definition is never written or removed through a linked /etc/mdevctl.d/<parent> (definitions.ts). */
function refuseLinkedDefinitionDir(ex: Executor, hostPath: string, verb: string): void {
  const p = linkedDefinitionDir(ex.host, hostPath);
  if (p) throw new VgpuctlError('refused', `will not ${verb} ${hostPath}: ${p.file} ${p.problem}`);
}

async function perform(ex: Executor, a: Action): Promise<void> {
  if (a.kind === 'write-file' || a.kind === 'remove-file' || a.kind === 'write-link') refuseLinkedDefinitionDir(ex, a.path, a.kind === 'remove-file' ? 'remove' : 'write');
  // mdevctl would follow the link itself: the same check before it runs on a definition.
  if (a.kind === 'mdevctl') refuseLinkedDefinitionDir(ex, a.ctx.path, `run mdevctl ${a.args[0] ?? ''} on`);
  switch (a.kind) {
    case 'sysfs-write':
      try {
        await ex.writer.write(ex.host.path(a.path), a.data);
      } catch (e) {
        throw translateWriteError(e, a.ctx);
      }
      return;
    case 'write-file':
      await refuseLink(ex, a.path, 'write');
      try {
        await writeFileAtomic(ex.host.path(a.path), a.content);
      } catch (e) {
        throw new VgpuctlError('refused', `cannot write ${a.path}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
      }
      return;
    case 'remove-file':
      try {
        await fs.rm(ex.host.path(a.path));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw new VgpuctlError('refused', `cannot remove ${a.path}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
      }
      return;
    case 'write-link':
      try {
        const real = ex.host.path(a.path);
        await fs.mkdir(path.dirname(real), { recursive: true });
        await fs.symlink(a.target, real);
      } catch (e) {
        throw new VgpuctlError('refused', `cannot create link ${a.path}: ${(e as NodeJS.ErrnoException).code ?? e}`, { cause: e });
      }
      return;
    case 'mdevctl': {
      const r = await runMdevctl(ex.host, a.args);
      if (r.exitCode !== 0) {
        const msg = r.stderr.trim().replace(/^Error:\s*/i, '') || `exit code ${r.exitCode}`;
        throw new VgpuctlError('command', `mdevctl ${a.args.join(' ')} failed: ${msg}`, { details: { exitCode: r.exitCode } });
      }
      if (ex.writer.simulated) {
        // mdevctl wrote into the simulated tree: let the simulated kernel react, as a real one would at once.
        // Only a refusal of this action's own write fails it (a UUID written to a `create`, or `1` to this
        // device's `remove`); writes another program left pending are applied or refused on their own.
        const s = await settle(ex.host);
        const uuid = a.ctx.uuid;
        const refusal = uuid === undefined ? undefined : s.refused.find((r) => r.written.trim().toLowerCase() === uuid || path.posix.basename(path.posix.dirname(r.file)) === uuid);
        if (refusal) throw translateWriteError(Object.assign(new Error(refusal.message), { code: refusal.errno }), a.ctx);
      }
      return;
    }
  }
}

export interface RunResult {
  done: Action[];
}

/**
 * Performs the actions in order. On a failure, undoes what was done (newest first) and throws one error
 * that names the failed step and the undone ones.
 */
export async function runActions(ex: Executor, actions: Action[]): Promise<RunResult> {
  const done: Action[] = [];
  for (const a of actions) {
    try {
      await perform(ex, a);
      done.push(a);
      ex.writer.step?.();
    } catch (e) {
      const undone: string[] = [];
      const undoFailed: string[] = [];
      for (const d of [...done].reverse()) {
        for (const u of d.undo === undefined ? [] : ([] as Action[]).concat(d.undo)) {
          try {
            await perform(ex, u);
            undone.push(u.summary);
          } catch (ue) {
            undoFailed.push(`${u.summary} (${(ue as Error).message})`);
          }
        }
      }
      const base = e instanceof VgpuctlError ? e : new VgpuctlError('internal', String((e as Error)?.message ?? e), { cause: e });
      const parts = [base.message];
      // After earlier steps succeeded, say which step this was (the kernel's sentence names only a path).
      if (done.length > 0) parts.push(`failed at step ${done.length + 1} of ${actions.length}: ${a.summary}`);
      if (undone.length > 0) parts.push(`undone: ${undone.join('; ')}`);
      if (undoFailed.length > 0) parts.push(`could not undo: ${undoFailed.join('; ')} — run the command again or 'vgpuctl list --all' to see what is left`);
      if (done.length === 0) parts.push('nothing was changed');
      throw new VgpuctlError(base.code, parts.join('. '), { cause: e, details: { ...base.details, failed: a.summary, undone, undoFailed } });
    }
  }
  return { done };
}
