/**
 * define / undefine / modify for vendor-VFIO vGPUs: the definitions live in vgpuctl's own state file
 * (/etc/vgpuctl/vendor-vgpus.json, mdevctl cannot hold them). A vGPU is named by its VF: `-u` takes the VF
 * address or its handle (UUIDv5 of the address, as `list` shows it). Every change rewrites the whole file
 * from what was read under the host lock, keeping every other definition; a file vgpuctl cannot read is
 * never overwritten.
 */
import type { Catalogue } from '../catalogue/catalogue.js';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import { isPciAddress, normalizeParent, normalizeUuid } from '../host/identifiers.js';
import type { LifecycleContext, OperationOutcome } from '../lifecycle/operation.js';
import type { TypeSelector } from '../rules/type-resolution.js';
import { typeIdOf } from './creatable.js';
import { gpuOfVf, hasVendorVfio, profileOfId, readVendorState, vfHandle, vfOf, type VendorState } from './discovery.js';
import { resolveVendorId } from './lifecycle.js';
import { runVendorOperation } from './resume.js';
import { sriovStatus } from './sriov.js';
import { readVendorDefinitions, requireReadableDefinitions, VENDOR_STATE_PATH, writeDefinitionsAction, type VendorDefinition } from './state.js';

/** `-u` of define/undefine/modify: an mdev UUID, or the VF address of a vendor-VFIO vGPU (full or short). */
export function normalizeDeviceRef(input: string): string {
  const s = input.trim().toLowerCase();
  if (/^([0-9a-f]{4}:)?[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/.test(s)) return normalizeParent(s);
  return normalizeUuid(input);
}

/** The VF a reference (VF address or handle) names, with the parent the operator gave checked against it. */
function vfOfRef(vs: VendorState, ref: string, parent: string | undefined): string | null {
  if (isPciAddress(ref)) {
    if (parent !== undefined && parent !== ref) throw new VgpuctlError('usage', `-u ${ref} names the virtual function already; -p ${parent} is another device: leave out -p`);
    return ref;
  }
  if (parent !== undefined && (vfOf(vs, parent) || vs.definitions.some((d) => d.vf === parent))) {
    if (vfHandle(parent) !== ref) {
      throw new VgpuctlError(
        'invalid-input',
        `${parent} is a vendor-VFIO virtual function: its vGPU is named by the VF, with the handle ${vfHandle(parent)}; give -u ${parent} (or -u ${vfHandle(parent)}), a UUID of your own cannot be used`,
      );
    }
    return parent;
  }
  const known = new Set([...vs.vfs.map((v) => v.address), ...vs.definitions.map((d) => d.vf)]);
  return [...known].find((a) => vfHandle(a) === ref) ?? null;
}

/** Does a define/undefine/modify request name a vendor-VFIO vGPU? Cheap on hosts without the interface. */
export async function vendorRefRoute(lc: LifecycleContext, ref: string, parent: string | undefined): Promise<boolean> {
  if (isPciAddress(ref)) return true;
  if (!(await hasVendorVfio(lc.host))) {
    // A host without the interface (an mdev host, or SR-IOV not enabled yet): only the handle of one of
    // vgpuctl's vendor definitions routes here, and the definitions file alone tells (no vendor state read).
    return (await readVendorDefinitions(lc.host)).definitions.some((d) => vfHandle(d.vf) === ref);
  }
  return vfOfRef(await readVendorState(lc.host, lc.catalogue), ref, parent) !== null;
}

function refuseMdevctlBackend(lc: LifecycleContext, verb: string): void {
  if (lc.backend === 'mdevctl') {
    throw new VgpuctlError('usage', `mdevctl cannot ${verb} vGPUs on vendor-VFIO virtual functions (they are not mdevs); vgpuctl keeps them in ${VENDOR_STATE_PATH}: leave out --backend mdevctl`);
  }
}

export interface VendorDefineRequest {
  ref: string;
  parent?: string;
  selector?: TypeSelector;
  start: 'auto' | 'manual';
  force?: boolean;
}

export interface VendorDefined {
  uuid: string;
  parent: string;
  vf: string;
  type: string;
  profile: string | null;
  start: 'auto' | 'manual';
  replaced: boolean;
}

/** The type ids this VF's GPU knows now (every VF's creatable table, the types its VFs carry). */
function typesOfGpu(vs: VendorState, vf: string): Map<number, string> {
  const g = gpuOfVf(vs, vf);
  const out = new Map<number, string>();
  for (const v of g?.vfs ?? []) {
    if (v.current !== 0) out.set(v.current, vs.names.get(v.current) ?? typeIdOf(v.current));
    for (const t of v.creatable) out.set(t.id, t.name);
  }
  return out;
}

export function planVendorDefine(vs: VendorState, catalogue: Catalogue, req: VendorDefineRequest, warn: (m: string) => void, sriovGpus: number): { definitions: VendorDefinition[]; defined: VendorDefined } {
  requireReadableDefinitions(vs);
  const vf = vfOfRef(vs, req.ref, req.parent);
  if (vf === null) throw new VgpuctlError('not-found', `no vendor-VFIO vGPU ${req.ref} on this host; see 'vgpuctl list --all'`);
  const present = vfOf(vs, vf);
  const existing = vs.definitions.find((d) => d.vf === vf) ?? null;
  let id: number;
  if (req.selector === undefined) {
    if (!present || present.current === 0) {
      throw new VgpuctlError('invalid-input', `${vf} carries no vGPU now, so its type must be given: -t TYPE (e.g. nvidia-1152) or --profile PROFILE`);
    }
    id = present.current;
  } else {
    const resolved = resolveVendorId(vs, catalogue, req.selector);
    const what = req.selector.kind === 'type' ? req.selector.type : req.selector.profile;
    if (present) {
      const known = typesOfGpu(vs, vf);
      const board = gpuOfVf(vs, vf)?.board?.toUpperCase();
      const catBoard = resolved !== null ? catalogue.profileByTypeId(typeIdOf(resolved))?.board.board.toUpperCase() : undefined;
      if (resolved === null || (!known.has(resolved) && (catBoard === undefined || catBoard !== board))) {
        const list = [...known.entries()].sort((a, b) => a[0] - b[0]).map(([i, n]) => `${i} (${n.replace(/^NVIDIA /, '')})`);
        throw new VgpuctlError('not-found', `the GPU of ${vf} has no vGPU type ${what}; nothing was written. Its types: ${list.join(', ') || 'none listed now (see vgpuctl types -p ' + vf + ')'}`);
      }
      if (present.current === 0 && !present.creatable.some((t) => t.id === resolved)) {
        warn(`${what} is not creatable on ${vf} now (the GPU holds other sizes or is full); the definition is written, and starts once it is`);
      }
    } else {
      if (resolved === null) throw new VgpuctlError('not-found', `${vf} is not present, so ${what} cannot be resolved to a type id; give -t nvidia-ID`);
      if (!existing && sriovGpus === 0) {
        throw new VgpuctlError('not-found', `${vf} is not a virtual function of an SR-IOV NVIDIA GPU on this host (vgpuctl sriov status); -u takes an mdev UUID or the VF of a vendor-VFIO vGPU`);
      }
      warn(`${vf} is not present now (SR-IOV not enabled yet?); the definition is written and starts after 'vgpuctl sriov enable' and 'vgpuctl start --autostart'`);
    }
    id = resolved;
  }
  if (present && present.current !== 0 && present.current !== id) {
    throw new VgpuctlError('refused', `${vf} carries ${typeIdOf(present.current)} now, not ${typeIdOf(id)}; define it as it is (vgpuctl define -u ${vf}) or destroy it first`);
  }
  if (existing && !req.force) {
    throw new VgpuctlError('refused', `${vf} is already defined (${existing.type} on ${existing.vf}, start ${existing.start}, ${VENDOR_STATE_PATH}); use --force to replace the definition`);
  }
  const profile = profileOfId(vs, catalogue, id)?.profile ?? existing?.profile ?? null;
  const def: VendorDefinition = { vf, type: typeIdOf(id), profile, start: req.start };
  return {
    definitions: [...vs.definitions.filter((d) => d.vf !== vf), def],
    defined: { uuid: vfHandle(vf), parent: vf, vf, type: def.type, profile, start: req.start, replaced: existing !== null },
  };
}

export async function vendorDefine(lc: LifecycleContext, req: VendorDefineRequest): Promise<OperationOutcome<{ defined: VendorDefined }>> {
  refuseMdevctlBackend(lc, 'define');
  const sriovGpus = (await sriovStatus(lc.host)).length;
  return runVendorOperation(lc, 'define', { ref: req.ref, parent: req.parent ?? null, selector: req.selector ?? null, start: req.start, force: req.force ?? false }, (vs) => {
    const p = planVendorDefine(vs, lc.catalogue, req, lc.warn, sriovGpus);
    const d = p.defined;
    return { actions: [writeDefinitionsAction(vs.stateContent, p.definitions, `define ${d.profile ?? d.type} on ${d.vf}, start ${d.start}`)], result: { defined: d } };
  });
}

function definitionOf(vs: VendorState, ref: string, parent: string | undefined): VendorDefinition {
  requireReadableDefinitions(vs);
  const vf = vfOfRef(vs, ref, parent);
  const def = vf === null ? undefined : vs.definitions.find((d) => d.vf === vf);
  if (!def) {
    const active = vf !== null && (vfOf(vs, vf)?.current ?? 0) !== 0;
    throw new VgpuctlError(
      'not-found',
      active ? `the vGPU on ${vf} is active but not defined; persist it with 'vgpuctl define -u ${vf}'` : `no definition of ${ref}${vf !== null && vf !== ref ? ` (${vf})` : ''}; see 'vgpuctl list --defined'`,
    );
  }
  return def;
}

export async function vendorModify(lc: LifecycleContext, ref: string, start: 'auto' | 'manual', parent?: string): Promise<OperationOutcome<{ modified: Array<{ uuid: string; parent: string; vf: string; start: string }> }>> {
  refuseMdevctlBackend(lc, 'modify');
  return runVendorOperation(lc, 'modify', { ref, parent: parent ?? null, start }, (vs) => {
    const def = definitionOf(vs, ref, parent);
    if (def.start === start) return { actions: [], result: { modified: [] }, notes: [`${def.vf} already starts ${start}`] };
    const next = vs.definitions.map((d) => (d.vf === def.vf ? { ...d, start } : d));
    return {
      actions: [writeDefinitionsAction(vs.stateContent, next, `${def.vf} starts ${start}`)],
      result: { modified: [{ uuid: vfHandle(def.vf), parent: def.vf, vf: def.vf, start }] },
    };
  });
}

export async function vendorUndefine(lc: LifecycleContext, ref: string, parent?: string): Promise<OperationOutcome<{ undefined: Array<{ uuid: string; parent: string; vf: string; type: string }> }>> {
  refuseMdevctlBackend(lc, 'undefine');
  return runVendorOperation(lc, 'undefine', { ref, parent: parent ?? null }, (vs) => {
    const def = definitionOf(vs, ref, parent);
    const notes = (vfOf(vs, def.vf)?.current ?? 0) !== 0 ? [`the vGPU on ${def.vf} stays active until destroyed (vgpuctl destroy -u ${def.vf})`] : [];
    return {
      actions: [writeDefinitionsAction(vs.stateContent, vs.definitions.filter((d) => d.vf !== def.vf), `undefine the vGPU on ${def.vf}`)],
      notes,
      result: { undefined: [{ uuid: vfHandle(def.vf), parent: def.vf, vf: def.vf, type: def.type }] },
    };
  });
}
