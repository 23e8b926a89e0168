/**
 * Finishing an interrupted vendor-VFIO command (its intent record, src/lifecycle/intent.ts): a re-run of
 * the same command line plans as if the dead run's definitions write had not landed yet, and leaves out a
 * write that would put in the file what it already holds; a create takes over the VFs the dead run gave
 * the type and prefers the VFs it had chosen for the rest.
 */
import type { Action } from '../lifecycle/actions.js';
import type { Intent } from '../lifecycle/intent.js';
import { runOperation, type LifecycleContext, type OperationOutcome, type Planned } from '../lifecycle/operation.js';
import { numericTypeId } from './creatable.js';
import { readVendorState, type VendorState } from './discovery.js';
import { parseVendorDefinitions, VENDOR_STATE_PATH } from './state.js';

/** The state to plan a re-run on: the definitions as they were before the dead run's write, when it landed. */
export function stateBeforeLandedWrite(vs: VendorState, resume: Intent | null): VendorState {
  const file = resume?.vendor?.file;
  if (!file || vs.stateContent !== file.after || file.after === file.before) return vs;
  const definitions = file.before === null ? [] : parseVendorDefinitions(file.before);
  return definitions === null ? vs : { ...vs, definitions, definitionProblems: [], stateContent: file.before };
}

/** The actions without a definitions write that changes nothing (`current`: what the file holds now). */
export function withoutLandedWrite(actions: Action[], current: string | null): Action[] {
  return actions.filter((a) => !(a.kind === 'write-file' && a.path === VENDOR_STATE_PATH && a.content === current));
}

/** The VFs the dead run set: those that carry the recorded type now (taken over) and those still free. */
export function recordedVfs(vs: VendorState, resume: Intent | null): { taken: Array<{ vf: string; id: number }>; free: Array<{ vf: string; id: number }> } {
  const taken: Array<{ vf: string; id: number }> = [];
  const free: Array<{ vf: string; id: number }> = [];
  for (const c of resume?.vendor?.creates ?? []) {
    const id = numericTypeId(c.type);
    const vf = vs.vfs.find((v) => v.address === c.vf);
    if (id === null || !vf) continue;
    if (vf.current === id) taken.push({ vf: c.vf, id });
    else if (vf.current === 0 && vf.creatable.some((t) => t.id === id)) free.push({ vf: c.vf, id });
  }
  return { taken, free };
}

/**
 * A changing vendor-VFIO command under runOperation: `plan` gets the vendor state (as it was before a dead
 * run's landed write, when this run finishes one) and the intent it resumes; a write that would change
 * nothing is left out. `request` keys the intent record (vendorKey).
 */
export function runVendorOperation<R>(
  lc: LifecycleContext,
  verb: string,
  request: Record<string, unknown>,
  plan: (vs: VendorState, resume: Intent | null) => Planned<R>,
): Promise<OperationOutcome<R>> {
  return runOperation(
    lc,
    verb,
    async (_state, _backend, resume) => {
      const now = await readVendorState(lc.host, lc.catalogue);
      const p = plan(stateBeforeLandedWrite(now, resume), resume);
      return resume ? { ...p, actions: withoutLandedWrite(p.actions, now.stateContent) } : p;
    },
    vendorKey(verb, request),
  );
}

/** The key of a vendor request: a re-run of the same command line has the same one, an mdev request never. */
export const vendorKey = (verb: string, request: Record<string, unknown>): string => JSON.stringify({ vendor: verb, ...request });
