/**
 * `vgpuctl sriov enable [PF|all]` and `sriov status`: the VFs of NVIDIA's vendor interface appear only after
 * `/usr/lib/nvidia/sriov-manage -e <PF|ALL>` (or a write of sriov_numvfs); then vgpuctl waits, a bounded
 * time, until every VF shows nvidia/creatable_vgpu_types (160 VFs on 8 GPUs take 30 s and more).
 */
import path from 'node:path';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import { runTool } from '../host/external-command.js';
import type { HostRoot } from '../host/host-root.js';
import type { SysfsWriter } from '../host/sysfs-writer.js';
import { discoverPci, isNvidiaGpu, type PciFunction } from '../host/pci.js';
import { translateWriteError } from '../lifecycle/kernel-errors.js';

export const DEFAULT_SRIOV_MANAGE = '/usr/lib/nvidia/sriov-manage';

export interface SriovStatus {
  pf: string;
  totalvfs: number;
  numvfs: number;
  vfs: string[];
  /** VFs whose nvidia/creatable_vgpu_types exists. */
  ready: number;
}

const sriovPfs = (pci: Map<string, PciFunction>): PciFunction[] =>
  [...pci.values()].filter((f) => isNvidiaGpu(f) && f.physfn === null && (f.sriovTotalvfs ?? 0) > 0).sort((a, b) => (a.address < b.address ? -1 : 1));

export async function sriovStatus(host: HostRoot): Promise<SriovStatus[]> {
  const pci = await discoverPci(host);
  return sriovPfs(pci).map((f) => ({
    pf: f.address,
    totalvfs: f.sriovTotalvfs ?? 0,
    numvfs: f.sriovNumvfs ?? 0,
    vfs: f.virtfns,
    ready: f.virtfns.filter((v) => pci.get(v)?.nvidiaVgpuInterface).length,
  }));
}

export interface SriovEnableOptions {
  target: string; // a PF address or 'all'
  writer: SysfsWriter;
  /** sriov-manage (path overridable); null: write sriov_numvfs instead. */
  sriovManage: string | null;
  commandTimeoutMs: number;
  waitMs: number;
}

export async function sriovEnable(host: HostRoot, o: SriovEnableOptions): Promise<{ enabled: SriovStatus[]; method: string; waited_ms: number }> {
  const all = await sriovStatus(host);
  const targets = o.target === 'all' ? all : all.filter((s) => s.pf === o.target);
  if (targets.length === 0) {
    throw new VgpuctlError('not-found', o.target === 'all' ? 'no SR-IOV capable NVIDIA GPU on this host (vgpuctl gpus)' : `${o.target} is not an SR-IOV capable NVIDIA GPU; SR-IOV GPUs here: ${all.map((s) => s.pf).join(', ') || 'none'}`);
  }
  let method: string;
  if (o.sriovManage !== null) {
    method = `${o.sriovManage} -e ${o.target === 'all' ? 'ALL' : o.target}`;
    const r = await runTool(o.sriovManage, ['-e', o.target === 'all' ? 'ALL' : o.target], o.commandTimeoutMs);
    if (!r.ok) {
      const why = r.failure === 'timeout' ? `did not finish within ${o.commandTimeoutMs / 1000} s` : r.failure === 'not-found' ? 'is not installed (is the NVIDIA vGPU manager installed?)' : `failed (exit ${r.exitCode}): ${r.stderr.trim().split('\n').pop() ?? ''}`;
      throw new VgpuctlError('command', `${o.sriovManage} ${why}`);
    }
  } else {
    method = 'write sriov_numvfs';
    for (const t of targets.filter((x) => x.numvfs === 0)) {
      const p = `/sys/bus/pci/devices/${t.pf}/sriov_numvfs`;
      try {
        await o.writer.write(host.path(p), String(t.totalvfs));
      } catch (e) {
        throw translateWriteError(e, { action: 'write', path: p, parent: t.pf });
      }
    }
  }
  const start = Date.now();
  for (;;) {
    const now = (await sriovStatus(host)).filter((s) => targets.some((t) => t.pf === s.pf));
    if (now.every((s) => s.numvfs > 0 && s.ready === s.numvfs && s.vfs.length === s.numvfs)) return { enabled: now, method, waited_ms: Date.now() - start };
    if (Date.now() - start >= o.waitMs) {
      throw new VgpuctlError('refused', `SR-IOV was enabled (${method}) but not every VF is ready after ${Math.round(o.waitMs / 1000)} s: ${now.map((s) => `${s.pf} ${s.ready} of ${s.numvfs} VFs`).join(', ')}; check 'journalctl -u nvidia-vgpu-mgr' and run 'vgpuctl sriov status'`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

export const sriovManagePath = (env: NodeJS.ProcessEnv): string => env['VGPUCTL_SRIOV_MANAGE'] || DEFAULT_SRIOV_MANAGE;
export { path as _path };
