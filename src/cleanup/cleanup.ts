/**
 * `vgpuctl cleanup`: finds the state that outlives the devices it belonged to, and removes what is safe.
 * - definitions whose parent or type no longer exists: reported, removed only with --orphans;
 * - active mdevs nobody defined and no VM uses: reported, removed only with --orphans;
 * - nvidia-mdev@UUID.service units and links for UUIDs neither defined nor active: removed;
 * - vGPUs `nvidia-smi vgpu -q` still lists for mdevs that are gone, and per-vGPU nvidia-vgpu-mgr
 *   processes beyond what the live vGPUs need: reported; with --restart-vgpu-mgr the service is restarted
 *   through systemctl, only when no running VM uses a vGPU. The GPU's `reset` is never written (seed 004).
 */
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import { runTool, type ToolPaths } from '../host/external-command.js';
import type { HostRoot } from '../host/host-root.js';
import { listProcesses } from '../host/processes.js';
import { findDeviceUnits, type DeviceUnit } from '../host/systemd-units.js';
import { describeAction, runActions, type Action } from '../lifecycle/actions.js';
import { makeBackend } from '../lifecycle/backends.js';
import { definitionContent } from '../lifecycle/definitions-lookup.js';
import { recoverInterrupted } from '../lifecycle/intent.js';
import { findParent, findTypeOn, readHostState, type HostState } from '../lifecycle/host-state.js';
import { withHostLock } from '../lifecycle/lock.js';
import type { LifecycleContext } from '../lifecycle/operation.js';
import { usageOf } from '../rules/device-users.js';
import { parseVgpuQuery, type DriverVgpu } from './nvidia-smi-vgpu.js';
import { findVendorOrphans, vendorRuntime } from '../vendor-vfio/cleanup.js';
import { VENDOR_STATE_PATH } from '../vendor-vfio/state.js';

export interface CleanupOptions {
  orphans: boolean;
  restartVgpuMgr: boolean;
  tools: ToolPaths;
  timeoutMs: number;
}

export interface Finding {
  kind: 'orphan-definition' | 'undefined-active-mdev' | 'stale-unit' | 'stale-driver-vgpu' | 'leftover-vgpu-mgr' | 'nvidia-smi-unavailable';
  subject: string;
  detail: string;
  /** What cleanup does (or would do) about it. */
  resolution: 'removed' | 'kept' | 'reported' | 'restarted' | 'refused';
}

export interface CleanupReport {
  dry_run: boolean;
  findings: Finding[];
  actions: Array<Record<string, unknown>>;
  vgpu_mgr: { restart: 'done' | 'not-needed' | 'not-requested' | 'refused' | 'dry-run'; blocking_vms: string[] };
}

export interface DriverState {
  vgpus: DriverVgpu[];
  available: boolean;
  error: string | null;
}

export async function queryDriverVgpus(tools: ToolPaths, timeoutMs: number): Promise<DriverState> {
  const r = await runTool(tools.nvidiaSmi, ['vgpu', '-q'], timeoutMs);
  if (r.failure === 'not-found') return { vgpus: [], available: false, error: `${tools.nvidiaSmi} is not installed` };
  if (r.failure === 'timeout') return { vgpus: [], available: false, error: `${tools.nvidiaSmi} vgpu -q did not answer within ${timeoutMs} ms` };
  if (!r.ok) return { vgpus: [], available: false, error: `${tools.nvidiaSmi} vgpu -q failed (exit ${r.exitCode}): ${r.stderr.trim() || r.stdout.trim()}` };
  return { vgpus: parseVgpuQuery(r.stdout), available: true, error: null };
}

/** nvidia-vgpu-mgr processes: the service's daemon plus one per running vGPU. */
async function vgpuMgrProcesses(host: HostRoot): Promise<number[]> {
  return (await listProcesses(host)).filter((p) => p.comm === 'nvidia-vgpu-mgr' || /(^|\/)nvidia-vgpu-mgr$/.test(p.argv[0] ?? '')).map((p) => p.pid);
}

/**
 * Running VMs that hold any vGPU on this host (restarting the vGPU manager would take their vGPUs away),
 * one name per VM: a running libvirt domain and its qemu process (`-name guest=NAME`) are the same VM.
 */
export function runningVgpuVms(state: HostState): string[] {
  const vms = new Set<string>();
  for (const d of state.active) {
    for (const dom of state.users.domains.get(d.uuid) ?? []) if (dom.running) vms.add(dom.name);
    for (const q of state.users.qemu.get(d.uuid) ?? []) vms.add(q.name ?? `qemu pid ${q.pid}`);
  }
  return [...vms].sort();
}

