/**
 * Turns `-t TYPE` or `--profile P40-12C` into the type id on each parent, with errors that say which
 * parents offer it, or which types a parent does offer.
 */
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import type { Catalogue } from '../catalogue/catalogue.js';
import type { MdevParent, MdevType } from '../host/mdev.js';

export type TypeSelector = { kind: 'type'; type: string } | { kind: 'profile'; profile: string };

export const selectorLabel = (s: TypeSelector): string => (s.kind === 'type' ? s.type : s.profile);

export function typeMatches(t: MdevType, s: TypeSelector): boolean {
  if (s.kind === 'type') return t.id === s.type;
  const wanted = s.profile.toUpperCase();
  return t.profile?.profile.toUpperCase() === wanted || t.name?.toUpperCase() === wanted;
}

/** The parents that offer the selector, each with its matching type. */
export function parentsOffering(parents: MdevParent[], s: TypeSelector): Array<{ parent: MdevParent; type: MdevType }> {
  const out: Array<{ parent: MdevParent; type: MdevType }> = [];
  for (const p of parents) {
    const t = p.types.find((x) => typeMatches(x, s));
    if (t) out.push({ parent: p, type: t });
  }
  return out;
}

export function typeOnParent(parent: MdevParent, s: TypeSelector, allParents: MdevParent[], catalogue: Catalogue): MdevType {
  const t = parent.types.find((x) => typeMatches(x, s));
  if (t) return t;
  const elsewhere = parentsOffering(allParents, s).map((o) => o.parent.name);
  const offered = parent.types.map((x) => (x.profile ? `${x.id} (${x.profile.profile})` : x.id));
  const hint =
    elsewhere.length > 0
      ? ` It is offered by ${elsewhere.slice(0, 8).join(', ')}${elsewhere.length > 8 ? ', …' : ''}.`
      : s.kind === 'profile' && !catalogue.profile(s.profile)
        ? ` ${JSON.stringify(s.profile)} is not a known vGPU profile (see 'vgpuctl profiles').`
        : '';
  // A name that is no profile at all is bad input (exit 2), as it is without -p (noParentOffers).
  const unknownProfile = elsewhere.length === 0 && s.kind === 'profile' && !catalogue.profile(s.profile);
  throw new VgpuctlError(
    unknownProfile ? 'invalid-input' : 'not-found',
    `${parent.name} does not offer ${selectorLabel(s)}.${hint} ${parent.name} offers: ${offered.slice(0, 30).join(', ') || 'no types'}${offered.length > 30 ? ', …' : ''}.`,
  );
}

/** When no parent offers the selector: say so, and whether the name is known at all. */
export function noParentOffers(s: TypeSelector, catalogue: Catalogue, parents: MdevParent[]): VgpuctlError {
  if (parents.length === 0) {
    return new VgpuctlError('not-found', 'this host has no mdev parents: is the NVIDIA vGPU manager loaded (and SR-IOV enabled on Ampere and later: vgpuctl gpus)?');
  }
  if (s.kind === 'profile' && !catalogue.profile(s.profile)) {
    return new VgpuctlError('invalid-input', `unknown profile ${JSON.stringify(s.profile)}; profiles look like P40-12C (see 'vgpuctl profiles')`);
  }
  return new VgpuctlError('not-found', `no parent on this host offers ${selectorLabel(s)}; see 'vgpuctl types' for what the GPUs offer`);
}
