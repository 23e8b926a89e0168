/**
 * `vgpuctl migrate-units`: turns what a host already has — mdevctl definitions and StackHPC-style
 * nvidia-mdev@UUID.service units — into a plan that keeps every device and its UUID, so one boot service
 * (contrib/vgpuctl-apply.service) can replace the per-UUID units.
 */
import { stringify } from 'yaml';
import type { HostRoot } from '../host/host-root.js';
import { findDeviceUnits } from '../host/systemd-units.js';
import { findTypeOn, readHostState } from '../lifecycle/host-state.js';
import { hostDevices } from './converge.js';
import type { Plan } from './plan-file.js';

export interface Migration {
  plan: Plan;
  /** Devices that could not go into the plan (their parent is absent), with the reason. */
  left_out: Array<{ uuid: string; parent: string; type: string; reason: string }>;
  units: string[];
}

export async function migrateUnits(host: HostRoot): Promise<Migration> {
  const state = await readHostState(host);
  const units = await findDeviceUnits(host);
  const enabled = new Set(units.filter((u) => u.kind === 'wants-link').map((u) => u.uuid));
  const groups = new Map<string, { select: Plan['gpus'][number]['select']; type: string; uuids: string[]; autostart: boolean }>();
  const leftOut: Migration['left_out'] = [];
  for (const d of hostDevices(state)) {
    if (!d.definition && !enabled.has(d.uuid)) continue; // transient devices are not part of the host's declared state
    const gpu = state.gpuOfParent.get(d.parent);
    if (!gpu) {
      leftOut.push({ uuid: d.uuid, parent: d.parent, type: d.type, reason: 'its parent is not present on this host' });
      continue;
    }
    if (!findTypeOn(state, d.parent, d.type)) {
      // A plan entry for it could never be met (and would make the whole plan fail): leave it out, say why.
      leftOut.push({ uuid: d.uuid, parent: d.parent, type: d.type, reason: `${d.parent} does not offer type ${d.type}` });
      continue;
    }
    const autostart = enabled.has(d.uuid) || d.definition?.start === 'auto';
    // One entry per GPU and type (a plan may not give a GPU the same type twice). When its devices disagree
    // on the start mode, the entry starts them at boot: the boot apply starts every planned device anyway.
    const key = `${gpu.key}/${d.type}`;
    const g = groups.get(key) ?? { select: gpu.sriov ? { pf: gpu.key } : { address: gpu.key }, type: d.type, uuids: [], autostart };
    g.autostart ||= autostart;
    g.uuids.push(d.uuid);
    groups.set(key, g);
  }
  const addr = (g: { select: Plan['gpus'][number]['select'] }) => ('pf' in g.select ? g.select.pf : 'address' in g.select ? g.select.address : '');
  // PCI addresses and type ids are ASCII: code-unit order, without building an ICU collator (~6 ms).
  const byCodeUnits = (x: string, y: string): number => (x === y ? 0 : x < y ? -1 : 1);
  const entries = [...groups.values()].sort((a, b) => byCodeUnits(addr(a), addr(b)) || byCodeUnits(a.type, b.type)).map((g) => ({ select: g.select, type: g.type, count: g.uuids.length, autostart: g.autostart, uuids: g.uuids }));
  return { plan: { version: 1, defaults: { autostart: true }, gpus: entries }, left_out: leftOut, units: units.map((u) => u.path) };
}

export const planToYaml = (plan: Plan): string => stringify(plan, { lineWidth: 0 });
