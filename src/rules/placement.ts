/**
 * Where N new vGPUs go, checked for the whole request before anything is written: the type exists, the
 * driver's available_instances and the board's placement rule (one type per GPU, equal size, mixed size)
 * leave room, and SR-IOV GPUs get one vGPU per free VF. Placement packs GPUs that already hold the type,
 * then empty ones; --spread starts with empty GPUs and deals devices out round-robin.
 */
import type { Catalogue } from '../catalogue/catalogue.js';
import type { Placement } from '../catalogue/schema.js';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import type { MdevParent, MdevType } from '../host/mdev.js';
import { activeOnGpu, findTypeOn, type HostState, type PhysicalGpu } from '../lifecycle/host-state.js';
import { usageOf } from './device-users.js';
import { MIG_COMPUTE_SLICES, additionalFit, isNvidiaVgpuType, placementConflict, shapeOf } from './gpu-capacity.js';
import { noParentOffers, parentsOffering, selectorLabel, typeOnParent, type TypeSelector } from './type-resolution.js';

export interface PlacementRequest {
  selector: TypeSelector;
  count: number;
  parent?: string;
  spread?: boolean;
}

export interface PlacedDevice {
  parent: string;
  type: MdevType;
}

interface GpuSlots {
  gpu: PhysicalGpu;
  /** Parents to use, in order, one entry per device that fits. */
  slots: Array<{ parent: MdevParent; type: MdevType }>;
  holdsType: boolean;
  empty: boolean;
  reason: string | null;
}

export const placementOf = (catalogue: Catalogue, gpu: PhysicalGpu): Placement =>
  (gpu.deviceId ? catalogue.boardForDeviceId(gpu.deviceId)?.placement : undefined) ?? 'same-type';

/** Who uses the type's devices on a GPU, for messages such as "2 of 2 in use by VMs a, b". */
export function typeUsage(state: HostState, gpu: PhysicalGpu, type: MdevType): { inUse: number; max: number | null; vms: string[] } {
  const same = activeOnGpu(state, gpu).filter((d) => d.type === type.id);
  const vms = new Set<string>();
  for (const d of same) {
    // One name per VM: a running guest shows up both as its libvirt domain and as its qemu process.
    const domains = state.users.domains.get(d.uuid) ?? [];
    const running = new Set(domains.filter((x) => x.running).map((x) => x.name));
    for (const n of running) vms.add(n);
    for (const q of state.users.qemu.get(d.uuid) ?? []) vms.add(q.name ?? `qemu pid ${q.pid}`);
    for (const n of usageOf(state.users, d.uuid).inactiveDomains) if (!running.has(n)) vms.add(`${n} (off)`);
  }
  return { inUse: same.length, max: type.parsedDescription.maxInstance, vms: [...vms] };
}

function slotsOnGpu(state: HostState, catalogue: Catalogue, gpu: PhysicalGpu, offers: Array<{ parent: MdevParent; type: MdevType }>): GpuSlots {
  const active = activeOnGpu(state, gpu);
  // NVIDIA's placement model covers NVIDIA vGPU types only; other drivers' types (the kernel's mtty, mdpy,
  // mbochs samples, s390 devices) have no such rule: their available_instances is the whole answer.
  const existing = active
    .map((d) => findTypeOn(state, d.parent, d.type))
    .filter((t): t is MdevType => t !== undefined && isNvidiaVgpuType(t))
    .map(shapeOf);
  const type = offers[0]!.type;
  const shape = shapeOf(type);
  const placement = placementOf(catalogue, gpu);
  const holdsType = active.some((d) => d.type === type.id);
  const base = { gpu, holdsType, empty: active.length === 0 };
  const nvidia = isNvidiaVgpuType(type);
  const conflict = nvidia ? placementConflict(existing, shape, placement) : null;
  if (conflict !== null) return { ...base, slots: [], reason: conflict };
  const modelFit = nvidia ? additionalFit(existing, shape, placement) : Number.POSITIVE_INFINITY;
  if (gpu.sriov) {
    const busy = new Set(active.map((d) => d.parent));
    const idle = offers.filter((o) => !busy.has(o.parent.name));
    const free = idle.filter((o) => o.type.availableInstances > 0);
    const n = Math.min(free.length, modelFit);
    let reason: string | null = null;
    if (n === 0) {
      // Say which limit it is: no idle VF, the GPU's MIG slices, or the type's own limit.
      const u = typeUsage(state, gpu, type);
      const slicesUsed = existing.reduce((k, e) => k + (e.migSlices ?? 0), 0);
      reason =
        idle.length === 0
          ? `${offers.length === 1 ? 'the virtual function' : 'every virtual function that offers it'} already carries a vGPU (one vGPU per virtual function)`
          : shape.migSlices !== null && slicesUsed + shape.migSlices > MIG_COMPUTE_SLICES
            ? `${slicesUsed} of the GPU's ${MIG_COMPUTE_SLICES} MIG slices are in use and ${type.profile?.profile ?? type.id} needs ${shape.migSlices}`
            : `${u.inUse}${u.max !== null ? ` of ${u.max}` : ''} in use${u.vms.length > 0 ? ` by VMs ${u.vms.join(', ')}` : ''}`;
    }
    return { ...base, slots: free.slice(0, n), reason };
  }
  const o = offers[0]!;
  const n = Math.min(o.type.availableInstances, modelFit);
  let reason: string | null = null;
  if (n === 0) {
    const u = typeUsage(state, gpu, type);
    reason = `${u.inUse}${u.max !== null ? ` of ${u.max}` : ''} in use${u.vms.length > 0 ? ` by VMs ${u.vms.join(', ')}` : ''}${
      u.inUse === 0 && active.length > 0 ? ` (the GPU carries ${[...new Set(active.map((d) => d.type))].join(', ')})` : ''
    }`;
  }
  return { ...base, slots: Array.from({ length: Number.isFinite(n) ? n : 0 }, () => o), reason };
}

