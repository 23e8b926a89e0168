/** A UUID given for a new device must be unused: not active, not defined, on any parent. */
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import type { HostState } from '../lifecycle/host-state.js';

export function checkUuidsFree(state: HostState, uuids: string[]): void {
  const seen = new Set<string>();
  for (const u of uuids) {
    if (seen.has(u)) throw new VgpuctlError('invalid-input', `UUID ${u} is given twice; each device needs its own`);
    seen.add(u);
    const active = state.active.find((d) => d.uuid === u);
    if (active) throw new VgpuctlError('refused', `UUID ${u} is already used by an active mdev (${active.type} on ${active.parent}); choose another UUID`);
    const def = state.definitions.find((d) => d.uuid === u);
    if (def) throw new VgpuctlError('refused', `UUID ${u} is already defined (${def.type} on ${def.parent}, ${def.file}); choose another UUID, or 'vgpuctl start -u ${u}'`);
  }
}
