/**
 * `vgpuctl health`: host prerequisites and vGPU state as Nagios-style checks. Every check has its own time
 * limit, so a hung sysfs read or nvidia-smi ends as UNKNOWN for that check instead of hanging cron.
 */
import type { Catalogue } from '../catalogue/catalogue.js';
import { runTool, type ToolPaths } from '../host/external-command.js';
import { HOST_PATHS, type HostRoot } from '../host/host-root.js';
import { listGpus, listTypes } from '../host/inventory.js';
import { listProcesses } from '../host/processes.js';
import { readHostState, type HostState } from '../lifecycle/host-state.js';
import { findLeftovers, queryDriverVgpus } from '../cleanup/cleanup.js';
import { findVendorOrphans, vendorRuntime } from '../vendor-vfio/cleanup.js';
import { vendorCapacity } from '../vendor-vfio/capacity.js';
import { vendorPlanPart } from '../vendor-vfio/plan.js';
import { readVendorState, vfHandle } from '../vendor-vfio/discovery.js';
import { typeIdOf } from '../vendor-vfio/creatable.js';
import { converge, hostNamespace } from '../plan/converge.js';
import type { Plan } from '../plan/plan-file.js';

export type Status = 'OK' | 'WARNING' | 'CRITICAL' | 'UNKNOWN';
export const STATUS_CODE: Record<Status, number> = { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 };

export interface CheckResult {
  check: string;
  status: Status;
  message: string;
  duration_ms: number;
}

export interface CapacityMetric {
  parent: string;
  type: string;
  profile: string | null;
  available: number;
  active: number;
}

export interface HealthReport {
  status: Status;
  /** How many checks ended in each status: an UNKNOWN is counted even when a CRITICAL outranks it. */
  counts: Record<Status, number>;
  checks: CheckResult[];
  capacity: CapacityMetric[];
}

export interface HealthOptions {
  plan?: Plan;
  tools: ToolPaths;
  /** Time limit of each check. */
  checkTimeoutMs: number;
  catalogue: Catalogue;
}

type CheckFn = () => Promise<{ status: Status; message: string }>;

async function timed(name: string, fn: CheckFn, limitMs: number): Promise<CheckResult> {
  const start = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<{ status: Status; message: string }>((resolve) => {
    timer = setTimeout(() => resolve({ status: 'UNKNOWN', message: `did not finish within ${limitMs} ms` }), limitMs);
  });
  try {
    const r = await Promise.race([fn().catch((e: Error) => ({ status: 'UNKNOWN' as Status, message: e.message })), timeout]);
    return { check: name, ...r, duration_ms: Date.now() - start };
  } finally {
    clearTimeout(timer);
  }
}

async function loadedModules(host: HostRoot): Promise<Set<string>> {
  const text = (await host.readAttr(host.path(HOST_PATHS.procModules))) ?? '';
  const mods = new Set(text.split('\n').map((l) => l.split(' ')[0]!).filter(Boolean));
  // Built-in modules are not in /proc/modules but have a /sys/module entry.
  for (const m of await host.list(host.path('/sys/module'))) mods.add(m);
  return mods;
}

/**
 * Overall status: CRITICAL > WARNING > UNKNOWN > OK, the ranking of the monitoring plugins (Monitoring::Plugin's
 * max_state_alt): a problem that was seen outranks a check that could not run, and a check that could not run
 * is never reported as OK. The UNKNOWN checks an outranking status hides stay in `counts` and the summary.
 */
export const STATUS_RANK: readonly Status[] = ['CRITICAL', 'WARNING', 'UNKNOWN', 'OK'];

export function overallStatus(results: readonly { status: Status }[]): Status {
  return STATUS_RANK.find((s) => results.some((r) => r.status === s)) ?? 'OK';
}

export function countStatuses(results: readonly { status: Status }[]): Record<Status, number> {
  const counts: Record<Status, number> = { OK: 0, WARNING: 0, CRITICAL: 0, UNKNOWN: 0 };
  for (const r of results) counts[r.status]++;
  return counts;
}

