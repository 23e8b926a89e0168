/**
 * Every nova configuration vgpuctl generates, for every bundled host and every release it knows, loaded by
 * nova's own code (Debian python3-nova, nova 26 = Zed): oslo.config parses it, the libvirt driver's
 * _get_supported_vgpu_types decides which types go to which GPU with which resource class, and every
 * `[mdev_<type>]` group reads back the expected addresses and class.
 *
 * Expected values are not taken from the generator: the vGPUs per type come from `vgpuctl list --all`
 * and `vgpuctl types` (or `vgpuctl plan` for a plan), and what nova does per release is written out here
 * from nova's history (see src/nova/releases.ts for the commits).
 *
 * What nova 26 can judge: the option names of every release (it still reads enabled_vgpu_types and
 * [vgpu_<type>] as deprecated names), addresses and classes, and the driver's behaviour, which is the
 * behaviour of Ussuri to 2023.2 (and of every release for several types). From 2024.1 a single type honours
 * its group and max_instances exists: nova 26 does not know that, so those are asserted on the text.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, tempDir } from '../helpers/hosts.js';
import { RELEASES } from '../../src/nova/releases.js';
import { novaCheck, skipWithoutNova, type NovaCase, type NovaResult } from './nova-python.js';

// Every test lays out host trees and runs the CLI many times; slow machines need the room.
vi.setConfig({ testTimeout: 180_000 });

const skip = skipWithoutNova();

interface Expected {
  label: string;
  nova: number;
  /** type → sorted parent addresses */
  byType: Map<string, string[]>;
  /** type → class nova should report when it honours the groups */
  classes: Map<string, string>;
  sriov: Set<string>;
  text: string;
}

const token = (s: string) => s.toUpperCase().replace(/[^A-Z0-9]+/g, '_');

async function hostVgpus(root: string): Promise<{ byType: Map<string, string[]>; profiles: Map<string, string | null> }> {
  const devices = (await cli(['--root', root, 'list', '--all', '-o', 'json'])).json().devices as Array<{ parent: string; type: string }>;
  const types = (await cli(['--root', root, 'types', '-o', 'json'])).json().types as Array<{ parent: string; type: string; profile: string | null }>;
  const byType = new Map<string, string[]>();
  const profiles = new Map<string, string | null>();
  for (const d of devices) {
    const t = types.find((x) => x.parent === d.parent && x.type === d.type);
    if (!t) continue; // a definition whose parent or type is gone cannot be configured
    byType.set(d.type, [...new Set([...(byType.get(d.type) ?? []), d.parent])].sort());
    profiles.set(d.type, t.profile);
  }
  return { byType, profiles };
}

async function planVgpus(root: string, plan: string): Promise<{ byType: Map<string, string[]>; profiles: Map<string, string | null> }> {
  const r = await cli(['--root', root, 'plan', '-f', plan, '-o', 'json']);
  const byType = new Map<string, string[]>();
  const profiles = new Map<string, string | null>();
  for (const d of r.json().devices as Array<{ parent: string; type: string; profile: string | null }>) {
    byType.set(d.type, [...new Set([...(byType.get(d.type) ?? []), d.parent])].sort());
    profiles.set(d.type, d.profile);
  }
  return { byType, profiles };
}

/** Every release with --mdev-class auto; VGPU and per-type classes on the releases where the class rules change. */
const CLASS_RELEASES = ['xena', '2023.2', '2024.1', '2026.1'];
const variants = (types: string[], release: string): Array<{ name: string; args: string[]; cls: (type: string, profile: string | null, several: boolean) => string }> => {
  const auto = { name: 'auto', args: [], cls: (t: string, p: string | null, several: boolean) => (several ? `CUSTOM_VGPU_${token(p ?? t)}` : 'VGPU') };
  if (!CLASS_RELEASES.includes(release)) return [auto];
  return [
    auto,
    { name: 'VGPU', args: ['--mdev-class', 'VGPU'], cls: () => 'VGPU' },
    {
      name: 'per-type',
      args: types.flatMap((t, i) => ['--mdev-class', `${t}=CUSTOM_TEST_${i}`]),
      cls: (t: string) => `CUSTOM_TEST_${types.indexOf(t)}`,
    },
  ];
};

