/**
 * Plans from the formats operators already have: NVIDIA vgpu-device-manager's `vgpu-configs` (one label
 * chosen with -c) and StackHPC kayobe's `vgpu_definitions`. Both become a native plan, so apply, assert
 * and the rules are the same whatever the source.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import type { Catalogue } from '../catalogue/catalogue.js';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import type { HostState } from '../lifecycle/host-state.js';
import type { Plan } from './plan-file.js';

export const importFormatSchema = z.enum(['native', 'nvidia-vgpu-dm', 'stackhpc']);
export type ImportFormat = z.infer<typeof importFormatSchema>;

const vgpuDmSpec = z
  .object({
    version: z.literal('v1'),
    'vgpu-configs': z.record(
      z.string(),
      z
        .array(
          z
            .object({
              devices: z.union([z.literal('all'), z.array(z.number().int().nonnegative())]),
              'device-filter': z.union([z.string(), z.array(z.string())]).optional(),
              'vgpu-devices': z.record(z.string(), z.number().int().nonnegative()),
            })
            .strict(),
        )
        .min(1),
    ),
  })
  .strict();

const stackhpcSpec = z.union([
  z.object({ vgpu_definitions: z.array(z.unknown()) }).passthrough(),
  z.array(z.unknown()),
]);
const stackhpcGpu = z
  .object({
    pci_address: z.string(),
    virtual_functions: z.array(z.object({ mdev_type: z.string(), index: z.number().int().nonnegative() }).strict()).default([]),
    mig_devices: z.record(z.string(), z.number()).optional(),
  })
  .passthrough();

function parseYaml(text: string, source: string): unknown {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) throw new VgpuctlError('invalid-input', `${source}: not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  return doc.toJS();
}

function zodMessage(e: z.ZodError, source: string): string {
  return e.issues.map((i) => `${source}: ${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
}

/**
 * The GPUs vgpu-device-manager counts `devices` indexes over: go-nvlib's nvpci.GetGPUs(), i.e. every NVIDIA
 * PCI function of class VGA (0x0300) or 3D controller (0x0302) that is not an SR-IOV virtual function,
 * whatever driver it is bound to (a passthrough GPU on vfio-pci keeps its index), in PCI address order.
 */
function readPci(state: HostState, addr: string, attr: string): string | null {
  try {
    return readFileSync(path.join(state.host.path('/sys/bus/pci/devices'), addr, attr), 'utf8').trim().toLowerCase();
  } catch {
    return null;
  }
}

function nvidiaGpuAddresses(state: HostState): string[] {
  const dir = state.host.path('/sys/bus/pci/devices');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const read = (addr: string, attr: string) => readPci(state, addr, attr);
  return names
    .filter((a) => read(a, 'vendor') === '0x10de' && /^0x030[02]/.test(read(a, 'class') ?? '') && !existsSync(path.join(dir, a, 'physfn')))
    .sort();
}

