/**
 * vgpuctl's lifecycle commands and the real mdevctl 1.2 on the same (simulated) host: each tool reads,
 * starts, changes and removes what the other made, and vgpuctl's two backends (sysfs, mdevctl) reach the
 * same end state. mdevctl runs in a chroot of the tree; `sim settle` (or settle()) then applies the
 * kernel's reaction to what it wrote into sysfs.
 */
import { execa } from 'execa';
import { readFileSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { HostRoot } from '../../src/host/host-root.js';
import { settle } from '../../src/simulator/kernel.js';
import { cli, type CliResult } from '../helpers/cli.js';
import { hostFrom, snapshotTree, tempDir } from '../helpers/hosts.js';
import { flattenDump, mdevctl, mdevctlJson } from '../helpers/mdevctl.js';
import { canRunMdevctlOracle } from '../helpers/tools.js';

const skip = !canRunMdevctlOracle();

const P40 = '0000:82:00.0';
const U1 = '6a3f2b10-5c4e-4d8a-9f21-0b7c3e5d9a41';
const U2 = '6a3f2b10-5c4e-4d8a-9f21-0b7c3e5d9a42';
const U3 = '6a3f2b10-5c4e-4d8a-9f21-0b7c3e5d9a43';
/** A binary that does not exist: with VGPUCTL_MDEVCTL pointing here, any mdevctl run by vgpuctl fails. */
const TRIPWIRE = '/nonexistent/mdevctl-tripwire';

afterEach(() => {
  vi.unstubAllEnvs();
});

/**
 * Two identical fresh trees of a fixture: the second is a `cp -a` of the first (laying out the SR-IOV
 * fixture takes seconds, copying it a fraction of one). The tests end by comparing the whole trees, so a
 * copy that differed would fail them, never let them pass.
 */
async function twoHostsFrom(fixture: string): Promise<{ sysfs: HostRoot; mdevctl: HostRoot }> {
  const first = await hostFrom(fixture);
  const copy = path.join(tempDir(), 'root');
  await execa('cp', ['-a', '--', first.root, copy]);
  return { sysfs: first, mdevctl: new HostRoot(copy) };
}

/** Asserts exit 0, showing stderr when it is not. */
function ok(r: CliResult): CliResult {
  expect(r.code, `exit ${r.code}, stderr: ${r.stderr}`).toBe(0);
  return r;
}

async function okMdevctl(root: string, ...args: string[]): Promise<void> {
  const r = await mdevctl(root, ...args);
  expect(r.code, `mdevctl ${args.join(' ')}: ${r.stderr}`).toBe(0);
}

/** An error an operator reads: exit 1, one `vgpuctl: error:` sentence, no stack trace, no internal error. */
function expectOneSentenceError(r: CliResult): string {
  expect(r.code).toBe(1);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^vgpuctl: error: \S/);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr).not.toMatch(/internal error|Error:|VgpuctlError/);
  return lines[0]!;
}

/** The raw bytes of the definition file (latin1: one character per byte, so equality is byte equality). */
const definitionBytes = (root: string, parent: string, uuid: string): string =>
  readFileSync(path.join(root, 'etc/mdevctl.d', parent, uuid)).toString('latin1');

/** Every definition file, /etc/mdevctl.d/<parent>/<file> (scripts.d aside), relative path → raw bytes. */
async function definitionFiles(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const base = path.join(root, 'etc/mdevctl.d');
  for (const parent of (await fs.readdir(base)).sort()) {
    if (parent === 'scripts.d') continue;
    const dir = path.join(base, parent);
    for (const f of (await fs.readdir(dir)).sort()) out[`${parent}/${f}`] = (await fs.readFile(path.join(dir, f))).toString('latin1');
  }
  return out;
}

/** `available_instances` of every type of every parent, as the files hold it. */
async function availableInstances(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const bus = path.join(root, 'sys/class/mdev_bus');
  for (const parent of (await fs.readdir(bus)).sort()) {
    const types = path.join(bus, parent, 'mdev_supported_types');
    for (const t of (await fs.readdir(types)).sort()) out[`${parent}/${t}`] = await fs.readFile(path.join(types, t, 'available_instances'), 'utf8');
  }
  return out;
}

interface HostView {
  devices: any[];
  definitions: Record<string, string>;
  available: Record<string, string>;
}

async function viewOf(root: string): Promise<HostView> {
  const list = ok(await cli(['--root', root, 'list', '--all', '-o', 'json']));
  return { devices: list.json().devices, definitions: await definitionFiles(root), available: await availableInstances(root) };
}

