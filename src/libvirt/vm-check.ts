/**
 * Would a VM with these vGPUs start? The rules NVIDIA's vGPU manager and libvirt apply when a domain
 * starts, checked beforehand against the host and the catalogue:
 *
 * - every mdev exists and is active (libvirt does not create mdevs), and no other running VM holds it;
 * - several NVIDIA vGPUs in one VM: all of one board and one series (NVIDIA's multi-vGPU rule), each of a
 *   profile the catalogue marks `multi_vgpu_per_vm` (Pascal: only the full-card profiles; otherwise
 *   nvidia-vgpu-mgr logs "multiple vGPUs in a VM not supported" and the VM does not start, seed 004),
 *   at most one vGPU of each physical GPU on boards without SR-IOV (Maxwell to Turing), and no more than
 *   the per-VM maximum.
 */
import { existsSync, promises as fs, statSync } from 'node:fs';
import path from 'node:path';
import type { Catalogue } from '../catalogue/catalogue.js';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import { HOST_PATHS, type HostRoot } from '../host/host-root.js';
import { isNvidiaGpu, type PciFunction } from '../host/pci.js';
import { findTypeOn, type HostState } from '../lifecycle/host-state.js';
import { usageOf } from '../rules/device-users.js';
import { parseDomainXml } from './domain-xml.js';

/** What nvidia-vgpu-mgr logs when a VM has several vGPUs of a profile that does not allow it (seed 004). */
export const DRIVER_MULTI_VGPU_ERROR = 'multiple vGPUs in a VM not supported';
/** NVIDIA's limit of vGPUs per VM on Linux KVM hypervisors (overridable with --max-per-vm). */
export const DEFAULT_MAX_VGPUS_PER_VM = 16;

export interface VmCheckOptions {
  maxPerVm: number;
  /** The host's PCI functions, to tell passed-through GPUs from other PCI hostdevs. */
  pci?: Map<string, PciFunction>;
}

export interface VmInput {
  name: string;
  /** Where the VM came from: the domain XML file, or "command line" for -u. */
  source: string;
  uuids: string[];
  pciAddresses: string[];
  /** vGPUs described elsewhere (vendor-VFIO VFs, src/vendor-vfio/vm-check.ts): on SR-IOV GPUs, with the VMs using them. */
  described?: Array<{ info: VgpuInfo; inUseBy: string[] }>;
}

export interface VgpuInfo {
  uuid: string;
  parent: string | null;
  gpu: string | null;
  type: string | null;
  profile: string | null;
  board: string | null;
  series: string | null;
  active: boolean;
  defined: boolean;
  multi_vgpu_per_vm: boolean | null;
}

export interface Reason {
  severity: 'error' | 'warning';
  code: string;
  message: string;
  uuids: string[];
}

export interface VmVerdict {
  name: string;
  source: string;
  vgpus: VgpuInfo[];
  pci_devices: string[];
  verdict: 'would-start' | 'would-fail';
  reasons: Reason[];
}

/** The catalogue's multi-vGPU rule for a set of profiles: null when they may share a VM. */
export function multiVgpuProblem(catalogue: Catalogue, profiles: string[]): string | null {
  const refused = [...new Set(profiles)].filter((p) => catalogue.profile(p)?.profile.multi_vgpu_per_vm === false);
  if (refused.length === 0) return null;
  const board = catalogue.profile(refused[0]!)!.board;
  const allowed = board.profiles.filter((p) => p.multi_vgpu_per_vm).map((p) => p.name);
  return (
    `${DRIVER_MULTI_VGPU_ERROR}: the NVIDIA vGPU manager refuses a VM with several vGPUs when one is ${refused.join(' or ')}; ` +
    (allowed.length > 0 ? `on ${board.board} (${board.architecture}) only ${allowed.join(', ')} can be combined in one VM` : `no ${board.board} profile can be combined in one VM`)
  );
}