export function planPlacement(state: HostState, catalogue: Catalogue, req: PlacementRequest): PlacedDevice[] {
  let offers: Array<{ parent: MdevParent; type: MdevType }>;
  if (req.parent !== undefined) {
    const parent = state.parents.find((p) => p.name === req.parent);
    if (!parent) throw new VgpuctlError('not-found', `${req.parent} is not an mdev parent; see 'vgpuctl types' for the parents of this host`);
    offers = [{ parent, type: typeOnParent(parent, req.selector, state.parents, catalogue) }];
  } else {
    offers = parentsOffering(state.parents, req.selector);
    if (offers.length === 0) throw noParentOffers(req.selector, catalogue, state.parents);
  }

  const byGpu = new Map<PhysicalGpu, Array<{ parent: MdevParent; type: MdevType }>>();
  for (const o of offers) {
    const gpu = state.gpuOfParent.get(o.parent.name)!;
    byGpu.set(gpu, [...(byGpu.get(gpu) ?? []), o]);
  }
  const gpus = [...byGpu.entries()].map(([gpu, os]) => slotsOnGpu(state, catalogue, gpu, os));
  const rank = (g: GpuSlots) => (req.spread ? (g.empty ? 0 : g.holdsType ? 1 : 2) : g.holdsType ? 0 : g.empty ? 1 : 2);
  gpus.sort((a, b) => rank(a) - rank(b) || (a.gpu.key < b.gpu.key ? -1 : 1));

  const total = gpus.reduce((n, g) => n + g.slots.length, 0);
  if (total < req.count) {
    const what = selectorLabel(req.selector);
    const profile = offers[0]?.type.profile?.profile;
    const label = profile && profile !== what ? `${profile} (${offers[0]!.type.id})` : what;
    const reasons = gpus.map((g) => `${g.gpu.key}: ${g.slots.length} free${g.reason ? `, ${g.reason}` : ''}`);
    if (gpus.length === 1 && total === 0) {
      throw new VgpuctlError(
        'refused',
        `no instances of ${label} left on ${req.parent ?? gpus[0]!.gpu.key}: ${gpus[0]!.reason ?? 'none free'}; free one, or pick another GPU (vgpuctl types --available)`,
      );
    }
    throw new VgpuctlError(
      'refused',
      `cannot place ${req.count} x ${label}: only ${total} fit (${reasons.join('; ')}); lower --count or free devices first`,
    );
  }

  const placed: PlacedDevice[] = [];
  if (req.spread) {
    const cursors = gpus.map(() => 0);
    while (placed.length < req.count) {
      for (const [i, g] of gpus.entries()) {
        if (placed.length >= req.count) break;
        const slot = g.slots[cursors[i]!];
        if (!slot) continue;
        cursors[i]!++;
        placed.push({ parent: slot.parent.name, type: slot.type });
      }
    }
  } else {
    for (const g of gpus) for (const s of g.slots) if (placed.length < req.count) placed.push({ parent: s.parent.name, type: s.type });
  }
  return placed;
}
