/**
 * create / destroy / stop / start on vendor-VFIO VFs: the numeric type id written to the VF's
 * nvidia/current_vgpu_type creates the vGPU, `0` destroys it. Every rule is checked for the whole request
 * before the first write: the id must be in the VF's creatable_vgpu_types (refused with the list
 * otherwise), one vGPU per VF, the board's placement rule and size for the whole count, and a VF a VM uses
 * is never emptied.
 */
import type { Catalogue } from '../catalogue/catalogue.js';
import type { Placement } from '../catalogue/schema.js';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import type { Action } from '../lifecycle/actions.js';
import { additionalFit, type VgpuShape } from '../rules/gpu-capacity.js';
import type { TypeSelector } from '../rules/type-resolution.js';
import { numericTypeId, typeIdOf, type CreatableType } from './creatable.js';
import { currentTypePath, profileOfId, vfHandle, type VendorGpu, type VendorState, type VendorVf } from './discovery.js';
import { requireReadableDefinitions, writeDefinitionsAction, type VendorDefinition } from './state.js';

export interface VendorDevice {
  uuid: string;
  parent: string;
  vf: string;
  type: string;
  profile: string | null;
}

export const placementOfGpu = (catalogue: Catalogue, g: VendorGpu): Placement => catalogue.boardForDeviceId(g.deviceId)?.placement ?? 'equal-size';

/** Size and limit of a type: the catalogue's entry for its profile, else what the name says. */
export function vendorShape(vs: VendorState, catalogue: Catalogue, id: number): VgpuShape {
  const profile = profileOfId(vs, catalogue, id);
  const entry = profile ? catalogue.profile(profile.profile) : undefined;
  return {
    typeId: typeIdOf(id),
    framebufferMib: entry?.profile.framebuffer_mib ?? (profile ? profile.framebufferGib * 1024 : null),
    maxInstance: entry?.profile.max_per_gpu ?? null,
    migSlices: entry?.profile.mig_slices ?? profile?.migSlices ?? null,
  };
}

const listCreatable = (ts: CreatableType[]): string => (ts.length === 0 ? 'nothing (the VF is busy or the GPU is full)' : ts.map((t) => `${t.id} (${t.profile?.profile ?? t.name})`).join(', '));

/** The numeric id a selector names on this host, or null when nothing here knows it. */
export function resolveVendorId(vs: VendorState, catalogue: Catalogue, s: TypeSelector): number | null {
  if (s.kind === 'type') return numericTypeId(s.type);
  const wanted = s.profile.toUpperCase();
  for (const [id, name] of vs.names) if (name.toUpperCase() === wanted || name.toUpperCase().endsWith(` ${wanted}`)) return id;
  // A full GPU lists nothing (every table is the header only): the definitions still name their types.
  const def = vs.definitions.find((d) => d.profile?.toUpperCase() === wanted);
  if (def) return numericTypeId(def.type);
  const cat = catalogue.profile(s.profile)?.profile.type_id;
  return cat ? numericTypeId(cat) : null;
}

/** Whether a request is for the vendor interface: its parent is a vendor VF or PF, or only vendor VFs know the type. */
export function isVendorTarget(vs: VendorState, parent: string | undefined): boolean {
  if (parent === undefined) return false;
  return vs.vfs.some((v) => v.address === parent) || vs.gpus.some((g) => g.pf === parent);
}

function existingShapes(vs: VendorState, catalogue: Catalogue, g: VendorGpu, extra: number[] = []): VgpuShape[] {
  return [...g.vfs.filter((v) => v.current !== 0).map((v) => v.current), ...extra].map((id) => vendorShape(vs, catalogue, id));
}

export interface VendorCreateRequest {
  selector: TypeSelector;
  parent?: string;
  count: number;
  spread?: boolean;
  define?: { start: 'auto' | 'manual' };
}

