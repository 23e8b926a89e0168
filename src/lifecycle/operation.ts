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

export async function runOperation<R>(
  lc: LifecycleContext,
  command: string,
  plan: (state: HostState, backend: Backend) => Promise<Planned<R>> | Planned<R>,
): Promise<OperationOutcome<R>> {
  const backend = makeBackend(lc.backend, lc.host);
  if (lc.dryRun) {
    const p = await plan(await readHostState(lc.host), backend);
    return { result: p.result, dry_run: true, actions: p.actions.map(describeAction), notes: p.notes ?? [] };
  }
  return withHostLock(
    lc.host,
    {
      timeoutMs: lc.lockTimeoutMs,
      command,
      onTakeover: (pid) => lc.warn(`took over the lock of vgpuctl pid ${pid}, which is no longer running`),
    },
    async () => {
      const p = await plan(await readHostState(lc.host), backend);
      await runActions({ host: lc.host, writer: lc.writer }, p.actions);
      return { result: p.result, dry_run: false, actions: p.actions.map(describeAction), notes: p.notes ?? [] };
    },
  );
}
