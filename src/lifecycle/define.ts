/** `vgpuctl define`: persist a device in /etc/mdevctl.d, byte for byte as mdevctl 1.2 writes it. */
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import { validateTypeId } from '../host/identifiers.js';
import { typeOnParent, type TypeSelector } from '../rules/type-resolution.js';
import { activeDevice, definitionContent, definitionsOf, refuseBrokenDefinition } from './definitions-lookup.js';
import { findParent, findTypeOn } from './host-state.js';
import { runOperation, type LifecycleContext, type OperationOutcome } from './operation.js';
import { vendorDefine, vendorRefRoute } from '../vendor-vfio/definitions.js';

export interface DefineRequest {
  uuid: string;
  parent?: string;
  selector?: TypeSelector;
  start: 'auto' | 'manual';
  force?: boolean;
}

export interface DefineResult {
  defined: { uuid: string; parent: string; type: string; profile: string | null; start: 'auto' | 'manual'; replaced: boolean; /** vendor-VFIO: the VF */ vf?: string };
}

export async function defineDevice(lc: LifecycleContext, req: DefineRequest): Promise<OperationOutcome<DefineResult>> {
  const key = JSON.stringify({ uuid: req.uuid, parent: req.parent ?? null, selector: req.selector ?? null, start: req.start, force: req.force ?? false });
  // vendor-VFIO vGPUs (named by their VF, defined in vgpuctl's own file): src/vendor-vfio/definitions.ts.
  if (await vendorRefRoute(lc, req.uuid, req.parent)) return vendorDefine(lc, { ...req, ref: req.uuid });
  return runOperation(lc, 'define', async (state, backend, resume) => {
    const active = activeDevice(state, req.uuid);
    let parent = req.parent ?? active?.parent;
    if (parent === undefined) {
      throw new VgpuctlError('invalid-input', `${req.uuid} is not active, so its parent and type must be given: -p PARENT and -t TYPE (or --profile)`);
    }
    let type: string;
    let profile: string | null = null;
    const p = findParent(state, parent);
    if (req.selector === undefined) {
      if (!active || active.parent !== parent) {
        throw new VgpuctlError('invalid-input', `${req.uuid} is not active${req.parent ? ` on ${parent}` : ''}; give its type with -t TYPE or --profile`);
      }
      type = active.type;
    } else if (p) {
      const t = typeOnParent(p, req.selector, state.parents, lc.catalogue);
      type = t.id;
      profile = t.profile?.profile ?? null;
    } else if (req.selector.kind === 'type') {
      // Defining for a parent that is not present (yet): allowed, as mdevctl allows it.
      type = validateTypeId(req.selector.type);
      lc.warn(`${parent} is not present on this host now; the definition is written and starts when the parent appears`);
    } else {
      const known = lc.catalogue.profile(req.selector.profile)?.profile.type_id;
      if (!known) throw new VgpuctlError('not-found', `${parent} is not present, so ${req.selector.profile} cannot be resolved to a type id; give -t TYPE`);
      type = known;
      lc.warn(`${parent} is not present on this host now; ${req.selector.profile} taken as ${known} from the catalogue`);
    }
    profile ??= findTypeOn(state, parent, type)?.profile?.profile ?? lc.catalogue.profileByTypeId(type)?.profile.name ?? null;
    if (active && (active.parent !== parent || active.type !== type)) {
      throw new VgpuctlError(
        'refused',
        `${req.uuid} is active as ${active.type} on ${active.parent}; define it as it is (vgpuctl define -u ${req.uuid}) or stop it first`,
      );
    }
    // The file this writes must be a definition or nothing: never a link, never a file vgpuctl cannot read.
    refuseBrokenDefinition(state, req.uuid, parent);
    const existing = definitionsOf(state, req.uuid);
    const done = existing.length === 1 && existing[0]!.parent === parent && existing[0]!.type === type && existing[0]!.start === req.start;
    if (resume && done) {
      // The interrupted define of this very request had written it (its record still says what was there before).
      const replaced = resume.files.some((f) => f.before !== null);
      return { actions: [], notes: ['the interrupted define had already written the definition'], result: { defined: { uuid: req.uuid, parent, type, profile, start: req.start, replaced } } };
    }
    if (existing.length > 0 && !req.force) {
      const e = existing[0]!;
      throw new VgpuctlError('refused', `${req.uuid} is already defined (${e.type} on ${e.parent}, start ${e.start}, ${e.file}); use --force to replace the definition`);
    }
    if (existing.length > 1) {
      throw new VgpuctlError('refused', `${req.uuid} is defined under several parents (${existing.map((d) => d.parent).join(', ')}); undefine the extra ones first`);
    }
    const previous = existing[0] ?? null;
    const previousContent = previous ? await definitionContent(state, previous) : null;
    // Attributes of the definition being replaced are kept when the device stays the same kind.
    const attrs = previous && previous.type === type && previous.parent === parent ? previous.attrs : [];
    const actions = backend.define({ uuid: req.uuid, parent, type, profile, start: req.start, attrs }, previous, previousContent);
    return { actions, result: { defined: { uuid: req.uuid, parent, type, profile, start: req.start, replaced: previous !== null } } };
  }, key);
}