/** vgpu-device-manager: `devices` are GPU indexes in PCI order; `device-filter` ids like 0x1EB810DE. */
export function fromVgpuDeviceManager(text: string, source: string, label: string | undefined, state: HostState, catalogue: Catalogue): Plan {
  const r = vgpuDmSpec.safeParse(parseYaml(text, source));
  if (!r.success) throw new VgpuctlError('invalid-input', `invalid vgpu-device-manager config: ${zodMessage(r.error, source)}`);
  const labels = Object.keys(r.data['vgpu-configs']);
  if (label === undefined) throw new VgpuctlError('usage', `choose a configuration with -c LABEL; ${source} has: ${labels.join(', ')}`);
  const specs = r.data['vgpu-configs'][label];
  if (!specs) throw new VgpuctlError('invalid-input', `${source} has no configuration ${JSON.stringify(label)}; it has: ${labels.join(', ')}`);
  const gpus = nvidiaGpuAddresses(state);
  const entries: Plan['gpus'] = [];
  for (const spec of specs) {
    const filters = spec['device-filter'] === undefined ? [] : ([] as string[]).concat(spec['device-filter']);
    const boards = filters.map((f) => {
      const m = /^0x([0-9a-f]{4})10de$/i.exec(f);
      const board = m ? catalogue.boardForDeviceId(`0x${m[1]!.toLowerCase()}`)?.board : undefined;
      if (!board) throw new VgpuctlError('invalid-input', `${source}: device-filter ${f} names no board vgpuctl knows`);
      return board;
    });
    // As vgpu-device-manager walks GPUs: an index list only takes the GPUs the filter matches too.
    const filterIds = filters.map((f) => `0x${f.slice(2, 6).toLowerCase()}`);
    const passesFilter = (addr: string) => filterIds.length === 0 || filterIds.includes(readPci(state, addr, 'device') ?? '');
    for (const [profile, count] of Object.entries(spec['vgpu-devices'])) {
      if (count === 0) continue;
      if (spec.devices === 'all') {
        if (boards.length === 0) entries.push({ select: { all: true }, profile, count });
        for (const board of boards) entries.push({ select: { board }, profile, count });
      } else {
        for (const idx of spec.devices) {
          const addr = gpus[idx];
          if (!addr) throw new VgpuctlError('invalid-input', `${source}: device index ${idx} does not exist; this host has ${gpus.length} NVIDIA GPU(s) (${gpus.join(', ') || 'none'})`);
          if (!passesFilter(addr)) continue;
          // A GPU that is no mdev parent (passthrough on vfio-pci) keeps its index; the plan's rules then say why it cannot carry vGPUs.
          const gpu = state.gpus.find((g) => g.key === addr);
          entries.push({ select: gpu && (gpu.parents.length > 1 || gpu.sriov) ? { pf: addr } : { address: addr }, profile, count });
        }
      }
    }
  }
  if (entries.length === 0) throw new VgpuctlError('invalid-input', `${source}: configuration ${label} asks for no vGPUs`);
  return { version: 1, defaults: { autostart: true }, gpus: entries };
}

/** StackHPC kayobe: per PF, a list of VFs (by index) with their mdev type, kept as select.vfs; all `start: manual`, as the role defines them. */
export function fromStackhpc(text: string, source: string): Plan {
  const top = stackhpcSpec.safeParse(parseYaml(text, source));
  if (!top.success) throw new VgpuctlError('invalid-input', `invalid vgpu_definitions: ${zodMessage(top.error, source)}`);
  const list = Array.isArray(top.data) ? top.data : top.data.vgpu_definitions;
  const entries: Plan['gpus'] = [];
  for (const [i, raw] of list.entries()) {
    const g = stackhpcGpu.safeParse(raw);
    if (!g.success) throw new VgpuctlError('invalid-input', `invalid vgpu_definitions[${i}]: ${zodMessage(g.error, source)}`);
    // The role's index N is the PF's virtfnN: each type keeps its VFs (select.vfs), as nova's device_addresses name them.
    const vfsOfType = new Map<string, number[]>();
    const indexes = new Set<number>();
    for (const vf of g.data.virtual_functions) {
      if (indexes.has(vf.index)) throw new VgpuctlError('invalid-input', `${source}: vgpu_definitions[${i}] gives virtual function ${vf.index} twice`);
      indexes.add(vf.index);
      vfsOfType.set(vf.mdev_type, [...(vfsOfType.get(vf.mdev_type) ?? []), vf.index]);
    }
    for (const [type, vfs] of vfsOfType) entries.push({ select: { pf: g.data.pci_address.toLowerCase(), vfs }, type, count: vfs.length, autostart: false });
  }
  if (entries.length === 0) throw new VgpuctlError('invalid-input', `${source}: vgpu_definitions lists no virtual functions`);
  return { version: 1, defaults: { autostart: false }, gpus: entries };
}