/** Runs one vgpuctl lifecycle command with --simulate, the given backend and JSON output. */
async function lifecycle(root: string, backend: 'sysfs' | 'mdevctl', ...args: string[]): Promise<any> {
  return ok(await cli(['--root', root, '--simulate', '-o', 'json', ...args, '--backend', backend])).json();
}

/** The argv of every mdevctl command an outcome ran (empty for the sysfs backend). */
const mdevctlCommands = (outcome: any): string[] =>
  outcome.actions.filter((a: any) => a.kind === 'command').map((a: any) => a.argv.join(' '));

describe.skipIf(skip)('definitions written by vgpuctl are mdevctl definitions', () => {
  it('vgpuctl define writes the bytes mdevctl define writes (auto and manual); mdevctl lists and starts them', async () => {
    const ours = await hostFrom('p40-seed004');
    const theirs = await hostFrom('p40-seed004');
    // U1 --auto by type; U2 manual (the default), given to vgpuctl as a profile and to mdevctl as its type id.
    ok(await cli(['--root', ours.root, 'define', '-u', U1, '-p', P40, '-t', 'nvidia-286', '--auto']));
    ok(await cli(['--root', ours.root, 'define', '-u', U2, '-p', '82:00.0', '--profile', 'P40-12C']));
    await okMdevctl(theirs.root, 'define', '-u', U1, '-p', P40, '-t', 'nvidia-286', '--auto');
    await okMdevctl(theirs.root, 'define', '-u', U2, '-p', P40, '-t', 'nvidia-286');

    for (const [uuid, start] of [[U1, 'auto'], [U2, 'manual']] as const) {
      const mdevctlBytes = definitionBytes(theirs.root, P40, uuid);
      // mdevctl 1.2's own format (serde_json pretty, no trailing newline), so the comparison is not vacuous.
      expect(mdevctlBytes).toBe(`{\n  "mdev_type": "nvidia-286",\n  "start": "${start}",\n  "attrs": []\n}`);
      expect(definitionBytes(ours.root, P40, uuid)).toBe(mdevctlBytes);
    }
    // Nothing else in either definition directory.
    expect(Object.keys(await definitionFiles(ours.root))).toEqual([`${P40}/${U1}`, `${P40}/${U2}`]);
    expect(await definitionFiles(ours.root)).toEqual(await definitionFiles(theirs.root));

    // mdevctl lists vgpuctl's definitions …
    expect(flattenDump(await mdevctlJson(ours.root, 'list', '--defined', '--dumpjson'))).toEqual({
      [P40]: {
        [U1]: { mdev_type: 'nvidia-286', start: 'auto', attrs: [] },
        [U2]: { mdev_type: 'nvidia-286', start: 'manual', attrs: [] },
      },
    });
    // … and starts them; the simulated kernel creates the devices, and vgpuctl lists them as active.
    for (const uuid of [U1, U2]) {
      await okMdevctl(ours.root, 'start', '-u', uuid);
      expect(await settle(ours)).toEqual({ created: [{ uuid, type: 'nvidia-286' }], removed: [], refused: [] });
    }
    const active = ok(await cli(['--root', ours.root, 'list', '-o', 'json'])).json().devices;
    expect(active).toEqual([
      expect.objectContaining({ uuid: U1, parent: P40, type: 'nvidia-286', profile: 'P40-12C', active: true, defined: true, autostart: true }),
      expect.objectContaining({ uuid: U2, parent: P40, type: 'nvidia-286', profile: 'P40-12C', active: true, defined: true, autostart: false }),
    ]);
    expect(Object.keys(flattenDump(await mdevctlJson(ours.root, 'list', '--dumpjson'))[P40] ?? {})).toEqual([U1, U2]);
  });
});