/** Generates every release x class variant for one host; returns the nova cases and what each must read back. */
async function generateAll(root: string, source: { byType: Map<string, string[]>; profiles: Map<string, string | null> }, extra: string[], dir: string, label: string) {
  const cases: NovaCase[] = [];
  const expected: Expected[] = [];
  const refusals: Array<{ release: string; stderr: string; code: number }> = [];
  const types = [...source.byType.keys()];
  for (const r of RELEASES) {
    for (const v of variants(types, r.name)) {
      const res = await cli(['--root', root, 'nova-config', '--release', r.name, ...extra, ...v.args, '-o', 'json']);
      if (res.code !== 0) {
        refusals.push({ release: r.name, stderr: res.stderr, code: res.code });
        continue;
      }
      const out = res.json();
      const file = path.join(dir, `${label}-${r.name}-${v.name}.conf`);
      writeFileSync(file, out.text);
      cases.push({ file });
      const several = types.length > 1;
      const classes = new Map(types.map((t) => [t, v.cls(t, source.profiles.get(t) ?? null, several)]));
      const sriov = new Set<string>(out.mdev.groups.filter((g: { sriov: boolean }) => g.sriov).map((g: { type: string }) => g.type));
      expected.push({ label: `${label} ${r.name} ${v.name}`, nova: r.nova, byType: source.byType, classes, sriov, text: out.text });
    }
  }
  return { cases, expected, refusals };
}