export async function runHealth(host: HostRoot, opts: HealthOptions): Promise<HealthReport> {
  let statePromise: Promise<HostState> | undefined;
  const state = () => (statePromise ??= readHostState(host));
  const limit = opts.checkTimeoutMs;
  const capacity: CapacityMetric[] = [];

  const checks: Array<[string, CheckFn]> = [
    [
      'iommu',
      async () => {
        const cmdline = (await host.readAttr(host.path(HOST_PATHS.procCmdline))) ?? '';
        const units = await host.list(host.path(HOST_PATHS.iommuClass));
        const groups = await host.list(host.path(HOST_PATHS.iommuGroups));
        const flag = /(^|\s)(intel_iommu=on|amd_iommu=on|amd_iommu=force_enable)(\s|$)/.test(cmdline);
        if (units.length === 0 && groups.length === 0) return { status: 'CRITICAL', message: 'the IOMMU is off: no /sys/class/iommu units and no IOMMU groups; add intel_iommu=on (or amd_iommu=on) iommu=pt to the kernel command line' };
        if (!flag && units.length === 0) return { status: 'WARNING', message: `IOMMU groups exist but the kernel command line has no intel_iommu=on/amd_iommu=on (${groups.length} groups)` };
        return { status: 'OK', message: `IOMMU on (${units.length} units, ${groups.length} groups)` };
      },
    ],
    [
      'modules',
      async () => {
        const mods = await loadedModules(host);
        if (mods.has('nouveau')) return { status: 'CRITICAL', message: 'nouveau is loaded: blacklist it (vgpuctl prepare) and rebuild the initramfs' };
        const s = await state();
        const needsMdev = s.parents.length > 0 || mods.has('nvidia_vgpu_vfio');
        const missing = needsMdev && !mods.has('nvidia_vgpu_vfio') && !mods.has('mdev') ? ['nvidia_vgpu_vfio or mdev'] : [];
        if (missing.length > 0) return { status: 'WARNING', message: `modules not loaded: ${missing.join(', ')}` };
        return { status: 'OK', message: `nouveau not loaded${mods.has('nvidia_vgpu_vfio') ? ', nvidia_vgpu_vfio loaded' : ''}${mods.has('vfio_pci') ? ', vfio_pci loaded' : ''}` };
      },
    ],
    [
      'gpus',
      async () => {
        const { gpus } = await listGpus(host, opts.catalogue);
        if (gpus.length === 0) return { status: 'WARNING', message: 'no NVIDIA GPU found' };
        const wrong = gpus.filter((g) => g.mode === 'host' && g.driver !== 'nvidia');
        const sriovOff = gpus.filter((g) => g.mode === 'sriov-disabled');
        if (sriovOff.length > 0) return { status: 'CRITICAL', message: `SR-IOV not enabled on ${sriovOff.map((g) => g.address).join(', ')}: run /usr/lib/nvidia/sriov-manage -e ALL` };
        if (wrong.length > 0) return { status: 'WARNING', message: `not bound to nvidia or vfio-pci: ${wrong.map((g) => `${g.address} (${g.driver ?? 'no driver'})`).join(', ')}` };
        return { status: 'OK', message: gpus.map((g) => `${g.address} ${g.board ?? '?'} ${g.mode}`).join(', ') };
      },
    ],
    [
      'vgpu-manager',
      async () => {
        const s = await state();
        if (s.parents.filter((p) => p.pciAddress !== null).length === 0 && (await listGpus(host, opts.catalogue)).gpus.every((g) => g.mode === 'passthrough')) {
          return { status: 'OK', message: 'no vGPU GPUs on this host' };
        }
        if (host.isSystemRoot) {
          const r = await runTool(opts.tools.systemctl, ['is-active', 'nvidia-vgpu-mgr.service'], limit);
          if (r.failure !== 'not-found') {
            if (r.failure === 'timeout') return { status: 'UNKNOWN', message: 'systemctl did not answer in time' };
            return r.stdout.trim() === 'active' ? { status: 'OK', message: 'nvidia-vgpu-mgr.service is active' } : { status: 'CRITICAL', message: `nvidia-vgpu-mgr.service is ${r.stdout.trim() || 'not active'}` };
          }
        }
        const running = (await listProcesses(host)).some((p) => p.comm === 'nvidia-vgpu-mgr' || /(^|\/)nvidia-vgpu-mgr$/.test(p.argv[0] ?? ''));
        return running ? { status: 'OK', message: 'nvidia-vgpu-mgr is running' } : { status: 'CRITICAL', message: 'nvidia-vgpu-mgr is not running: systemctl start nvidia-vgpu-mgr' };
      },
    ],
    [
      'mdev-bus',
      async () => {
        const s = await state();
        const { gpus } = await listGpus(host, opts.catalogue);
        const vgpuGpus = gpus.filter((g) => g.driver === 'nvidia');
        if (vgpuGpus.length > 0 && s.parents.length === 0 && !gpus.some((g) => g.mode === 'vendor-vfio')) {
          return { status: 'CRITICAL', message: 'GPUs are on the nvidia driver but no mdev parent exists: is the vGPU manager installed (and SR-IOV enabled)?' };
        }
        return { status: 'OK', message: `${s.parents.length} mdev parent(s)` };
      },
    ],
    [
      'autostart',
      async () => {
        const s = await state();
        const down = s.definitions.filter((d) => d.start === 'auto' && !s.active.some((a) => a.uuid === d.uuid) && s.parents.some((p) => p.name === d.parent)).map((d) => d.uuid);
        const vs = await readVendorState(host, opts.catalogue); // vendor-VFIO definitions whose VF is present
        for (const d of vs.definitions) if (d.start === 'auto' && vs.vfs.some((v) => v.address === d.vf && typeIdOf(v.current) !== d.type)) down.push(`${vfHandle(d.vf)} (${d.vf})`);
        return down.length === 0 ? { status: 'OK', message: 'every start-auto definition is running' } : { status: 'WARNING', message: `start-auto definitions not running: ${down.join(', ')} (vgpuctl start --autostart)` };
      },
    ],
    [
      'leftovers',
      async () => {
        const s = await state();
        const driver = await queryDriverVgpus(opts.tools, limit);
        const l = await findLeftovers(s, driver, (await vendorRuntime(host, opts.catalogue)).active);
        const parts: string[] = [];
        const vendor = await findVendorOrphans(host, opts.catalogue);
        const orphans = l.orphanDefinitions.length + vendor.orphans.length;
        if (orphans > 0) parts.push(`${orphans} orphan definition(s)`);
        parts.push(...vendor.problems);
        const undefinedActive = l.undefinedActive.length + vendor.undefinedActive.length;
        if (undefinedActive > 0) parts.push(`${undefinedActive} undefined unused mdev(s)`);
        if (l.staleUnits.length > 0) parts.push(`${l.staleUnits.length} stale unit(s)`);
        if (l.staleDriverVgpus.length > 0) parts.push(`${l.staleDriverVgpus.length} vGPU(s) nvidia-smi lists for gone mdevs`);
        if (l.vgpuMgr.leftover > 0) parts.push(`${l.vgpuMgr.leftover} leftover nvidia-vgpu-mgr process(es)`);
        if (!driver.available && driver.error && /did not answer/.test(driver.error)) return { status: 'UNKNOWN', message: driver.error };
        return parts.length === 0 ? { status: 'OK', message: 'no leftovers' } : { status: 'WARNING', message: `${parts.join(', ')} (vgpuctl cleanup)` };
      },
    ],
    [
      'capacity',
      async () => {
        const s = await state();
        const [{ types: all }, vendor] = await Promise.all([listTypes(host, opts.catalogue), vendorCapacity(host, opts.catalogue)]);
        // vendor-VFIO GPUs are counted per GPU (src/vendor-vfio/capacity.ts), not per VF.
        const types = all.filter((t) => !vendor.vfs.has(t.parent));
        for (const t of types) capacity.push({ parent: t.parent, type: t.type, profile: t.profile, available: t.available_instances, active: s.active.filter((a) => a.parent === t.parent && a.type === t.type).length });
        capacity.push(...vendor.rows);
        const total = capacity.reduce((n, t) => n + t.available, 0);
        return { status: 'OK', message: `${total} instance(s) available across ${capacity.length} type(s)` };
      },
    ],
  ];
  if (opts.plan) {
    const plan = opts.plan;
    checks.push([
      'plan',
      async () => {
        const s = await state();
        const ns = plan.uuid_namespace ?? hostNamespace(await host.readAttr(host.path('/etc/machine-id')));
        // vendor-VFIO entries beside converge(), as apply and assert do.
        const vendor = await vendorPlanPart({ host, catalogue: opts.catalogue }, plan);
        const c = converge(s, opts.catalogue, vendor.mdevPlan, { namespace: ns, prune: false });
        const problems = [...c.problems, ...vendor.problems];
        if (problems.length > 0) return { status: 'CRITICAL', message: `the plan cannot be met: ${problems.join('; ')}` };
        const drift = [...c.devices, ...vendor.devices].filter((d) => d.needs.length > 0);
        const n = c.devices.length + vendor.devices.length;
        return drift.length === 0 ? { status: 'OK', message: `host matches the plan (${n} vGPUs)` } : { status: 'CRITICAL', message: `drift from the plan: ${drift.map((d) => `${d.uuid} needs ${d.needs.join('+')}`).join(', ')} (vgpuctl apply)` };
      },
    ]);
  }
  const results = await Promise.all(checks.map(([name, fn]) => timed(name, fn, limit)));
  return { status: overallStatus(results), counts: countStatuses(results), checks: results, capacity };
}

