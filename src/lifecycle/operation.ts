/**
 * The shape every changing command shares: read the host, check every rule and write down the actions,
 * then perform them with rollback. A real run reads and plans under the host lock, so a plan is never
 * acted on against state that another run changed in between; a dry run takes no lock and changes nothing.
 */
import type { Catalogue } from '../catalogue/catalogue.js';
import type { HostRoot } from '../host/host-root.js';
import type { SysfsWriter } from '../host/sysfs-writer.js';
import { describeAction, runActions, type Action } from './actions.js';
import { makeBackend, type Backend, type BackendName } from './backends.js';
import { readHostState, type HostState } from './host-state.js';
import { intentOf, readIntent, recoverInterrupted, removeIntent, writeIntent, type Intent } from './intent.js';
import { withHostLock } from './lock.js';

export interface LifecycleContext {
  host: HostRoot;
  writer: SysfsWriter;
  catalogue: Catalogue;
  backend: BackendName;
  dryRun: boolean;
  lockTimeoutMs?: number;
  warn: (message: string) => void;
}

export interface Planned<R> {
  actions: Action[];
  result: R;
  /** Messages for the operator that are not errors ("already stopped"). */
  notes?: string[];
}

export interface OperationOutcome<R> {
  result: R;
  dry_run: boolean;
  actions: Array<Record<string, unknown>>;
  notes: string[];
}

/**
 * `key`: the request, normalised (the same for a re-run of the same command line). A real run finds the
 * intent record of an interrupted run (intent.ts): with the same command and key, `plan` is handed it as
 * `resume` and finishes it; otherwise it is rolled back before `plan` reads the host. The run writes its
 * own record before its first change and removes it after its last, or after a complete rollback.
 */
export async function runOperation<R>(
  lc: LifecycleContext,
  command: string,
  plan: (state: HostState, backend: Backend, resume: Intent | null) => Promise<Planned<R>> | Planned<R>,
  key: string | null = null,
): Promise<OperationOutcome<R>> {
  const backend = makeBackend(lc.backend, lc.host);
  if (lc.dryRun) {
    const pending = await pendingRecord(lc.host, command, key);
    const p = await plan(await readHostState(lc.host), backend, pending.resume);
    return { result: p.result, dry_run: true, actions: p.actions.map(describeAction), notes: [...pending.notes, ...(p.notes ?? [])] };
  }
  return withHostLock(
    lc.host,
    {
      timeoutMs: lc.lockTimeoutMs,
      command,
      onTakeover: (pid) => lc.warn(`took over the lock of vgpuctl pid ${pid}, which is no longer running`),
    },
    async () => {
      const { resume } = await recoverInterrupted({ ...lc }, () => readHostState(lc.host), backend, command, key);
      const p = await plan(await readHostState(lc.host), backend, resume);
      if (p.actions.length === 0) {
        if (resume) await removeIntent(lc.host);
        return { result: p.result, dry_run: false, actions: [], notes: p.notes ?? [] };
      }
      await writeIntent(lc.host, await intentOf(lc.host, command, key ?? '', p.actions, resume));
      lc.writer.step?.();
      try {
        await runActions({ host: lc.host, writer: lc.writer }, p.actions);
      } catch (e) {
        // Rolled back completely: nothing of this run is left, so no record either. Otherwise keep it, so
        // the next run finishes or takes back what this one left.
        const undoFailed = (e as { details?: Record<string, unknown> }).details?.['undoFailed'];
        // A finished-off run keeps the record whatever happened: it also holds what the interrupted run made.
        if (resume === null && Array.isArray(undoFailed) && undoFailed.length === 0) await removeIntent(lc.host);
        throw e;
      }
      await removeIntent(lc.host);
      return { result: p.result, dry_run: false, actions: p.actions.map(describeAction), notes: p.notes ?? [] };
    },
  );
}

/**
 * A dry run changes nothing, an interrupted run's record included: a re-run's dry run shows how it would
 * finish the record; any other says that a real run would first roll it back.
 */
async function pendingRecord(host: HostRoot, command: string, key: string | null): Promise<{ resume: Intent | null; notes: string[] }> {
  const pending = await readIntent(host).catch((e: Error) => e);
  if (pending === null) return { resume: null, notes: [] };
  if (pending instanceof Error) return { resume: null, notes: [pending.message] };
  const same = key !== null && pending.command === command && pending.key === key;
  const what = `a previous '${pending.command}' (pid ${pending.pid}, started ${pending.started}) was interrupted`;
  return same
    ? { resume: pending, notes: [`${what}; these actions finish it`] }
    : { resume: null, notes: [`${what}; a real run first rolls it back (not shown in these actions)`] };
}