export function describeVgpu(state: HostState, catalogue: Catalogue, uuid: string): VgpuInfo {
  const active = state.active.find((a) => a.uuid === uuid);
  const defs = state.definitions.filter((d) => d.uuid === uuid);
  const parent = active?.parent ?? defs[0]?.parent ?? null;
  const type = active?.type ?? defs[0]?.type ?? null;
  const t = parent && type ? findTypeOn(state, parent, type) : undefined;
  const fromCatalogue = type ? catalogue.profileByTypeId(type) : undefined;
  const profile = t?.profile?.profile ?? fromCatalogue?.profile.name ?? null;
  const entry = profile ? catalogue.profile(profile) : undefined;
  return {
    uuid,
    parent,
    gpu: parent ? state.gpuOfParent.get(parent)?.key ?? parent : null,
    type,
    profile,
    board: t?.profile?.board ?? entry?.board.board ?? null,
    series: t?.profile?.series ?? entry?.profile.series ?? null,
    active: active !== undefined,
    defined: defs.length > 0,
    multi_vgpu_per_vm: entry?.profile.multi_vgpu_per_vm ?? null,
  };
}

export function checkVms(state: HostState, catalogue: Catalogue, vms: VmInput[], options: VmCheckOptions): VmVerdict[] {
  const verdicts = vms.map((vm) => checkVm(state, catalogue, vm, options));
  // One mdev in two of the VMs asked about: only one of them can run at a time.
  for (const [i, v] of verdicts.entries()) {
    for (const [j, w] of verdicts.entries()) {
      if (i === j) continue;
      const shared = v.vgpus.map((x) => x.uuid).filter((u) => w.vgpus.some((x) => x.uuid === u));
      if (shared.length > 0) {
        v.reasons.push({ severity: 'warning', code: 'shared-between-vms', message: `${shared.join(', ')} ${shared.length === 1 ? 'is' : 'are'} also in ${w.name}: only one of the two VMs can run at a time`, uuids: shared });
      }
    }
  }
  return verdicts;
}

function checkVm(state: HostState, catalogue: Catalogue, vm: VmInput, options: VmCheckOptions): VmVerdict {
  const reasons: Reason[] = [];
  const error = (code: string, message: string, uuids: string[] = []) => reasons.push({ severity: 'error', code, message, uuids });
  const warning = (code: string, message: string, uuids: string[] = []) => reasons.push({ severity: 'warning', code, message, uuids });
  const seen = new Set<string>();
  const vgpus: VgpuInfo[] = [];
  for (const u of vm.uuids) {
    if (seen.has(u)) {
      error('duplicate', `${u} is named twice: libvirt refuses to use one device twice`, [u]);
      continue;
    }
    seen.add(u);
    const info = describeVgpu(state, catalogue, u);
    vgpus.push(info);
    if (!info.active && !info.defined) {
      error('unknown-mdev', `${u} is not an mdev on this host (neither active nor defined): libvirt fails with "mediated device '${u}' not found"`, [u]);
      continue;
    }
    if (!info.active) error('not-active', `${u} (${info.profile ?? info.type} on ${info.parent}) is defined but not active: libvirt cannot start the VM until it exists (vgpuctl start -u ${u})`, [u]);
    const others = usageOf(state.users, u).running.filter((r) => r !== `domain ${vm.name}` && !r.startsWith(`qemu ${vm.name} `));
    if (others.length > 0) error('in-use', `${u} is in use by ${others.join(', ')}: a vGPU belongs to one running VM`, [u]);
  }

  for (const { info, inUseBy } of vm.described ?? []) {
    vgpus.push(info);
    if (!info.active) error('not-active', `${info.parent} carries no vGPU${info.defined ? ` (defined as ${info.profile ?? info.type})` : ''}: start it (vgpuctl start -u ${info.parent}) before the VM`, [info.uuid]);
    const others = inUseBy.filter((r) => r !== `domain ${vm.name}` && !r.startsWith(`qemu ${vm.name} `));
    if (others.length > 0) error('in-use', `${info.parent} (${info.uuid}) is in use by ${others.join(', ')}: a vGPU belongs to one running VM`, [info.uuid]);
  }
  const describedGpus = new Set((vm.described ?? []).map((d) => d.info.gpu));
  const nvidia = vgpus.filter((v) => v.profile !== null);
  if (nvidia.length >= 2) {
    const all = nvidia.map((v) => v.uuid);
    if (nvidia.length > options.maxPerVm) error('too-many', `${nvidia.length} vGPUs in one VM: at most ${options.maxPerVm} per VM`, all);
    const boards = [...new Set(nvidia.map((v) => v.board))];
    if (boards.length > 1) error('mixed-boards', `the vGPUs are of different boards (${boards.join(', ')}): NVIDIA allows several vGPUs in a VM only of one board type`, all);
    const series = [...new Set(nvidia.map((v) => v.series))];
    if (series.length > 1) error('mixed-series', `the vGPUs are of different series (${series.join(', ')}): NVIDIA allows several vGPUs in a VM only of one series`, all);
    const multi = multiVgpuProblem(catalogue, nvidia.map((v) => v.profile!));
    if (multi) error('multi-vgpu-unsupported', multi, nvidia.filter((v) => v.multi_vgpu_per_vm === false).map((v) => v.uuid));
    for (const v of nvidia.filter((x) => x.multi_vgpu_per_vm === null)) {
      warning('unknown-profile', `the catalogue does not know ${v.profile}: whether it may share a VM with other vGPUs is not checked`, [v.uuid]);
    }
    const byGpu = new Map<string, VgpuInfo[]>();
    for (const v of nvidia) if (v.gpu) byGpu.set(v.gpu, [...(byGpu.get(v.gpu) ?? []), v]);
    for (const [gpu, list] of byGpu) {
      if (list.length < 2) continue;
      const sriov = state.gpus.find((g) => g.key === gpu)?.sriov ?? describedGpus.has(gpu);
      const arch = catalogue.board(list[0]!.board ?? '')?.architecture ?? 'time-sliced';
      if (!sriov) {
        error(
          'same-gpu',
          `${list.map((v) => v.uuid).join(', ')} are all on the physical GPU ${gpu}: on ${arch} boards the driver gives a VM at most one vGPU of each physical GPU; use vGPUs of different GPUs`,
          list.map((v) => v.uuid),
        );
      }
    }
  }
  const passedGpus = vm.pciAddresses.filter((a) => {
    const f = options.pci?.get(a);
    return f !== undefined && isNvidiaGpu(f) && !(vm.described ?? []).some((d) => d.info.parent === a);
  });
  if (nvidia.length > 0 && passedGpus.length > 0) {
    warning('passthrough-and-vgpu', `the VM also has the NVIDIA GPU ${passedGpus.join(', ')} passed through: NVIDIA does not support a VM with both vGPUs and a passed-through GPU`, []);
  }
  return {
    name: vm.name,
    source: vm.source,
    vgpus,
    pci_devices: vm.pciAddresses,
    verdict: reasons.some((r) => r.severity === 'error') ? 'would-fail' : 'would-start',
    reasons,
  };
}