export interface Leftovers {
  orphanDefinitions: Array<{ def: HostState['definitions'][number]; reason: string }>;
  undefinedActive: HostState['active'];
  staleUnits: DeviceUnit[];
  staleDriverVgpus: DriverVgpu[];
  vgpuMgr: { processes: number[]; expected: number; leftover: number };
}

/** Shared with `health`: everything that outlived its device, without changing anything. */
/** `vendorActive`: vGPUs on vendor-VFIO VFs, which have manager processes too (src/vendor-vfio/cleanup.ts). */
export async function findLeftovers(state: HostState, driver: DriverState, vendorActive = 0): Promise<Leftovers> {
  const orphanDefinitions = state.definitions
    .map((def) => {
      if (!findParent(state, def.parent)) return { def, reason: `parent ${def.parent} does not exist` };
      if (!findTypeOn(state, def.parent, def.type)) return { def, reason: `${def.parent} has no type ${def.type}` };
      return null;
    })
    .filter((x): x is NonNullable<typeof x> => x !== null);
  const definedUuids = new Set(state.definitions.map((d) => d.uuid));
  const undefinedActive = state.active.filter((a) => {
    if (definedUuids.has(a.uuid)) return false;
    const u = usageOf(state.users, a.uuid);
    return u.running.length === 0 && u.inactiveDomains.length === 0;
  });
  const activeUuids = new Set(state.active.map((a) => a.uuid));
  const staleUnits = (await findDeviceUnits(state.host)).filter((u) => !definedUuids.has(u.uuid) && !activeUuids.has(u.uuid));
  const staleDriverVgpus = driver.vgpus.filter((v) => v.mdevUuid !== null && !activeUuids.has(v.mdevUuid));
  const processes = await vgpuMgrProcesses(state.host);
  // One daemon, plus one process per vGPU the driver runs for a VM. Without the driver's list (nvidia-smi
  // missing, failed or hung) every active mdev may have its process: nothing can be called left over then.
  const live = (driver.available ? driver.vgpus.filter((v) => v.mdevUuid !== null && activeUuids.has(v.mdevUuid)).length : state.active.length) + vendorActive;
  const expected = processes.length === 0 ? 0 : 1 + live;
  return {
    orphanDefinitions,
    undefinedActive,
    staleUnits,
    staleDriverVgpus,
    vgpuMgr: { processes, expected, leftover: Math.max(0, processes.length - expected) },
  };
}