/** Where the vGPUs go, checked for the whole request; throws a sentence when it cannot be met. */
export function placeVendor(vs: VendorState, catalogue: Catalogue, req: VendorCreateRequest): Array<{ vf: VendorVf; id: number }> {
  const id = resolveVendorId(vs, catalogue, req.selector);
  const what = req.selector.kind === 'type' ? req.selector.type : req.selector.profile;
  if (id === null && req.selector.kind === 'profile' && vendorBoardKnows(vs, catalogue, req.selector.profile)) {
    // A profile of this host's boards that no VF lists: every GPU is full or holds another size.
    const per = vs.gpus.map((g) => `${g.pf}: creatable there now: ${listCreatable([...new Map(g.vfs.filter((v) => v.current === 0).flatMap((v) => v.creatable).map((t) => [t.id, t])).values()])}`);
    throw new VgpuctlError('refused', `no virtual function can create ${what} now, nothing was written (${per.join('; ')}); free virtual functions first`);
  }
  if (id === null) {
    throw new VgpuctlError(
      req.selector.kind === 'profile' && !catalogue.profile(req.selector.profile) ? 'invalid-input' : 'not-found',
      `no virtual function on this host offers ${what}; see 'vgpuctl types' for what the GPUs can still create`,
    );
  }
  const label = `${profileOfId(vs, catalogue, id)?.profile ?? typeIdOf(id)} (${id})`;
  // An explicit VF: the id must be creatable on it now, refused before the write with what is.
  if (req.parent !== undefined && vs.vfs.some((v) => v.address === req.parent)) {
    const vf = vs.vfs.find((v) => v.address === req.parent)!;
    if (req.count !== 1) throw new VgpuctlError('refused', `a virtual function carries one vGPU; -p ${vf.address} takes --count 1 (give the GPU ${vf.pf} to place several)`);
    if (vf.current !== 0) throw new VgpuctlError('refused', `${vf.address} already carries vGPU type ${vf.current} (${profileOfId(vs, catalogue, vf.current)?.profile ?? typeIdOf(vf.current)}); one vGPU per virtual function, destroy it first`);
    if (!vf.creatable.some((t) => t.id === id)) {
      throw new VgpuctlError('refused', `type ${label} is not creatable on ${vf.address}; nothing was written. Creatable there now: ${listCreatable(vf.creatable)}`);
    }
    return [{ vf, id }];
  }
  const gpus = req.parent !== undefined ? vs.gpus.filter((g) => g.pf === req.parent) : vs.gpus;
  const slots = gpus.map((g) => {
    const free = g.vfs.filter((v) => v.current === 0 && v.creatable.some((t) => t.id === id));
    const fit = additionalFit(existingShapes(vs, catalogue, g), vendorShape(vs, catalogue, id), placementOfGpu(catalogue, g));
    const n = Math.min(free.length, fit);
    return { g, vfs: free.slice(0, n), holds: g.vfs.some((v) => v.current === id), empty: g.vfs.every((v) => v.current === 0) };
  });
  const rank = (s: (typeof slots)[number]) => (req.spread ? (s.empty ? 0 : s.holds ? 1 : 2) : s.holds ? 0 : s.empty ? 1 : 2);
  slots.sort((a, b) => rank(a) - rank(b) || (a.g.pf < b.g.pf ? -1 : 1));
  const total = slots.reduce((n, s) => n + s.vfs.length, 0);
  if (total < req.count) {
    const per = slots.map((s) => {
      const creatable = [...new Map(s.g.vfs.filter((v) => v.current === 0).flatMap((v) => v.creatable).map((t) => [t.id, t])).values()];
      return `${s.g.pf}: ${s.vfs.length} free; creatable there now: ${listCreatable(creatable)}`;
    });
    throw new VgpuctlError('refused', `cannot place ${req.count} x ${label}: only ${total} fit, nothing was written (${per.join('; ') || 'no vendor-VFIO GPU'}); lower --count or free virtual functions first`);
  }
  const out: Array<{ vf: VendorVf; id: number }> = [];
  if (req.spread) {
    const cursors = slots.map(() => 0);
    while (out.length < req.count) {
      for (const [i, s] of slots.entries()) {
        const vf = s.vfs[cursors[i]!];
        if (out.length >= req.count || !vf) continue;
        cursors[i]!++;
        out.push({ vf, id });
      }
    }
  } else for (const s of slots) for (const vf of s.vfs) if (out.length < req.count) out.push({ vf, id });
  return out;
}

export function createAction(vf: string, id: number, profile: string | null): Action {
  const p = currentTypePath(vf);
  return {
    kind: 'sysfs-write',
    path: p,
    data: String(id),
    summary: `create ${profile ?? typeIdOf(id)} on ${vf}`,
    ctx: { action: 'write', path: p, uuid: vfHandle(vf), parent: vf, type: typeIdOf(id), profile },
    undo: { kind: 'sysfs-write', path: p, data: '0', summary: `destroy the vGPU on ${vf}`, ctx: { action: 'write', path: p, parent: vf } },
  };
}

export function destroyAction(vf: string, id: number, profile: string | null): Action {
  const p = currentTypePath(vf);
  return {
    kind: 'sysfs-write',
    path: p,
    data: '0',
    summary: `destroy ${profile ?? typeIdOf(id)} on ${vf}`,
    ctx: { action: 'write', path: p, uuid: vfHandle(vf), parent: vf, type: typeIdOf(id), profile },
    undo: { kind: 'sysfs-write', path: p, data: String(id), summary: `recreate ${typeIdOf(id)} on ${vf}`, ctx: { action: 'write', path: p, parent: vf } },
  };
}

/**
 * `resumed`: finishing an interrupted create of the same request (src/vendor-vfio/resume.ts): the VFs it
 * gave the type count as created, the rest go to the VFs it had chosen while they are free, else are placed.
 */
