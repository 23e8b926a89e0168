/**
 * plan / apply / assert. apply writes an intent journal before its first change and removes it after the
 * last; a run that finds a journal knows the previous apply was interrupted, removes the devices that run
 * created and the current plan does not hold, and converges like any other run.
 */
import { remapEntry, remapProblem, vendorPlanPart } from '../vendor-vfio/plan.js';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import { linkedDefinitionDir } from '../host/definitions.js';
import { HOST_PATHS, type HostRoot } from '../host/host-root.js';
import { describeAction, runActions, writeFileAtomic, type Action } from '../lifecycle/actions.js';
import { makeBackend } from '../lifecycle/backends.js';
import { recoverInterrupted } from '../lifecycle/intent.js';
import { readHostState, findTypeOn, type HostState } from '../lifecycle/host-state.js';
import { LOCK_PATH, withHostLock } from '../lifecycle/lock.js';
import type { LifecycleContext } from '../lifecycle/operation.js';
import { usageOf } from '../rules/device-users.js';
import { placementOf, typeUsage } from '../rules/placement.js';
import { additionalFit, shapeOf } from '../rules/gpu-capacity.js';
import { converge, hostNamespace, type Convergence, type HostDevice } from './converge.js';
import type { Plan } from './plan-file.js';

export const JOURNAL_PATH = '/var/lib/vgpuctl/apply-journal.json';

const journalSchema = z.object({
  pid: z.number().int(),
  started: z.string(),
  creates: z.array(z.object({ uuid: z.string(), parent: z.string(), type: z.string() })),
});
type Journal = z.infer<typeof journalSchema>;

export interface PlanReport {
  changed: boolean;
  dry_run: boolean;
  namespace: string;
  devices: Array<{ uuid: string; parent: string; type: string; profile: string | null; autostart: boolean; entry: number; gpu: string; adopted: boolean; needs: string[] }>;
  changes: Array<{ action: string; uuid: string; parent: string; type: string }>;
  unplanned: Array<{ uuid: string; parent: string; type: string; active: boolean; defined: boolean; in_use: string[]; reason: string; pruned: boolean }>;
  capacity: Array<{ parent: string; type: string; profile: string | null; available_after: number | null }>;
  interrupted_previous: boolean;
  actions: Array<Record<string, unknown>>;
}

async function namespaceFor(host: HostRoot, plan: Plan): Promise<string> {
  if (plan.uuid_namespace) return plan.uuid_namespace;
  const machineId = await host.readAttr(host.path('/etc/machine-id'));
  return hostNamespace(machineId);
}

const pidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * A vgpuctl killed while writing a file leaves its temporary file behind: `.NAME.vgpuctl-PID.tmp` next to a
 * definition or the journal (writeFileAtomic), `lock.PID.RANDOM.new` beside the lock. mdevctl warns about a
 * definition directory entry that is not a UUID on every listing, so an apply takes away those of dead
 * processes (under the host lock, never one of a live process).
 */
async function removeDeadTempFiles(host: HostRoot): Promise<string[]> {
  const base = host.path(HOST_PATHS.mdevctlConfig);
  // Never inside a linked parent directory (definitions.ts): nothing is removed through a link.
  const parents = (await fs.readdir(base).catch(() => [] as string[]))
    .filter((p) => p !== 'scripts.d')
    .map((p) => path.join(base, p))
    .filter((p) => linkedDefinitionDir(host, host.hostPathOf(path.join(p, 'x'))) === null);
  const dirs = [...parents, path.dirname(host.path(JOURNAL_PATH)), path.dirname(host.path(LOCK_PATH))];
  const removed: string[] = [];
  for (const dir of dirs) {
    for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
      const m = /^\..+\.vgpuctl-(\d+)\.tmp$/.exec(name) ?? /^lock\.(\d+)\.[0-9a-f]+\.new$/.exec(name);
      const pid = m ? Number(m[1]) : NaN;
      if (!m || pid === process.pid || pidAlive(pid)) continue;
      await fs.rm(path.join(dir, name), { force: true });
      removed.push(host.hostPathOf(path.join(dir, name)));
    }
  }
  return removed;
}

async function readJournal(host: HostRoot): Promise<Journal | null> {
  const text = await host.readAttr(host.path(JOURNAL_PATH));
  if (text === null) return null;
  try {
    return journalSchema.parse(JSON.parse(text));
  } catch {
    // A journal cut short by a crash: it still says a previous apply was interrupted.
    return { pid: 0, started: 'unknown', creates: [] };
  }
}