describe.skipIf(skip)('definitions written by mdevctl are handled by vgpuctl', () => {
  it('vgpuctl lists, starts, modifies and destroys a device mdevctl defined', async () => {
    const host = await hostFrom('p40-seed004');
    await okMdevctl(host.root, 'define', '-u', U1, '-p', P40, '-t', 'nvidia-286');

    const defined = ok(await cli(['--root', host.root, 'list', '--defined', '-o', 'json'])).json().devices;
    expect(defined).toEqual([
      expect.objectContaining({ uuid: U1, parent: P40, type: 'nvidia-286', profile: 'P40-12C', active: false, defined: true, autostart: false, attrs: [] }),
    ]);

    const started = ok(await cli(['--root', host.root, '--simulate', 'start', '-u', U1, '-o', 'json'])).json();
    expect(started.started).toEqual([{ uuid: U1, parent: P40, type: 'nvidia-286', profile: 'P40-12C' }]);
    expect(ok(await cli(['--root', host.root, 'list', '-o', 'json'])).json().devices).toEqual([
      expect.objectContaining({ uuid: U1, active: true, defined: true }),
    ]);
    expect(flattenDump(await mdevctlJson(host.root, 'list', '--dumpjson'))).toEqual({
      [P40]: { [U1]: { mdev_type: 'nvidia-286', start: 'manual', attrs: [] } },
    });

    ok(await cli(['--root', host.root, 'modify', '-u', U1, '--auto']));
    expect(flattenDump(await mdevctlJson(host.root, 'list', '--defined', '--dumpjson'))).toEqual({
      [P40]: { [U1]: { mdev_type: 'nvidia-286', start: 'auto', attrs: [] } },
    });
    // The modified file is what mdevctl itself writes for start auto.
    const reference = await hostFrom('p40-seed004');
    await okMdevctl(reference.root, 'define', '-u', U1, '-p', P40, '-t', 'nvidia-286', '--auto');
    expect(definitionBytes(host.root, P40, U1)).toBe(definitionBytes(reference.root, P40, U1));

    const destroyed = ok(await cli(['--root', host.root, '--simulate', 'destroy', '-u', U1, '-o', 'json'])).json();
    expect(destroyed.destroyed).toMatchObject({ uuid: U1, stopped: true, undefined: [P40] });
    expect(await mdevctlJson(host.root, 'list', '--dumpjson')).toEqual([]);
    expect(await mdevctlJson(host.root, 'list', '--defined', '--dumpjson')).toEqual([]);
    expect(ok(await cli(['--root', host.root, 'list', '--all', '-o', 'json'])).json().devices).toEqual([]);
    expect((await availableInstances(host.root))[`${P40}/nvidia-286`]).toBe('2\n');
  });
});

describe.skipIf(skip)('devices created by either tool are seen by the other', () => {
  it('vgpuctl create → mdevctl list; mdevctl start → vgpuctl list; mdevctl stop removes a vgpuctl device', async () => {
    const host = await hostFrom('p40-seed004');

    // vgpuctl creates (sysfs backend): mdevctl sees the device.
    const created = ok(await cli(['--root', host.root, '--simulate', 'create', '-t', 'nvidia-286', '-p', P40, '-u', U1, '-o', 'json'])).json();
    expect(created.created).toEqual([{ uuid: U1, parent: P40, type: 'nvidia-286', profile: 'P40-12C' }]);
    expect(flattenDump(await mdevctlJson(host.root, 'list', '--dumpjson'))).toEqual({
      [P40]: { [U1]: { mdev_type: 'nvidia-286', start: 'manual', attrs: [] } },
    });
    // mdevctl reads the capacity the simulated kernel left: one P40-12C.
    expect(flattenDump(await mdevctlJson(host.root, 'types', '--dumpjson'))[P40]!['nvidia-286'].available_instances).toBe(1);

    // mdevctl creates: vgpuctl sees it.
    await okMdevctl(host.root, 'start', '-u', U2, '-p', P40, '-t', 'nvidia-286');
    expect(ok(await cli(['--root', host.root, 'sim', 'settle', '-o', 'json'])).json()).toEqual({
      created: [{ uuid: U2, type: 'nvidia-286' }],
      removed: [],
      refused: [],
    });
    expect(ok(await cli(['--root', host.root, 'list', '-o', 'json'])).json().devices).toEqual([
      expect.objectContaining({ uuid: U1, parent: P40, type: 'nvidia-286', active: true, defined: false }),
      expect.objectContaining({ uuid: U2, parent: P40, type: 'nvidia-286', profile: 'P40-12C', active: true, defined: false }),
    ]);

    // mdevctl stops the device vgpuctl created.
    await okMdevctl(host.root, 'stop', '-u', U1);
    expect(ok(await cli(['--root', host.root, 'sim', 'settle', '-o', 'json'])).json()).toMatchObject({ created: [], removed: [U1], refused: [] });
    expect(ok(await cli(['--root', host.root, 'list', '-o', 'json'])).json().devices.map((d: any) => d.uuid)).toEqual([U2]);
    expect(await fs.lstat(path.join(host.root, 'sys/bus/mdev/devices', U1)).catch(() => null)).toBeNull();

    // and vgpuctl stops the one mdevctl created.
    ok(await cli(['--root', host.root, '--simulate', 'stop', '-u', U2]));
    expect(await mdevctlJson(host.root, 'list', '--dumpjson')).toEqual([]);
    expect((await availableInstances(host.root))[`${P40}/nvidia-286`]).toBe('2\n');
  });
});