const DOMAIN_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.+:-]{0,199}$/;

/**
 * A domain given as a file (any path that exists) or as a libvirt domain name: its persistent XML in
 * /etc/libvirt/qemu, else its live XML in /run/libvirt/qemu, under --root.
 */
export async function loadDomain(host: HostRoot, fileOrName: string): Promise<VmInput> {
  let file: string;
  if (existsSync(fileOrName) && statSync(fileOrName).isFile()) file = path.resolve(fileOrName);
  else {
    if (fileOrName.includes('/') || fileOrName.endsWith('.xml')) throw new VgpuctlError('not-found', `${fileOrName}: no such domain XML file`);
    if (!DOMAIN_NAME_RE.test(fileOrName)) throw new VgpuctlError('invalid-input', `${JSON.stringify(fileOrName)} is neither a file nor a libvirt domain name`);
    const candidates = [path.join(HOST_PATHS.libvirtConfig, `${fileOrName}.xml`), path.join(HOST_PATHS.libvirtRun, `${fileOrName}.xml`)];
    const found = candidates.find((c) => existsSync(host.path(c)));
    if (!found) throw new VgpuctlError('not-found', `no libvirt domain ${fileOrName} on this host (looked in ${candidates.join(' and ')}); give the domain XML file instead`);
    file = host.path(found);
  }
  let xml: string;
  try {
    xml = await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new VgpuctlError('invalid-input', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  let parsed: ReturnType<typeof parseDomainXml>;
  try {
    parsed = parseDomainXml(xml);
  } catch (e) {
    throw new VgpuctlError('invalid-input', `${file} is not XML: ${(e as Error).message}`);
  }
  if (parsed.name === null && !/<domain[\s>]/.test(xml)) throw new VgpuctlError('invalid-input', `${file} is not a libvirt domain (no <domain> element)`);
  return { name: parsed.name ?? path.basename(file, '.xml'), source: file, uuids: parsed.mdevUuids, pciAddresses: parsed.pciAddresses };
}