function changesOf(c: Convergence, leaked: HostDevice[]): PlanReport['changes'] {
  const out: PlanReport['changes'] = [];
  for (const d of [...c.prune, ...leaked]) {
    if (d.active) out.push({ action: 'remove', uuid: d.uuid, parent: d.parent, type: d.type });
    if (d.definition) out.push({ action: 'undefine', uuid: d.uuid, parent: d.parent, type: d.type });
  }
  for (const d of c.devices) for (const n of d.needs) out.push({ action: n, uuid: d.uuid, parent: d.parent, type: d.type });
  return out;
}

function actionsOf(lc: LifecycleContext, state: HostState, c: Convergence, leaked: HostDevice[], contents: Map<string, string>): Action[] {
  const backend = makeBackend(lc.backend, lc.host);
  const actions: Action[] = [];
  for (const d of [...leaked, ...c.prune]) {
    const profile = findTypeOn(state, d.parent, d.type)?.profile?.profile ?? null;
    if (d.active) actions.push(backend.remove({ uuid: d.uuid, parent: d.parent, type: d.type, profile }));
    if (d.definition) actions.push(backend.undefine(d.definition, contents.get(d.definition.file) ?? ''));
  }
  for (const d of c.devices) {
    const spec = { uuid: d.uuid, parent: d.parent, type: d.type, profile: d.profile };
    const start = d.autostart ? 'auto' : 'manual';
    const t = findTypeOn(state, d.parent, d.type);
    const usage = t ? typeUsage(state, state.gpuOfParent.get(d.parent)!, t) : undefined;
    for (const n of d.needs) {
      if (n === 'create') actions.push(backend.create(spec, { usage }));
      if (n === 'start') actions.push(...backend.start(d.existing!.definition!, d.profile, { usage }));
      if (n === 'define') actions.push(...backend.define({ ...spec, start, attrs: [] }, null, null));
      if (n === 'set-start') actions.push(backend.setStart(d.existing!.definition!, contents.get(d.existing!.definition!.file) ?? '', start));
    }
  }
  return actions;
}