export async function cleanup(lc: LifecycleContext, opts: CleanupOptions): Promise<CleanupReport> {
  const work = async (): Promise<CleanupReport> => {
    const state = await readHostState(lc.host);
    const driver = await queryDriverVgpus(opts.tools, opts.timeoutMs);
    const vendorRt = await vendorRuntime(lc.host, lc.catalogue);
    const l = await findLeftovers(state, driver, vendorRt.active);
    const backend = makeBackend(lc.backend, lc.host);
    const findings: Finding[] = [];
    const actions: Action[] = [];

    for (const { def, reason } of l.orphanDefinitions) {
      findings.push({ kind: 'orphan-definition', subject: def.uuid, detail: `${def.file}: ${reason}`, resolution: opts.orphans ? 'removed' : 'kept' });
      if (opts.orphans) actions.push(backend.undefine(def, await definitionContent(state, def)));
    }
    // vendor-VFIO definitions (vgpuctl's own file) whose VF is gone: src/vendor-vfio/cleanup.ts.
    const vendor = await findVendorOrphans(lc.host, lc.catalogue);
    for (const o of vendor.orphans) {
      findings.push({ kind: 'orphan-definition', subject: o.uuid, detail: `${VENDOR_STATE_PATH}: ${o.def.type} on ${o.def.vf}: ${o.reason}`, resolution: opts.orphans ? 'removed' : 'kept' });
    }
    const vendorRemoval = opts.orphans ? vendor.remove() : null;
    if (vendorRemoval) actions.push(vendorRemoval);
    for (const d of vendor.undefinedActive) {
      findings.push({ kind: 'undefined-active-mdev', subject: d.uuid, detail: `${d.type} on the vendor-VFIO VF ${d.vf}: active, not defined, no VM names it`, resolution: opts.orphans ? 'removed' : 'kept' });
      if (opts.orphans) actions.push(vendor.destroy(d));
    }
    for (const a of l.undefinedActive) {
      findings.push({ kind: 'undefined-active-mdev', subject: a.uuid, detail: `${a.type} on ${a.parent}: active, not defined, no VM names it`, resolution: opts.orphans ? 'removed' : 'kept' });
      if (opts.orphans) actions.push(backend.remove({ uuid: a.uuid, parent: a.parent, type: a.type, profile: findTypeOn(state, a.parent, a.type)?.profile?.profile ?? null }));
    }
    for (const u of l.staleUnits) {
      findings.push({ kind: 'stale-unit', subject: u.uuid, detail: `${u.path}: ${u.unit} names a device that is neither defined nor active`, resolution: 'removed' });
      actions.push({
        kind: 'remove-file',
        path: u.path,
        summary: `remove stale ${u.kind === 'wants-link' ? 'boot link' : 'unit file'} ${u.path}`,
        undo: u.kind === 'wants-link' ? { kind: 'write-link', path: u.path, target: u.target ?? '', summary: `restore ${u.path}` } : { kind: 'write-file', path: u.path, content: u.content ?? '', summary: `restore ${u.path}` },
      });
    }
    if (!driver.available) findings.push({ kind: 'nvidia-smi-unavailable', subject: opts.tools.nvidiaSmi, detail: driver.error ?? 'unavailable', resolution: 'reported' });
    for (const v of l.staleDriverVgpus) {
      findings.push({
        kind: 'stale-driver-vgpu',
        subject: v.mdevUuid!,
        detail: `nvidia-smi still lists vGPU ${v.vgpuId} (${v.vgpuName ?? v.vgpuType ?? '?'}${v.vmName ? `, VM ${v.vmName}` : ''}) on ${v.gpu} for an mdev that no longer exists`,
        resolution: 'reported',
      });
    }
    if (l.vgpuMgr.leftover > 0) {
      findings.push({
        kind: 'leftover-vgpu-mgr',
        subject: 'nvidia-vgpu-mgr',
        detail: `${l.vgpuMgr.processes.length} nvidia-vgpu-mgr processes (pids ${l.vgpuMgr.processes.join(', ')}) where ${l.vgpuMgr.expected} are expected`,
        resolution: 'reported',
      });
    }

    const needsRestart = l.staleDriverVgpus.length > 0 || l.vgpuMgr.leftover > 0;
    const blocking = [...new Set([...runningVgpuVms(state), ...vendorRt.runningVms])].sort();
    const restart: CleanupReport['vgpu_mgr']['restart'] = !needsRestart ? 'not-needed' : !opts.restartVgpuMgr ? 'not-requested' : lc.dryRun ? 'dry-run' : blocking.length > 0 ? 'refused' : 'done';
    if (needsRestart && opts.restartVgpuMgr && blocking.length > 0) {
      for (const f of findings) if (f.kind === 'stale-driver-vgpu' || f.kind === 'leftover-vgpu-mgr') f.resolution = 'refused';
    }
    const report: CleanupReport = { dry_run: lc.dryRun, findings, actions: actions.map(describeAction), vgpu_mgr: { restart, blocking_vms: blocking } };
    if (lc.dryRun) return report;

    await runActions({ host: lc.host, writer: lc.writer }, actions);
    if (restart === 'done') {
      const r = await runTool(opts.tools.systemctl, ['restart', 'nvidia-vgpu-mgr.service'], opts.timeoutMs);
      if (!r.ok) {
        throw new VgpuctlError('command', `systemctl restart nvidia-vgpu-mgr.service failed${r.failure ? ` (${r.failure})` : ` (exit ${r.exitCode})`}: ${r.stderr.trim()}; the other clean-up steps were done`);
      }
      for (const f of findings) if (f.kind === 'stale-driver-vgpu' || f.kind === 'leftover-vgpu-mgr') f.resolution = 'restarted';
    }
    report.vgpu_mgr.restart = restart;
    return report;
  };
  if (lc.dryRun) return work();
  return withHostLock(lc.host, { timeoutMs: lc.lockTimeoutMs, command: 'cleanup', onTakeover: (pid) => lc.warn(`took over the lock of vgpuctl pid ${pid}, which is no longer running`) }, async () => {
    // An interrupted create, define, ... (src/lifecycle/intent.ts) is rolled back before clean-up looks for leftovers.
    await recoverInterrupted({ host: lc.host, writer: lc.writer, warn: lc.warn }, () => readHostState(lc.host), makeBackend(lc.backend, lc.host), 'cleanup', null);
    return work();
  });
}