describe.skipIf(skip)('the sysfs and mdevctl backends reach the same end state', () => {
  it('P40: create --count 2 --define --auto, stop, undefine, modify --manual, destroy', async () => {
    const trees = await twoHostsFrom('p40-seed004');
    const initial = await viewOf(trees.sysfs.root);
    const views: Record<'sysfs' | 'mdevctl', HostView[]> = { sysfs: [], mdevctl: [] };
    const commands: Record<'sysfs' | 'mdevctl', string[]> = { sysfs: [], mdevctl: [] };

    for (const backend of ['sysfs', 'mdevctl'] as const) {
      const root = trees[backend].root;
      const steps = [
        ['create', '--profile', 'P40-12C', '--count', '2', '--define', '--auto', '-u', U1, U2],
        ['stop', '-u', U1],
        ['undefine', '-u', U1],
        ['modify', '-u', U2, '--manual'],
        ['destroy', '-u', U2],
      ];
      for (const step of steps) {
        commands[backend].push(...mdevctlCommands(await lifecycle(root, backend, ...step)));
        views[backend].push(await viewOf(root));
      }
    }

    // The mdevctl backend really went through mdevctl, and the sysfs backend never did.
    expect(commands.sysfs).toEqual([]);
    expect(commands.mdevctl).toEqual([
      `mdevctl start -u ${U1} -p ${P40} -t nvidia-286`,
      `mdevctl start -u ${U2} -p ${P40} -t nvidia-286`,
      `mdevctl define -u ${U1} -p ${P40} -t nvidia-286 -a`,
      `mdevctl define -u ${U2} -p ${P40} -t nvidia-286 -a`,
      `mdevctl stop -u ${U1}`,
      `mdevctl undefine -u ${U1} -p ${P40}`,
      `mdevctl modify -u ${U2} -p ${P40} --manual`,
      `mdevctl stop -u ${U2}`,
      `mdevctl undefine -u ${U2} -p ${P40}`,
    ]);

    // Same devices, definition bytes and capacities after every step …
    for (const [i, view] of views.sysfs.entries()) expect(views.mdevctl[i], `after step ${i + 1}`).toEqual(view);
    // … and those are the right ones.
    const s = views.sysfs;
    const row = (uuid: string, autostart: boolean | null) =>
      expect.objectContaining({ uuid, parent: P40, type: 'nvidia-286', active: true, defined: autostart !== null, ...(autostart !== null ? { autostart } : {}) });
    const auto = `{\n  "mdev_type": "nvidia-286",\n  "start": "auto",\n  "attrs": []\n}`;
    expect(s[0]!.devices).toEqual([row(U1, true), row(U2, true)]);
    expect(s[0]!.definitions).toEqual({ [`${P40}/${U1}`]: auto, [`${P40}/${U2}`]: auto });
    expect(s[0]!.available[`${P40}/nvidia-286`]).toBe('0\n');
    expect(s[1]!.devices).toEqual([expect.objectContaining({ uuid: U1, active: false, defined: true }), row(U2, true)]);
    expect(s[1]!.available[`${P40}/nvidia-286`]).toBe('1\n');
    expect(s[2]!.devices).toEqual([row(U2, true)]);
    expect(Object.keys(s[2]!.definitions)).toEqual([`${P40}/${U2}`]);
    expect(s[3]!.definitions).toEqual({ [`${P40}/${U2}`]: auto.replace('"auto"', '"manual"') });
    expect(s[4]).toEqual({ devices: [], definitions: {}, available: initial.available });
    expect(initial.devices).toEqual([]);

    // Finally the whole trees, every file and link, are the same.
    expect(await snapshotTree(trees.mdevctl.root)).toEqual(await snapshotTree(trees.sysfs.root));
  });

  it('A100D SR-IOV: destroy one of StackHPC\'s devices, then create on a free VF with -p', async () => {
    const trees = await twoHostsFrom('a100d-sriov-seed002');
    const gone = '5c630867-a673-5d75-aa31-a499e6c7cb19'; // on VF 0000:21:00.4, with its nvidia-mdev@ unit
    const vf = '0000:21:01.0';
    const views: Record<'sysfs' | 'mdevctl', HostView[]> = { sysfs: [], mdevctl: [] };
    const commands: Record<'sysfs' | 'mdevctl', string[]> = { sysfs: [], mdevctl: [] };

    for (const backend of ['sysfs', 'mdevctl'] as const) {
      const root = trees[backend].root;
      for (const step of [['destroy', '-u', gone], ['create', '-p', vf, '--profile', 'A100D-2-20C', '-u', U3, '--define']]) {
        commands[backend].push(...mdevctlCommands(await lifecycle(root, backend, ...step)));
        views[backend].push(await viewOf(root));
      }
    }
    expect(commands.sysfs).toEqual([]);
    expect(commands.mdevctl).toEqual([
      `mdevctl stop -u ${gone}`,
      `mdevctl undefine -u ${gone} -p 0000:21:00.4`,
      `mdevctl start -u ${U3} -p ${vf} -t nvidia-700`,
      `mdevctl define -u ${U3} -p ${vf} -t nvidia-700`,
    ]);
    for (const [i, view] of views.sysfs.entries()) expect(views.mdevctl[i], `after step ${i + 1}`).toEqual(view);

    const [afterDestroy, afterCreate] = views.sysfs;
    expect(afterDestroy!.devices.map((d: any) => d.uuid)).not.toContain(gone);
    expect(afterDestroy!.devices).toHaveLength(7);
    expect(afterDestroy!.definitions[`0000:21:00.4/${gone}`]).toBeUndefined();
    // Two MIG slices came free on the first GPU: every free VF of it offers one A100D-2-20C again.
    expect(afterDestroy!.available[`${vf}/nvidia-700`]).toBe('1\n');
    expect(afterDestroy!.available['0000:81:01.0/nvidia-700']).toBe('0\n');
    expect(afterCreate!.devices).toContainEqual(
      expect.objectContaining({ uuid: U3, parent: vf, type: 'nvidia-700', profile: 'A100D-2-20C', active: true, defined: true, autostart: false }),
    );
    expect(afterCreate!.definitions[`${vf}/${U3}`]).toBe(`{\n  "mdev_type": "nvidia-700",\n  "start": "manual",\n  "attrs": []\n}`);
    // StackHPC's other definitions (with their trailing newline) are untouched.
    expect(afterCreate!.definitions['0000:21:00.5/eaa6e018-308e-58e2-b351-aadbcf01f5a8']).toMatch(/\n$/);
    expect(Object.values(afterCreate!.available).filter((a) => a !== '0\n')).toEqual([]);

    // mdevctl agrees with what each backend left …
    for (const t of [trees.sysfs, trees.mdevctl]) {
      const listed = flattenDump(await mdevctlJson(t.root, 'list', '--dumpjson'));
      expect(listed[vf]).toEqual({ [U3]: { mdev_type: 'nvidia-700', start: 'manual', attrs: [] } });
      expect(listed['0000:21:00.4']).toBeUndefined();
    }
    // … and the trees are the same, unit files included.
    expect(await snapshotTree(trees.mdevctl.root)).toEqual(await snapshotTree(trees.sysfs.root));
  });
});

