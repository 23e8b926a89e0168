/**
 * Plans in the formats operators already have reach the same host as the equivalent native plan:
 * StackHPC kayobe's `vgpu_definitions` (seed 002, addresses adapted to the fixture's GPUs) and NVIDIA
 * vgpu-device-manager's `vgpu-configs` (one label chosen with -c; `devices` are indexes of the host's
 * NVIDIA GPUs in PCI address order, as go-nvlib's nvpci.GetGPUs() lists them).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { HostRoot } from '../../src/host/host-root.js';
import { cli } from '../helpers/cli.js';
import { hostFrom, snapshotTree } from '../helpers/hosts.js';
import { cloneHost, devices, shapeOfHost, sim, treeDiff, writePlan } from './plan-helpers.js';

/** The SR-IOV host's simulated writes each rescan 40 VFs: slow on a busy machine. */
const SLOW = 180_000;

let a100: HostRoot;
let t4: HostRoot;
beforeAll(async () => {
  [a100, t4] = await Promise.all([hostFrom('a100d-sriov-seed002'), hostFrom('t4x4-seed001')]);
}, SLOW);

/** Applies `args` to a fresh copy of `base` and returns the copy. */
async function applied(base: HostRoot, args: string[]): Promise<HostRoot> {
  const host = cloneHost(base);
  const r = await sim(host, 'apply', ...args, '-o', 'json');
  expect(r.code, r.stderr).toBe(0);
  return host;
}

/** Both routes reach the same host: the same (parent, type, start) devices with the same counts, and the same UUIDs. */
async function expectSameHost(a: HostRoot, b: HostRoot): Promise<void> {
  expect(await shapeOfHost(a)).toEqual(await shapeOfHost(b));
  expect((await devices(a)).map((d) => d.uuid)).toEqual((await devices(b)).map((d) => d.uuid));
}

// Seed 002's vgpu_definitions, with the fixture's PCI addresses (the seed's 0000:17:00.0 / 0000:65:00.0
// are 0000:21:00.0 / 0000:81:00.0 on this host), its comment block and MIG layout kept.
const STACKHPC_SEED = `
#nvidia-692 GRID A100D-4C
#nvidia-699 GRID A100D-1-10C
#nvidia-700 GRID A100D-2-20C
vgpu_definitions:
    # Configuring a MIG backed VGPU
    - pci_address: "0000:21:00.0"
      virtual_functions:
        - mdev_type: nvidia-700
          index: 0
        - mdev_type: nvidia-700
          index: 1
        - mdev_type: nvidia-700
          index: 2
        - mdev_type: nvidia-699
          index: 3
      mig_devices:
        "1g.10gb": 1
        "2g.20gb": 3
    - pci_address: "0000:81:00.0"
      virtual_functions:
        - mdev_type: nvidia-700
          index: 0
        - mdev_type: nvidia-700
          index: 1
        - mdev_type: nvidia-700
          index: 2
        - mdev_type: nvidia-699
          index: 3
      mig_devices:
        "1g.10gb": 1
        "2g.20gb": 3
`;