function capacityAfter(lc: LifecycleContext, state: HostState, c: Convergence): PlanReport['capacity'] {
  const out: PlanReport['capacity'] = [];
  const seen = new Set<string>();
  const prunedUuids = new Set(c.prune.map((d) => d.uuid));
  for (const d of c.devices) {
    const key = `${d.gpu}/${d.type}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const gpu = state.gpuOfParent.get(d.parent);
    const t = findTypeOn(state, d.parent, d.type);
    if (!gpu || !t) continue;
    const names = new Set(gpu.parents.map((p) => p.name));
    // What the GPU carries after the plan: planned devices plus unplanned ones that stay.
    const after = [
      ...c.devices.filter((x) => x.gpu === gpu.key),
      ...c.unplanned.filter((u) => names.has(u.parent) && !prunedUuids.has(u.uuid)),
    ];
    const shapes = after.map((x) => findTypeOn(state, x.parent, x.type)).filter((x): x is NonNullable<typeof x> => x !== undefined).map(shapeOf);
    let free = additionalFit(shapes, shapeOf(t), placementOf(lc.catalogue, gpu));
    if (gpu.sriov) free = Math.min(free, gpu.parents.filter((p) => !after.some((x) => x.parent === p.name) && p.types.some((y) => y.id === t.id)).length);
    out.push({ parent: gpu.key, type: d.type, profile: d.profile, available_after: Number.isFinite(free) ? free : null });
  }
  return out;
}

async function computeReport(lc: LifecycleContext, plan: Plan, prune: boolean, journal: Journal | null) {
  const state = await readHostState(lc.host);
  const namespace = await namespaceFor(lc.host, plan);
  // vendor-VFIO GPUs are converged beside converge() (src/vendor-vfio/plan.ts); converge keeps the mdev entries.
  const vendor = await vendorPlanPart(lc, plan, { prune, reclaim: new Set((journal?.creates ?? []).map((j) => j.uuid)) });
  const c = converge(state, lc.catalogue, vendor.mdevPlan, { namespace, prune, reclaim: new Set((journal?.creates ?? []).map((j) => j.uuid)) });
  for (const d of c.devices) d.entry = remapEntry(vendor, d.entry);
  c.problems = [...c.problems.map((p) => remapProblem(vendor, p)), ...vendor.problems];
  c.conflicts = [...c.conflicts.map((p) => remapProblem(vendor, p)), ...vendor.conflicts];
  c.invalid = c.invalid.map((p) => p.replace(/^gpus\.(\d+)|^gpus\[(\d+)\]/, (m, a, b) => (a !== undefined ? `gpus.${remapEntry(vendor, Number(a))}` : `gpus[${remapEntry(vendor, Number(b))}]`)));
  if (c.invalid.length > 0) {
    throw new VgpuctlError('invalid-input', `invalid plan, nothing was changed:\n  - ${c.invalid.join('\n  - ')}`, { details: { problems: c.problems } });
  }
  if (c.problems.length > 0) {
    // A plan this host cannot carry is bad input (exit 2), like a malformed one; a plan blocked only by
    // devices the host already carries is refused (exit 1) — --prune or stopping a VM changes that.
    const onlyConflicts = c.problems.every((p) => c.conflicts.includes(p));
    throw new VgpuctlError(onlyConflicts ? 'refused' : 'invalid-input', `the plan cannot be met on this host, nothing was changed:\n  - ${c.problems.join('\n  - ')}`, { details: { problems: c.problems } });
  }
  // Devices an interrupted apply created that the current plan does not hold: take them back.
  const plannedUuids = new Set(c.devices.map((d) => d.uuid));
  const pruning = new Set(c.prune.map((d) => d.uuid));
  const leaked = (journal?.creates ?? [])
    .map((j) => c.unplanned.find((u) => u.uuid === j.uuid))
    .filter((u): u is NonNullable<typeof u> => u !== undefined && !plannedUuids.has(u.uuid) && !pruning.has(u.uuid) && usageOf(state.users, u.uuid).running.length === 0);
  const contents = new Map<string, string>();
  for (const d of state.definitions) contents.set(d.file, await fs.readFile(lc.host.path(d.file), 'utf8').catch(() => ''));
  const actions = [...actionsOf(lc, state, c, leaked, contents), ...vendor.actions];
  const changes = [...changesOf(c, leaked), ...vendor.pruneChanges, ...vendor.devices.flatMap((d) => d.needs.map((n) => ({ action: n, uuid: d.uuid, parent: d.parent, type: d.type })))];
  const prunedSet = new Set([...c.prune, ...leaked].map((d) => d.uuid));
  const report: PlanReport = {
    changed: actions.length > 0,
    dry_run: true,
    namespace,
    devices: [...c.devices, ...vendor.devices].map((d) => ({ uuid: d.uuid, parent: d.parent, type: d.type, profile: d.profile, autostart: d.autostart, entry: d.entry, gpu: d.gpu, adopted: d.adopted, needs: d.needs })),
    changes,
    unplanned: [...c.unplanned.map((u) => ({ uuid: u.uuid, parent: u.parent, type: u.type, active: u.active, defined: u.definition !== null, in_use: u.in_use, reason: u.reason, pruned: prunedSet.has(u.uuid) })), ...vendor.unplanned],
    capacity: [...capacityAfter(lc, state, c), ...vendor.capacity],
    interrupted_previous: journal !== null,
    actions: actions.map(describeAction),
  };
  return { report, actions, c };
}

/** What apply would do; changes nothing. */
export async function planChanges(lc: LifecycleContext, plan: Plan, prune: boolean): Promise<PlanReport> {
  const journal = await readJournal(lc.host);
  return (await computeReport(lc, plan, prune, journal)).report;
}

/**
 * At boot the GPUs' parents appear some time after the NVIDIA services start (SR-IOV VFs last): wait, a
 * bounded time, until the plan's GPUs are all there, instead of StackHPC's fixed sleeps.
 */
export async function waitForParents(lc: LifecycleContext, plan: Plan, seconds: number): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  const namespace = await namespaceFor(lc.host, plan);
  for (;;) {
    const c = converge(await readHostState(lc.host), lc.catalogue, (await vendorPlanPart(lc, plan)).mdevPlan, { namespace, prune: false });
    const missing = c.problems.filter((p) => /not a vGPU-capable GPU|no GPU offering|no .* GPU on this host|does not offer|no free virtual function/.test(p));
    if (missing.length === 0 || Date.now() >= deadline) return;
    await new Promise((r) => setTimeout(r, 500));
  }
}

export async function applyPlan(lc: LifecycleContext, plan: Plan, prune: boolean): Promise<PlanReport> {
  if (lc.dryRun) return planChanges(lc, plan, prune);
  return withHostLock(
    lc.host,
    { timeoutMs: lc.lockTimeoutMs, command: 'apply', onTakeover: (pid) => lc.warn(`took over the lock of vgpuctl pid ${pid}, which is no longer running`) },
    async () => {
      // An interrupted create, define, ... (src/lifecycle/intent.ts) is rolled back before the plan reads the host.
      await recoverInterrupted({ host: lc.host, writer: lc.writer, warn: lc.warn }, () => readHostState(lc.host), makeBackend(lc.backend, lc.host), 'apply', null);
      const litter = await removeDeadTempFiles(lc.host);
      if (litter.length > 0) lc.warn(`removed ${litter.length} temporary file(s) an interrupted vgpuctl left behind: ${litter.join(', ')}`);
      const journal = await readJournal(lc.host);
      if (journal) lc.warn(`a previous apply (pid ${journal.pid}, started ${journal.started}) was interrupted; converging from the state it left`);
      const { report, actions } = await computeReport(lc, plan, prune, journal);
      report.dry_run = false;
      if (actions.length === 0) {
        if (journal) await fs.rm(lc.host.path(JOURNAL_PATH), { force: true });
        return report;
      }
      const entry: Journal = {
        pid: process.pid,
        started: new Date().toISOString(),
        // Everything this run may create, plus what an interrupted run had announced and not yet cleaned.
        creates: [
          ...(journal?.creates ?? []),
          ...report.changes.filter((ch) => ch.action === 'create').map((ch) => ({ uuid: ch.uuid, parent: ch.parent, type: ch.type })),
        ],
      };
      const journalFile = lc.host.path(JOURNAL_PATH);
      try {
        await fs.mkdir(path.dirname(journalFile), { recursive: true });
        await writeFileAtomic(journalFile, JSON.stringify(entry, null, 2));
      } catch (e) {
        throw new VgpuctlError('refused', `cannot write the apply journal ${JOURNAL_PATH}: ${(e as NodeJS.ErrnoException).code ?? e}; nothing was changed`, { cause: e });
      }
      try {
        await runActions({ host: lc.host, writer: lc.writer }, actions);
      } catch (e) {
        // Rolled back completely: nothing of this run is left, so no journal either. Otherwise keep it, so
        // the next run takes back what this one made.
        const undoFailed = (e as VgpuctlError).details?.['undoFailed'];
        if (Array.isArray(undoFailed) && undoFailed.length === 0) await fs.rm(journalFile, { force: true });
        throw e;
      }
      await fs.rm(journalFile, { force: true });
      return report;
    },
  );
}

export interface AssertReport {
  matches: boolean;
  differences: PlanReport['changes'];
  unplanned: PlanReport['unplanned'];
}

export async function assertPlan(lc: LifecycleContext, plan: Plan): Promise<AssertReport> {
  const state = await readHostState(lc.host);
  // vendor-VFIO entries are checked beside converge(), as apply does (src/vendor-vfio/plan.ts).
  const vendor = await vendorPlanPart(lc, plan);
  const c = converge(state, lc.catalogue, vendor.mdevPlan, { namespace: await namespaceFor(lc.host, plan), prune: false });
  c.problems = [...c.problems.map((p) => remapProblem(vendor, p)), ...vendor.problems];
  c.conflicts = [...c.conflicts.map((p) => remapProblem(vendor, p)), ...vendor.conflicts];
  if (c.invalid.length > 0) throw new VgpuctlError('invalid-input', `invalid plan:\n  - ${c.invalid.join('\n  - ')}`, { details: { problems: c.problems } });
  // A plan no host state could satisfy is bad input; one blocked by devices present is a difference.
  const impossible = c.problems.filter((p) => !c.conflicts.includes(p));
  if (impossible.length > 0) throw new VgpuctlError('invalid-input', `the plan cannot be met on this host:\n  - ${impossible.join('\n  - ')}`, { details: { problems: c.problems } });
  const vendorChanges = vendor.devices.flatMap((d) => d.needs.map((n) => ({ action: n, uuid: d.uuid, parent: d.parent, type: d.type })));
  const differences = c.problems.length > 0 ? c.problems.map((p) => ({ action: 'unmet', uuid: '', parent: '', type: p })) : [...changesOf(c, []), ...vendorChanges];
  return {
    matches: differences.length === 0,
    differences,
    unplanned: [...c.unplanned.map((u) => ({ uuid: u.uuid, parent: u.parent, type: u.type, active: u.active, defined: u.definition !== null, in_use: u.in_use, reason: u.reason, pruned: false })), ...vendor.unplanned],
  };
}