describe.skipIf(skip)('the mdevctl backend fails with clear sentences', () => {
  it('define of an already-defined UUID is refused by vgpuctl before mdevctl runs, and --force replaces it', async () => {
    const host = await hostFrom('p40-seed004');
    await okMdevctl(host.root, 'define', '-u', U1, '-p', P40, '-t', 'nvidia-286');
    const before = await snapshotTree(host.root);

    // Any mdevctl that vgpuctl ran now would fail loudly.
    vi.stubEnv('VGPUCTL_MDEVCTL', TRIPWIRE);
    const refused = await cli(['--root', host.root, '--simulate', 'define', '--backend', 'mdevctl', '-u', U1, '-p', P40, '-t', 'nvidia-286', '--auto']);
    const line = expectOneSentenceError(refused);
    expect(line).toContain(`${U1} is already defined`);
    expect(line).toContain('--force');
    expect(line).not.toContain('mdevctl define');
    expect(await snapshotTree(host.root)).toEqual(before);
    // The tripwire is armed: a define vgpuctl does accept reaches mdevctl and fails on it.
    const tripped = await cli(['--root', host.root, '--simulate', 'define', '--backend', 'mdevctl', '-u', U2, '-p', P40, '-t', 'nvidia-286']);
    expect(expectOneSentenceError(tripped)).toContain(`mdevctl define -u ${U2} -p ${P40} -t nvidia-286 failed`);
    expect(await snapshotTree(host.root)).toEqual(before);
    vi.unstubAllEnvs();

    // With --force, the mdevctl backend replaces the definition (undefine, define) and mdevctl reads the new one.
    ok(await cli(['--root', host.root, '--simulate', 'define', '--backend', 'mdevctl', '-u', U1, '-p', P40, '-t', 'nvidia-286', '--auto', '--force']));
    expect(flattenDump(await mdevctlJson(host.root, 'list', '--defined', '--dumpjson'))).toEqual({
      [P40]: { [U1]: { mdev_type: 'nvidia-286', start: 'auto', attrs: [] } },
    });
  });

  it('create on a full GPU is refused with a sentence, before mdevctl runs', async () => {
    const host = await hostFrom('p40-seed004');
    // Fill the P40's two P40-12C with mdevctl (the kernel acts on each write before the next one).
    for (const uuid of [U1, U2]) {
      await okMdevctl(host.root, 'start', '-u', uuid, '-p', P40, '-t', 'nvidia-286');
      expect((await settle(host)).created).toEqual([{ uuid, type: 'nvidia-286' }]);
    }
    const before = await snapshotTree(host.root);

    vi.stubEnv('VGPUCTL_MDEVCTL', TRIPWIRE);
    const r = await cli(['--root', host.root, '--simulate', 'create', '--backend', 'mdevctl', '-t', 'nvidia-286', '-p', P40, '-u', U3, '--define']);
    const line = expectOneSentenceError(r);
    expect(line).toBe(`vgpuctl: error: no instances of P40-12C (nvidia-286) left on ${P40}: 2 of 2 in use; free one, or pick another GPU (vgpuctl types --available)`);
    expect(await snapshotTree(host.root)).toEqual(before);
  });

  it('create whose mdevctl start the simulated kernel refuses (another device took the GPU first) exits 1 with a sentence', async () => {
    const host = await hostFrom('p40-seed004');
    // Another program's mdevctl start has written its UUID into nvidia-286's create, and the kernel has not
    // acted on it yet: vgpuctl and its mdevctl still see an empty GPU. When the kernel acts, that write
    // comes first ("nvidia-286" sorts before "nvidia-50") and takes the GPU for P40-12C, so vgpuctl's
    // P40-6Q is refused with EUSERS (one time-sliced type per GPU).
    await okMdevctl(host.root, 'start', '-u', U1, '-p', P40, '-t', 'nvidia-286');
    expect((await cli(['--root', host.root, 'types', '-p', P40, '--profile', 'P40-6Q', '-o', 'json'])).json().types[0].available_instances).toBe(4);

    const r = await cli(['--root', host.root, '--simulate', 'create', '--backend', 'mdevctl', '-t', 'nvidia-50', '-p', P40, '-u', U3, '--define']);
    const line = expectOneSentenceError(r);
    expect(line).toMatch(new RegExp(`^vgpuctl: error: no instances of P40-6Q \\(nvidia-50\\) left on ${P40}\\b.*; free one, or pick another GPU`));
    expect(line).toContain('nothing was changed');
    // The kernel's answer: the other device exists, vgpuctl's does not and was not defined.
    const devices = ok(await cli(['--root', host.root, 'list', '--all', '-o', 'json'])).json().devices;
    expect(devices).toEqual([expect.objectContaining({ uuid: U1, type: 'nvidia-286', active: true, defined: false })]);
    expect(await mdevctlJson(host.root, 'list', '--defined', '--dumpjson')).toEqual([]);
  });

  it('a refusal of another program\'s pending write does not fail vgpuctl\'s own mdevctl start', async () => {
    const host = await hostFrom('p40-seed004');
    // The mirror image: the other program's P40-6Q write is applied after vgpuctl's P40-12C and is the one refused.
    await okMdevctl(host.root, 'start', '-u', U1, '-p', P40, '-t', 'nvidia-50');
    const created = ok(await cli(['--root', host.root, '--simulate', 'create', '--backend', 'mdevctl', '-t', 'nvidia-286', '-p', P40, '-u', U3, '-o', 'json'])).json();
    expect(created.created).toEqual([{ uuid: U3, parent: P40, type: 'nvidia-286', profile: 'P40-12C' }]);
    expect(ok(await cli(['--root', host.root, 'list', '-o', 'json'])).json().devices).toEqual([
      expect.objectContaining({ uuid: U3, type: 'nvidia-286', active: true }),
    ]);
  });
});
