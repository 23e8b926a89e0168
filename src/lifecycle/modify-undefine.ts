/** `vgpuctl modify --auto|--manual` and `vgpuctl undefine`. */
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import type { Action } from './actions.js';
import { definitionContent, definitionsOf, oneDefinition, refuseBrokenDefinition } from './definitions-lookup.js';
import { runOperation, type LifecycleContext, type OperationOutcome } from './operation.js';
import { vendorModify, vendorRefRoute, vendorUndefine } from '../vendor-vfio/definitions.js';

export async function modifyStart(
  lc: LifecycleContext,
  uuid: string,
  start: 'auto' | 'manual',
  parent?: string,
): Promise<OperationOutcome<{ modified: Array<{ uuid: string; parent: string; start: string }> }>> {
  if (await vendorRefRoute(lc, uuid, parent)) return vendorModify(lc, uuid, start, parent); // vendor-VFIO (src/vendor-vfio)
  return runOperation(lc, 'modify', async (state, backend) => {
    const def = oneDefinition(state, uuid, parent);
    if (def.start === start) return { actions: [], result: { modified: [] }, notes: [`${uuid} already starts ${start}`] };
    return {
      actions: [backend.setStart(def, await definitionContent(state, def), start)],
      result: { modified: [{ uuid, parent: def.parent, start }] },
    };
  }, JSON.stringify({ uuid, start, parent: parent ?? null }));
}

export async function undefineDevice(
  lc: LifecycleContext,
  uuid: string,
  parent?: string,
): Promise<OperationOutcome<{ undefined: Array<{ uuid: string; parent: string; type: string }> }>> {
  if (await vendorRefRoute(lc, uuid, parent)) return vendorUndefine(lc, uuid, parent); // vendor-VFIO (src/vendor-vfio)
  return runOperation(lc, 'undefine', async (state, backend, resume) => {
    const defs = definitionsOf(state, uuid, parent);
    if (defs.length === 0 && resume) return { actions: [], notes: ['the interrupted undefine had already removed the definition'], result: { undefined: [] } };
    if (defs.length === 0) refuseBrokenDefinition(state, uuid, parent);
    if (defs.length === 0) throw new VgpuctlError('not-found', `no definition of ${uuid}${parent ? ` under ${parent}` : ''}; see 'vgpuctl list --defined'`);
    const actions: Action[] = [];
    for (const d of defs) actions.push(backend.undefine(d, await definitionContent(state, d)));
    return { actions, result: { undefined: defs.map((d) => ({ uuid, parent: d.parent, type: d.type })) } };
  }, JSON.stringify({ uuid, parent: parent ?? null }));
}