function assertNova(e: Expected, got: NovaResult): void {
  const where = e.label;
  expect(got.parse_error, where).toBeUndefined();
  expect(got.driver_error, where).toBeUndefined();
  const types = [...e.byType.keys()].sort((a, b) => Number(a.split('-')[1]) - Number(b.split('-')[1]));
  const several = types.length > 1;
  const honours = e.nova >= 21 && (several || e.nova >= 29);
  // Option names of the release, in the text nova reads.
  expect(e.text, where).toContain(e.nova >= 24 ? '\nenabled_mdev_types = ' : '\nenabled_vgpu_types = ');
  const settings = e.text.split('\n').filter((l) => !l.startsWith('#')).join('\n');
  if (e.nova < 24) expect(settings, where).not.toContain('mdev_class');
  if (!honours) {
    // A single type before 2024.1 (or anything before Ussuri): nova reads no group; the file has none.
    expect(got.enabled_mdev_types, where).toEqual([types[0]]);
    expect(e.text, where).not.toMatch(/^\[(mdev|vgpu)_/m);
    expect(got.driver, where).toEqual({ supported_types: [types[0]], pgpu_type_mapping: {}, mdev_class_mapping: {}, mdev_classes: ['VGPU'] });
    return;
  }
  expect(got.enabled_mdev_types, where).toEqual(types);
  expect(e.text, where).toMatch(e.nova >= 24 ? /^\[mdev_/m : /^\[vgpu_/m);
  for (const t of types) {
    const g = got.groups?.[t];
    expect(g?.device_addresses, `${where} ${t}`).toEqual(e.byType.get(t));
    expect(g?.mdev_class, `${where} ${t}`).toBe(e.nova >= 24 ? e.classes.get(t) : 'VGPU');
    // max_instances: from 2024.1, for SR-IOV types (each VF its own provider) = the number of VFs listed.
    const section = new RegExp(`^\\[mdev_${t}\\][^[]*^max_instances = (\\d+)$`, 'm').exec(e.text);
    if (e.nova >= 29 && e.sriov.has(t)) expect(Number(section?.[1]), `${where} ${t}`).toBe(e.byType.get(t)!.length);
    else expect(section, `${where} ${t}`).toBeNull();
  }
  // The driver (Zed's code) decides as Ussuri..2023.2 do, and as every release does for several types.
  if (e.nova <= 28 || several) {
    expect(got.driver?.supported_types, where).toEqual(types);
    expect(got.driver?.pgpu_type_mapping, where).toEqual(Object.fromEntries(types.flatMap((t) => e.byType.get(t)!.map((a) => [a, t]))));
    const cls = (t: string) => (e.nova >= 24 ? e.classes.get(t)! : 'VGPU');
    expect(got.driver?.mdev_class_mapping, where).toEqual(Object.fromEntries(types.flatMap((t) => e.byType.get(t)!.map((a) => [a, cls(t)]))));
    expect(got.driver?.mdev_classes, where).toEqual([...new Set(types.map(cls))].sort());
  } else {
    // 2024.1+ with one type: the group is honoured (c28494fd27); nova 26 cannot say so, the text does.
    expect(e.text, where).toContain(`device_addresses = ${e.byType.get(types[0]!)!.join(',')}`);
    expect(e.text, where).toContain(`mdev_class = ${e.classes.get(types[0]!)}`);
  }
}

describe.skipIf(skip)('nova-config output, loaded by nova itself', () => {
  it('a100d-sriov-seed002 (two MIG-backed types on SR-IOV VFs): every release and class choice', async () => {
    const host = await hostFrom('a100d-sriov-seed002');
    const src = await hostVgpus(host.root);
    expect([...src.byType.keys()].sort()).toEqual(['nvidia-699', 'nvidia-700']);
    const { cases, expected, refusals } = await generateAll(host.root, src, [], tempDir(), 'a100d');
    // Before Ussuri nova takes one type per host: refused, not silently half-configured.
    expect(refusals.map((r) => r.release)).toEqual(['queens', 'rocky', 'stein', 'train']);
    for (const r of refusals) {
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/offers one vGPU type per compute node/);
    }
    const results = await novaCheck(cases);
    expect(results[0]!.nova_version).toMatch(/^26\./);
    expected.forEach((e, i) => assertNova(e, results[i]!));
    expect(expected.length).toBe(13 + 2 * 4); // ussuri..2026.1 auto, and two more class choices on four releases
  }, 300_000);

  it('t4x4-seed001 (one type on one of three vGPU T4s) and leftovers (P40 with orphan definitions)', async () => {
    const dir = tempDir();
    const all: Array<{ cases: NovaCase[]; expected: Expected[] }> = [];
    for (const name of ['t4x4-seed001', 'leftovers']) {
      const host = await hostFrom(name);
      const src = await hostVgpus(host.root);
      expect(src.byType.size).toBe(1);
      const g = await generateAll(host.root, src, [], dir, name);
      expect(g.refusals).toEqual([]);
      all.push(g);
    }
    const results = await novaCheck(all.flatMap((g) => g.cases));
    all.flatMap((g) => g.expected).forEach((e, i) => assertNova(e, results[i]!));
  }, 300_000);

  it('t4x4-seed001 before 2024.1: says that nova will also use the other T4s for the type', async () => {
    const host = await hostFrom('t4x4-seed001');
    const r = await cli(['--root', host.root, 'nova-config', '--release', 'zed']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: nova zed ignores device_addresses and mdev_class when only one type is enabled.*also offers nvidia-233 on 0000:3b:00.0, 0000:af:00.0/);
    const after = await cli(['--root', host.root, 'nova-config', '--release', '2024.1']);
    expect(after.stderr).not.toMatch(/warning/);
    expect(after.stdout).toContain('[mdev_nvidia-233]\n# vgpuctl: T4-8Q, 2 vGPU(s) on 0000:18:00.0\ndevice_addresses = 0000:18:00.0\nmdev_class = VGPU');
  });

  it('p40-seed004 and a100d-sriov-seed002 from plans (--from-plan)', async () => {
    const dir = tempDir();
    const p40 = await hostFrom('p40-seed004');
    const p40Plan = path.join(dir, 'p40.yaml');
    writeFileSync(p40Plan, 'version: 1\ngpus:\n  - select: { address: "0000:82:00.0" }\n    profile: P40-12C\n    count: 2\n');
    const none = await cli(['--root', p40.root, 'nova-config']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/this host has no vGPUs .*--from-plan FILE/);
    const a100 = await hostFrom('a100d-sriov-seed002');
    const a100Plan = path.join(dir, 'a100d.yaml');
    writeFileSync(a100Plan, 'version: 1\ngpus:\n  - select: { board: A100D }\n    profile: A100D-2-20C\n    count: 3\n  - select: { board: A100D }\n    profile: A100D-1-10C\n    count: 1\n');
    const g1 = await generateAll(p40.root, await planVgpus(p40.root, p40Plan), ['--from-plan', p40Plan], dir, 'p40plan');
    const g2 = await generateAll(a100.root, await planVgpus(a100.root, a100Plan), ['--from-plan', a100Plan], dir, 'a100plan');
    expect(g1.refusals).toEqual([]);
    expect(g1.expected[0]!.byType).toEqual(new Map([['nvidia-286', ['0000:82:00.0']]]));
    const results = await novaCheck([...g1.cases, ...g2.cases]);
    [...g1.expected, ...g2.expected].forEach((e, i) => assertNova(e, results[i]!));
  }, 300_000);
});

describe.skipIf(skip)('what nova refuses, vgpuctl refuses first', () => {
  it('nova rejects these files; vgpuctl nova-config --check rejects them with the reason', async () => {
    const dir = tempDir();
    const files: Record<string, string> = {
      // seed 002's shape with one VF in both groups
      duplicate: '[devices]\nenabled_mdev_types = nvidia-700, nvidia-699\n\n[mdev_nvidia-700]\ndevice_addresses = 0000:21:00.4,0000:21:00.5\nmdev_class = CUSTOM_NVIDIA_700\n\n[mdev_nvidia-699]\ndevice_addresses = 0000:21:00.4\nmdev_class = CUSTOM_NVIDIA_699\n',
      malformed: '[devices]\nenabled_mdev_types = nvidia-700, nvidia-699\n\n[mdev_nvidia-700]\ndevice_addresses = 0000:21:00\n\n[mdev_nvidia-699]\ndevice_addresses = 0000:21:00.7\n',
      nonpci: '[devices]\nenabled_mdev_types = mtty-1, mtty-2\n\n[mdev_mtty-1]\ndevice_addresses = mtty\n\n[mdev_mtty-2]\ndevice_addresses = 0000:21:00.7\n',
      badclass: '[devices]\nenabled_mdev_types = nvidia-700, nvidia-699\n\n[mdev_nvidia-700]\ndevice_addresses = 0000:21:00.4\nmdev_class = custom_nvidia_700\n\n[mdev_nvidia-699]\ndevice_addresses = 0000:21:00.7\n',
      badalias: '[pci]\nalias = {"name":"T4","vendor_id":"10de","product_id":"1eb8","device_type":"type-GPU"}\n',
      badspec: '[pci]\ndevice_spec = {"vendor_id":"10de","product_id":"1eb8x"}\n',
      unparsable: '[devices]\n enabled_mdev_types = nvidia-700\n',
    };
    const paths = Object.fromEntries(Object.entries(files).map(([k, text]) => {
      const f = path.join(dir, `${k}.conf`);
      writeFileSync(f, text);
      return [k, f];
    }));
    const nova = Object.fromEntries((await novaCheck(Object.values(paths).map((file) => ({ file })))).map((r, i) => [Object.keys(paths)[i]!, r]));
    // nova's own verdicts
    expect(nova['duplicate']!.driver_error).toBe('InvalidLibvirtMdevConfig: Invalid configuration for mdev-capable devices: duplicate types for PCI ID 0000:21:00.4');
    expect(nova['malformed']!.driver_error).toBe('InvalidLibvirtMdevConfig: Invalid configuration for mdev-capable devices: incorrect PCI address: 0000:21:00');
    expect(nova['nonpci']!.driver_error).toBe('InvalidLibvirtMdevConfig: Invalid configuration for mdev-capable devices: incorrect PCI address: mtty');
    expect(nova['badclass']!.driver_error).toMatch(/ConfigFileValueError: Value for option mdev_class .* is not valid/);
    expect(nova['badalias']!.alias_error).toMatch(/PciInvalidAlias/);
    expect(nova['badspec']!.whitelist_error).toMatch(/PciConfigInvalidSpec|Invalid/);
    expect(nova['unparsable']!.parse_error).toMatch(/Unexpected continuation line/);
    // vgpuctl's, with the reason
    const reasons: Record<string, RegExp> = {
      duplicate: /duplicate types for PCI ID 0000:21:00.4/,
      malformed: /"0000:21:00" is not a PCI address.*incorrect PCI address: 0000:21:00/,
      nonpci: /"mtty" is not a PCI address/,
      badclass: /mdev_class: "custom_nvidia_700" is not a resource class nova accepts/,
      badalias: /device_type must be one of type-PCI, type-PF, type-VF/,
      badspec: /product_id "1eb8x" is not a hex id/,
      unparsable: /line 2: Unexpected continuation line/,
    };
    for (const [k, f] of Object.entries(paths)) {
      const r = await cli(['nova-config', '--check', f, '--release', 'zed']);
      expect(r.code, k).toBe(1);
      expect(r.stdout, k).toMatch(reasons[k]!);
      expect(r.stdout, k).toMatch(/would refuse it/);
    }
    // and a file nova accepts passes the check
    const good = (await cli(['--root', (await hostFrom('a100d-sriov-seed002')).root, 'nova-config', '--release', 'zed'])).stdout;
    writeFileSync(path.join(dir, 'good.conf'), good);
    const ok = await cli(['nova-config', '--check', path.join(dir, 'good.conf'), '--release', 'zed']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/nova zed accepts/);
  }, 120_000);

  it('generation refuses a parent in two groups, a non-PCI parent and a bad class name', async () => {
    // The seed-004 P40 carrying P40-6Q with a leftover definition of P40-12C on the same GPU.
    const spec = (await import('../../src/simulator/layout.js')).loadFixture('p40-seed004');
    const host = await hostFrom({
      ...spec,
      mdevs: [{ uuid: '334855e2-079b-11ee-9fc9-83e0dccb6713', parent: '0000:82:00.0', type: 'nvidia-50' }],
      files: { ...spec.files, 'etc/mdevctl.d/0000:82:00.0/98198e75-9728-42dc-96c3-87eefe76a96d': '{\n  "mdev_type": "nvidia-286",\n  "start": "auto",\n  "attrs": []\n}' },
    });
    const dup = await cli(['--root', host.root, 'nova-config', '--release', '2024.1']);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/0000:82:00.0 would be in \[mdev_nvidia-50\] and \[mdev_nvidia-286\]: nova-compute stops with "duplicate types for PCI ID 0000:82:00.0"/);
    expect(dup.stdout).toBe('');

    const mtty = await hostFrom('samples-mtty');
    const np = await cli(['--root', mtty.root, 'nova-config']);
    expect(np.code).toBe(1);
    expect(np.stderr).toMatch(/nova configures vGPUs of PCI devices only: mtty is not a PCI address \(nova-compute would stop with "incorrect PCI address: mtty"\)/);

    const a100 = await hostFrom('a100d-sriov-seed002');
    for (const bad of ['custom_lower', 'CUSTOM_', 'CUSTOM-X', `CUSTOM_${'X'.repeat(250)}`, 'nvidia-700=vgpu']) {
      const r = await cli(['--root', a100.root, 'nova-config', '--mdev-class', bad]);
      expect(r.code, bad).toBe(2);
      expect(r.stderr, bad).toMatch(/invalid --mdev-class: .*(not a resource class nova accepts|at most 255)/);
    }
    const unknownType = await cli(['--root', a100.root, 'nova-config', '--mdev-class', 'nvidia-999=CUSTOM_X']);
    expect(unknownType.code).toBe(2);
    expect(unknownType.stderr).toMatch(/nvidia-999 is not one of the types being configured \(nvidia-699 A100D-1-10C, nvidia-700 A100D-2-20C\)/);
    const badRelease = await cli(['--root', a100.root, 'nova-config', '--release', 'zebra']);
    expect(badRelease.code).toBe(2);
    expect(badRelease.stderr).toMatch(/unknown OpenStack release "zebra"; give one of queens, .*2026.1/);
  });

  it('accepts release names, code names and nova versions alike', async () => {
    const host = await hostFrom('a100d-sriov-seed002');
    const a = (await cli(['--root', host.root, 'nova-config', '--release', '2024.1', '-o', 'json'])).json();
    const b = (await cli(['--root', host.root, 'nova-config', '--release', 'Caracal', '-o', 'json'])).json();
    const c = (await cli(['--root', host.root, 'nova-config', '--release', '29.0.1', '-o', 'json'])).json();
    expect(a.release).toEqual({ name: '2024.1', codename: 'caracal', nova: 29 });
    expect(b.text).toBe(a.text);
    expect(c.text).toBe(a.text);
    const xena = (await cli(['--root', host.root, 'nova-config', '--release', 'xena', '-o', 'json'])).json();
    expect(xena.text).toContain('enabled_mdev_types = nvidia-699, nvidia-700');
    expect(xena.text).not.toContain('max_instances');
    const wallaby = (await cli(['--root', host.root, 'nova-config', '--release', 'wallaby'])).stdout;
    expect(wallaby).toContain('enabled_vgpu_types = nvidia-699, nvidia-700\n\n[vgpu_nvidia-699]\n');
    expect(wallaby).not.toContain('mdev_class');
  });
});