describe('--from stackhpc (vgpu_definitions)', () => {
  it("seed 002's definitions describe the fixture as it is: nothing to change, assert passes", async () => {
    const file = writePlan(STACKHPC_SEED, 'vgpu.yml');
    const host = cloneHost(a100);
    const snap = await snapshotTree(host.root);
    const r = await sim(host, 'apply', '-f', file, '--from', 'stackhpc', '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ changed: false, changes: [], unplanned: [] });
    expect(treeDiff(snap, await snapshotTree(host.root))).toEqual([]);
    // StackHPC's devices, with its own UUIDs, adopted one per VF and kept `manual` as the role defines them.
    expect(r.json().devices.map((d: any) => [d.parent, d.type, d.autostart, d.uuid])).toContainEqual(['0000:21:00.4', 'nvidia-700', false, '5c630867-a673-5d75-aa31-a499e6c7cb19']);
    expect((await sim(host, 'assert', '-f', file, '--from', 'stackhpc')).code).toBe(0);

    const native = writePlan(`version: 1
defaults: { autostart: false }
gpus:
  - { select: { pf: "0000:21:00.0" }, type: nvidia-700, count: 3 }
  - { select: { pf: "0000:21:00.0" }, type: nvidia-699, count: 1 }
  - { select: { pf: "0000:81:00.0" }, type: nvidia-700, count: 3 }
  - { select: { pf: "0000:81:00.0" }, type: nvidia-699, count: 1 }
`);
    const viaNative = await sim(host, 'plan', '-f', native, '-o', 'json');
    // The same devices (the import pins each to its VF, so its slots are in VF order, not UUID order).
    const byUuid = (ds: any[]) => [...ds].sort((x, y) => (x.uuid < y.uuid ? -1 : 1));
    expect(byUuid(viaNative.json().devices)).toEqual(byUuid(r.json().devices));
  }, SLOW);

  it("the seed's time-sliced layout (2 x nvidia-697 on VF 0 and 1) reaches the host the native plan reaches", async () => {
    // First GPU re-cut to seed 002's "time-sliced configuration", second GPU as it is.
    const file = writePlan(
      `vgpu_definitions:
    - pci_address: "0000:21:00.0"
      virtual_functions:
        - mdev_type: nvidia-697
          index: 0
        - mdev_type: nvidia-697
          index: 1
    - pci_address: "0000:81:00.0"
      virtual_functions:
        - { mdev_type: nvidia-700, index: 0 }
        - { mdev_type: nvidia-700, index: 1 }
        - { mdev_type: nvidia-700, index: 2 }
        - { mdev_type: nvidia-699, index: 3 }
`,
      'vgpu.yml',
    );
    const native = writePlan(`version: 1
defaults: { autostart: false }
gpus:
  - { select: { pf: "0000:21:00.0" }, type: nvidia-697, count: 2 }
  - { select: { pf: "0000:81:00.0" }, type: nvidia-700, count: 3 }
  - { select: { pf: "0000:81:00.0" }, type: nvidia-699, count: 1 }
`);
    const viaImport = await applied(a100, ['-f', file, '--from', 'stackhpc', '--prune']);
    const viaNative = await applied(a100, ['-f', native, '--prune']);
    await expectSameHost(viaImport, viaNative);
    const first = (await devices(viaImport)).filter((d) => d.parent.startsWith('0000:21:'));
    // StackHPC's index i is VF i (0000:21:00.4 + i): here the import lands on those same VFs.
    expect(first.map((d) => [d.parent, d.type, d.active, d.defined, d.autostart])).toEqual([
      ['0000:21:00.4', 'nvidia-697', true, true, false],
      ['0000:21:00.5', 'nvidia-697', true, true, false],
    ]);
    expect((await sim(viaImport, 'assert', '-f', native)).code).toBe(0);
    expect((await sim(viaNative, 'assert', '-f', file, '--from', 'stackhpc')).code).toBe(0);
  }, SLOW);

  // StackHPC's index N is the PF's virtfnN; nova's [mdev_<type>] device_addresses names VFs by address, so a
  // layout whose indexes are not grouped by type must land on exactly those VFs (select.vfs in the plan).
  it('keeps the VF index: nvidia-699 on VF 1 = 0000:21:00.5, as plan, apply and assert show', async () => {
    const file = writePlan(
      `vgpu_definitions:
    - pci_address: "0000:21:00.0"
      virtual_functions:
        - { mdev_type: nvidia-700, index: 0 }
        - { mdev_type: nvidia-699, index: 1 }
        - { mdev_type: nvidia-700, index: 2 }
        - { mdev_type: nvidia-700, index: 3 }
`,
      'vgpu.yml',
    );
    const host = cloneHost(a100);
    const r = await sim(host, 'plan', '-f', file, '--from', 'stackhpc', '--prune', '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    const on21 = r.json().devices.filter((d: any) => d.gpu === '0000:21:00.0').map((d: any) => [d.parent, d.type]).sort();
    const wanted = [
      ['0000:21:00.4', 'nvidia-700'],
      ['0000:21:00.5', 'nvidia-699'],
      ['0000:21:00.6', 'nvidia-700'],
      ['0000:21:00.7', 'nvidia-700'],
    ];
    expect(on21).toEqual(wanted);

    const a = await sim(host, 'apply', '-f', file, '--from', 'stackhpc', '--prune', '-o', 'json');
    expect(a.code, a.stderr).toBe(0);
    const rows = (await devices(host)).filter((d) => d.parent.startsWith('0000:21:'));
    expect(rows.map((d) => [d.parent, d.type, d.active, d.defined, d.autostart]).sort()).toEqual(wanted.map(([p, t]) => [p, t, true, true, false]));
    expect((await sim(host, 'assert', '-f', file, '--from', 'stackhpc')).code).toBe(0);
    const again = await sim(host, 'apply', '-f', file, '--from', 'stackhpc', '--prune', '-o', 'json');
    expect(again.json()).toMatchObject({ changed: false, changes: [] });

    /** A native plan for 0000:21:00.0: per type, its VF indexes (or only a count, null). */
    const plan21 = (vfs700: number[] | null, vfs699: number[] | null) =>
      writePlan(
        ['version: 1', 'defaults: { autostart: false }', 'gpus:']
          .concat(([['nvidia-700', vfs700, 3], ['nvidia-699', vfs699, 1]] as const).map(([t, v, n]) => `  - { select: { pf: "0000:21:00.0"${v ? `, vfs: [${v.join(', ')}]` : ''} }, type: ${t}, count: ${n} }`))
          .join('\n'),
      );
    expect((await sim(host, 'assert', '-f', plan21([0, 2, 3], [1]))).code).toBe(0);
    // 699 on VF 3 instead is another host: the same counts per type, but assert says it does not match.
    const moved = await sim(host, 'assert', '-f', plan21([0, 1, 2], [3]), '-o', 'json');
    expect(moved.code, moved.stderr).toBe(1);
    expect(moved.json().differences.map((d: any) => d.type).join('\n')).toMatch(/^gpus\[0\]\.select\.vfs \(A100D-2-20C\): 0000:21:00\.5 of 0000:21:00\.0 already carries nvidia-699 \([0-9a-f-]{36}\); one vGPU per virtual function: run with --prune/);
    expect((await sim(host, 'assert', '-f', plan21(null, null))).code).toBe(0);
    // nova's device_addresses follow the VFs: [mdev_nvidia-699] is VF 1.
    const nova = await cli(['--root', host.root, 'nova-config', '--release', '2024.1', '--from-plan', plan21([0, 2, 3], [1])]);
    expect(nova.code, nova.stderr).toBe(0);
    expect(nova.stdout).toMatch(/\[mdev_nvidia-699\]\n[^[]*device_addresses = 0000:21:00\.5\n/);
    expect(nova.stdout).toMatch(/\[mdev_nvidia-700\]\n[^[]*device_addresses = 0000:21:00\.4,0000:21:00\.6,0000:21:00\.7\n/);
  }, SLOW);
});

describe('select: { pf, vfs } (the placement the StackHPC import uses)', () => {
  it('is checked before any write: count must match, an index is named once, exists (virtfnN) and is not given twice', async () => {
    const host = cloneHost(a100);
    const snap = await snapshotTree(host.root);
    const run = async (body: string) => sim(host, 'apply', '-f', writePlan(`version: 1\ngpus:\n${body}`));
    const count = await run('  - { select: { pf: "0000:21:00.0", vfs: [0, 1] }, type: nvidia-700, count: 3 }\n');
    expect(count.code).toBe(2);
    expect(count.stderr).toMatch(/:3: gpus\.0\.count: select\.vfs puts one vGPU on each VF it names: count must be the number of VF indexes/);
    const twice = await run('  - { select: { pf: "0000:21:00.0", vfs: [1, 1] }, type: nvidia-700, count: 2 }\n');
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/gpus\.0\.select\.vfs: names a VF index twice/);
    const absent = await run('  - { select: { pf: "0000:21:00.0", vfs: [200] }, type: nvidia-700, count: 1 }\n');
    expect(absent.code).toBe(2);
    expect(absent.stderr).toMatch(/gpus\[0\] \(nvidia-700\): 0000:21:00\.0 has no virtual function 200 \(no virtfn200\); enable its VFs/);
    const shared = await run('  - { select: { pf: "0000:21:00.0", vfs: [0] }, type: nvidia-700, count: 1 }\n  - { select: { pf: "0000:21:00.0", vfs: [0] }, type: nvidia-699, count: 1 }\n');
    expect(shared.code).toBe(2);
    expect(shared.stderr).toMatch(/gpus\[1\]\.select\.vfs \(A100D-1-10C\): 0000:21:00\.4 of 0000:21:00\.0 already carries nvidia-700/);
    expect(treeDiff(snap, await snapshotTree(host.root))).toEqual([]);
  }, SLOW);

  it('is refused on a vendor-VFIO GPU, where vgpuctl picks the VFs', async () => {
    const host = await hostFrom('l40s-vfio');
    const r = await sim(host, 'plan', '-f', writePlan('version: 1\ngpus:\n  - { select: { pf: "0000:41:00.0", vfs: [0] }, profile: L40S-8Q, count: 1 }\n'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/gpus\[0\] \(L40S-8Q\): select\.vfs places mdev vGPUs on chosen VFs; 0000:41:00\.0 is a vendor-VFIO GPU, where vgpuctl picks the VFs: leave vfs out/);
  }, SLOW);
});

// NVIDIA vgpu-device-manager's v1 format. On t4x4 the host's NVIDIA GPUs in PCI order are
// 0: 0000:18:00.0, 1: 0000:3b:00.0, 2: 0000:86:00.0 (on vfio-pci, passthrough), 3: 0000:af:00.0.
const VGPU_DM = `version: v1
vgpu-configs:
  default:
    - devices: all
      vgpu-devices:
        "T4-8Q": 2
  T4-8Q:
    - devices: all
      vgpu-devices:
        "T4-8Q": 2
  T4-8Q-first:
    - devices: [0]
      vgpu-devices:
        "T4-8Q": 2
  T4-mixed:
    - devices: [0, 1]
      vgpu-devices:
        "T4-8Q": 2
    - devices: [3]
      device-filter: ["0x1EB810DE"]
      vgpu-devices:
        "T4-4Q": 4
  A100-only-then-T4:
    - devices: [0, 3]
      device-filter: "0x20B510DE"
      vgpu-devices:
        "T4-8Q": 2
    - devices: [1]
      device-filter: ["0x20B510DE", "0x1EB810DE"]
      vgpu-devices:
        "T4-8Q": 2
  T4-passthrough-gpu:
    - devices: [2]
      vgpu-devices:
        "T4-8Q": 2
`;

describe('--from nvidia-vgpu-dm -c LABEL (vgpu-configs)', () => {
  const file = writePlan(VGPU_DM, 'vgpu-configs.yaml');

  it('devices: all reaches the host that { board: T4 } and { all: true } reach', async () => {
    const viaImport = await applied(t4, ['-f', file, '--from', 'nvidia-vgpu-dm', '-c', 'T4-8Q']);
    const board = await applied(t4, ['-f', writePlan('version: 1\ngpus:\n  - { select: { board: T4 }, profile: T4-8Q, count: 2 }\n')]);
    const all = await applied(t4, ['-f', writePlan('version: 1\ngpus:\n  - { select: { all: true }, profile: T4-8Q, count: 2 }\n')]);
    await expectSameHost(viaImport, board);
    await expectSameHost(viaImport, all);
    expect(await shapeOfHost(viaImport)).toEqual({ '0000:18:00.0 nvidia-233 auto': 2, '0000:3b:00.0 nvidia-233 auto': 2, '0000:af:00.0 nvidia-233 auto': 2 });
    expect((await sim(viaImport, 'assert', '-f', file, '--from', 'nvidia-vgpu-dm', '-c', 'T4-8Q')).code).toBe(0);
  });

  it('devices: [0] is the first GPU in PCI order, 0000:18:00.0, which already carries its two T4-8Q', async () => {
    const host = cloneHost(t4);
    const r = await sim(host, 'apply', '-f', file, '--from', 'nvidia-vgpu-dm', '-c', 'T4-8Q-first', '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().changes).toEqual([]);
    expect(r.json().devices.map((d: any) => [d.parent, d.type, d.adopted])).toEqual([
      ['0000:18:00.0', 'nvidia-233', true],
      ['0000:18:00.0', 'nvidia-233', true],
    ]);
    const native = await applied(t4, ['-f', writePlan('version: 1\ngpus:\n  - { select: { address: "0000:18:00.0" }, profile: T4-8Q, count: 2 }\n')]);
    await expectSameHost(host, native);
  });

  it('indexes count the passthrough T4 too: devices: [3] is 0000:af:00.0, and a device-filter on the T4 id matches it', async () => {
    const viaImport = await applied(t4, ['-f', file, '--from', 'nvidia-vgpu-dm', '-c', 'T4-mixed']);
    const native = await applied(t4, [
      '-f',
      writePlan(`version: 1
gpus:
  - { select: { address: "0000:18:00.0" }, profile: T4-8Q, count: 2 }
  - { select: { address: "0000:3b:00.0" }, profile: T4-8Q, count: 2 }
  - { select: { address: "0000:af:00.0" }, profile: T4-4Q, count: 4 }
`),
    ]);
    await expectSameHost(viaImport, native);
    expect(await shapeOfHost(viaImport)).toEqual({ '0000:18:00.0 nvidia-233 auto': 2, '0000:3b:00.0 nvidia-233 auto': 2, '0000:af:00.0 nvidia-232 auto': 4 });
  });

  it('an index list takes only the GPUs its device-filter matches (an A100D filter skips the T4s)', async () => {
    const host = cloneHost(t4);
    const r = await sim(host, 'plan', '-f', file, '--from', 'nvidia-vgpu-dm', '-c', 'A100-only-then-T4', '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    expect([...new Set(r.json().devices.map((d: any) => d.gpu))]).toEqual(['0000:3b:00.0']);
  });

  it('an index naming the passthrough GPU is refused before any write, naming it', async () => {
    const host = cloneHost(t4);
    const snap = await snapshotTree(host.root);
    const r = await sim(host, 'apply', '-f', file, '--from', 'nvidia-vgpu-dm', '-c', 'T4-passthrough-gpu');
    expect(r.code).toBe(2); // a plan this host cannot carry is bad input
    expect(r.stderr).toMatch(/0000:86:00\.0 is not a vGPU-capable GPU on this host/);
    expect(treeDiff(snap, await snapshotTree(host.root))).toEqual([]);
  });

  it('without -c, or with an unknown label, says which labels the file has (exit 2)', async () => {
    const none = await sim(t4, 'plan', '-f', file, '--from', 'nvidia-vgpu-dm');
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/choose a configuration with -c LABEL; .* has: default, T4-8Q, T4-8Q-first, T4-mixed, A100-only-then-T4, T4-passthrough-gpu/);
    const unknown = await sim(t4, 'plan', '-f', file, '--from', 'nvidia-vgpu-dm', '-c', 'T4-16Q');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/has no configuration "T4-16Q"/);
    const missing = await sim(t4, 'plan', '-f', file, '--from', 'nvidia-vgpu-dm', '-c', 'T4-8Q-first', '--prune');
    expect(missing.code).toBe(0);
    const big = writePlan('version: v1\nvgpu-configs:\n  x:\n    - devices: [4]\n      vgpu-devices: { "T4-8Q": 2 }\n');
    const outOfRange = await sim(t4, 'plan', '-f', big, '--from', 'nvidia-vgpu-dm', '-c', 'x');
    expect(outOfRange.code).toBe(2);
    expect(outOfRange.stderr).toMatch(/device index 4 does not exist; this host has 4 NVIDIA GPU\(s\)/);
  });
});