export function planVendorCreate(
  vs: VendorState,
  catalogue: Catalogue,
  req: VendorCreateRequest,
  resumed: { taken: Array<{ vf: string; id: number }>; free: Array<{ vf: string; id: number }> } = { taken: [], free: [] },
): { actions: Action[]; created: VendorDevice[]; defined: string[] } {
  const taken = resumed.taken.slice(0, req.count);
  const rest = req.count - taken.length;
  const placed =
    rest === 0 ? [] : resumed.free.length >= rest ? resumed.free.slice(0, rest) : placeVendor(vs, catalogue, { ...req, count: rest }).map(({ vf, id }) => ({ vf: vf.address, id }));
  const all = [...taken, ...placed];
  const created = all.map(({ vf, id }) => ({ uuid: vfHandle(vf), parent: vf, vf, type: typeIdOf(id), profile: profileOfId(vs, catalogue, id)?.profile ?? null }));
  const actions = placed.map(({ vf, id }, i) => createAction(vf, id, created[taken.length + i]!.profile));
  if (req.define) {
    requireReadableDefinitions(vs);
    const start = req.define.start;
    const next: VendorDefinition[] = [
      ...vs.definitions.filter((d) => !created.some((c) => c.vf === d.vf)),
      ...created.map((c) => ({ vf: c.vf, type: c.type, profile: c.profile, start })),
    ];
    actions.push(writeDefinitionsAction(vs.stateContent, next, `define ${created.map((c) => `${c.profile ?? c.type} on ${c.vf}`).join(', ')}, start ${start}`));
  }
  return { actions, created, defined: req.define ? created.map((c) => c.uuid) : [] };
}

/** The VF a handle (or VF address) names, active or defined. */
export function findVendorDevice(vs: VendorState, handleOrVf: string): { vf: string; active: VendorVf | null; def: VendorDefinition | null } | null {
  const addrs = new Set([...vs.vfs.map((v) => v.address), ...vs.definitions.map((d) => d.vf)]);
  const vf = [...addrs].find((a) => a === handleOrVf || vfHandle(a) === handleOrVf);
  if (!vf) return null;
  const v = vs.vfs.find((x) => x.address === vf);
  return { vf, active: v && v.current !== 0 ? v : null, def: vs.definitions.find((d) => d.vf === vf) ?? null };
}

export function checkVfNotInUse(vs: VendorState, vf: string, verb: string, force: boolean): void {
  const u = vs.users.get(vf);
  if (!u) return;
  if (u.running.length > 0) {
    throw new VgpuctlError('refused', `will not ${verb} the vGPU on ${vf}: the virtual function is in use by ${u.running.join(', ')}; shut the VM down first (--force does not override this)`);
  }
  if (u.inactiveDomains.length > 0 && !force) {
    throw new VgpuctlError('refused', `will not ${verb} the vGPU on ${vf}: libvirt domain ${u.inactiveDomains.join(', ')} is defined with it and would fail to start; remove it from the domain first, or use --force`);
  }
}

export function planVendorDestroy(
  vs: VendorState,
  catalogue: Catalogue,
  handle: string,
  opts: { keepDefinition: boolean; force: boolean; verb: 'destroy' | 'stop' },
): { actions: Action[]; result: { uuid: string; vf: string; type: string; stopped: boolean; undefined: string[] } } | null {
  const d = findVendorDevice(vs, handle);
  if (!d) return null;
  if (d.active) checkVfNotInUse(vs, d.vf, opts.verb, opts.force);
  const actions: Action[] = [];
  if (d.active) actions.push(destroyAction(d.vf, d.active.current, profileOfId(vs, catalogue, d.active.current)?.profile ?? null));
  const undefine = !opts.keepDefinition && d.def !== null;
  if (undefine) requireReadableDefinitions(vs);
  if (undefine) actions.push(writeDefinitionsAction(vs.stateContent, vs.definitions.filter((x) => x.vf !== d.vf), `undefine the vGPU on ${d.vf}`));
  return { actions, result: { uuid: vfHandle(d.vf), vf: d.vf, type: d.active ? typeIdOf(d.active.current) : d.def?.type ?? '', stopped: d.active !== null, undefined: undefine ? [d.vf] : [] } };
}

/** Starting a definition: its VF must be free and its type creatable there now. */
export function planVendorStart(vs: VendorState, catalogue: Catalogue, def: VendorDefinition): { actions: Action[]; already: boolean } {
  const id = numericTypeId(def.type)!;
  const vf = vs.vfs.find((v) => v.address === def.vf);
  if (!vf) throw new VgpuctlError('not-found', `the virtual function ${def.vf} is not present: SR-IOV is not enabled yet (vgpuctl sriov enable) or the GPU is missing`);
  if (vf.current === id) return { actions: [], already: true };
  if (vf.current !== 0) throw new VgpuctlError('refused', `${def.vf} carries type ${vf.current}, not the defined ${def.type}; destroy it first`);
  if (!vf.creatable.some((t) => t.id === id)) {
    throw new VgpuctlError('refused', `type ${def.profile ?? def.type} (${id}) is not creatable on ${def.vf}; nothing was written. Creatable there now: ${listCreatable(vf.creatable)}`);
  }
  return { actions: [createAction(def.vf, id, def.profile)], already: false };
}

/** The profile belongs to the board of one of the host's vendor-VFIO GPUs. */
export function vendorBoardKnows(vs: VendorState, catalogue: Catalogue, profile: string): boolean {
  const board = catalogue.profile(profile)?.board.board;
  return board !== undefined && vs.gpus.some((g) => g.board?.toUpperCase() === board.toUpperCase());
}
