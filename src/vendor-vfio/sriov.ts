/**
 * `vgpuctl sriov enable [PF|all]` and `sriov status`: the VFs of NVIDIA's vendor interface appear only after
 * `/usr/lib/nvidia/sriov-manage -e <PF|ALL>` (or a write of sriov_numvfs); then vgpuctl waits, a bounded
 * time, until every VF shows nvidia/creatable_vgpu_types (160 VFs on 8 GPUs take 30 s and more).
 */
import { accessSync, constants, statSync } from 'node:fs';
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

export interface SriovMethodInput {
  /** --simulate: the simulated kernel makes the VFs when sriov_numvfs is written. */
  simulated: boolean;
  /** --write-numvfs */
  writeNumvfs: boolean;
  /** --sriov-manage PATH */
  flagPath: string | undefined;
  env: NodeJS.ProcessEnv;
  /** --root is / (sriov-manage acts on the running machine, never on a tree). */
  isSystemRoot: boolean;
  /** Whether a program exists at a path of the running machine (not under --root). */
  isProgram: (p: string) => boolean;
}

/**
 * How `sriov enable` makes the VFs: NVIDIA's sriov-manage (a program of the running machine, at
 * /usr/lib/nvidia/sriov-manage unless --sriov-manage or VGPUCTL_SRIOV_MANAGE says otherwise), or a write of
 * sriov_numvfs (--write-numvfs, and always under --simulate). A missing sriov-manage is an error that says
 * what to do, never a silent fallback; the default one is never run against a --root tree.
 */
export function chooseSriovMethod(i: SriovMethodInput): { kind: 'numvfs' } | { kind: 'sriov-manage'; path: string } {
  if (i.writeNumvfs && i.flagPath !== undefined) throw new VgpuctlError('usage', '--write-numvfs and --sriov-manage exclude each other');
  if (i.writeNumvfs || i.simulated) return { kind: 'numvfs' };
  const explicit = i.flagPath ?? (i.env['VGPUCTL_SRIOV_MANAGE'] || undefined);
  const p = explicit ?? DEFAULT_SRIOV_MANAGE;
  if (explicit === undefined && !i.isSystemRoot) {
    throw new VgpuctlError('usage', `${DEFAULT_SRIOV_MANAGE} acts on this machine's GPUs, not on the tree given with --root; use --simulate (or --write-numvfs) for a tree, or --sriov-manage PATH`);
  }
  if (!i.isProgram(p)) {
    throw new VgpuctlError(
      'not-found',
      `${p} is not an executable program${explicit === undefined ? ' (it comes with the NVIDIA vGPU manager: is it installed?)' : ''}; give its path with --sriov-manage or VGPUCTL_SRIOV_MANAGE, or write sriov_numvfs directly with --write-numvfs`,
    );
  }
  return { kind: 'sriov-manage', path: p };
}

/** A program at a path of the running machine: a regular file with an execute bit. */
export function isProgram(p: string): boolean {
  try {
    const st = statSync(p);
    if (!st.isFile()) return false;
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
export { path as _path };
