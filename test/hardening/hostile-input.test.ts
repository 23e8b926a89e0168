/**
 * Hostile input and hostile files.
 *   - UUIDs, parents, type ids, profiles and card names with `../`, `/`, NUL, newlines or shell characters
 *     are refused before any path is built from them: exit 2, one sentence, and — watched at the fs calls —
 *     no path that holds the input is ever touched and nothing at all is written.
 *   - A symbolic link planted at /etc/mdevctl.d/<parent>/<uuid>, pointing at a file outside the tree, is
 *     not followed by define (with or without --force), undefine, start or modify: the command refuses and
 *     says so, the target file is unchanged.
 *   - A symbolic link planted as /etc/mdevctl.d/<parent> (to a directory outside the tree) is reported by
 *     list, which lists the rest, and never followed: every write of a definition under it is refused and
 *     names it. /etc/mdevctl.d itself may be a link when it leads inside the root (definitions.ts).
 *   - A symbolic link planted at the lock (<root>/run/vgpuctl/lock) or as the lock directory is not
 *     followed: refused, said, the target unchanged.
 *   - Definitions are written 0644 whatever root's umask; a definition file that is not valid JSON is
 *     reported by list, does not stop the listing of the others, and is not overwritten.
 */
import { promises as fs, statSync } from 'node:fs';
import * as fsAll from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostRoot } from '../../src/host/host-root.js';
import { snapshotTree, tempDir } from '../helpers/hosts.js';
import { canRunMdevctlOracle } from '../helpers/tools.js';
import { LOCK, P40, U, buildCli, copyHost, fixtureHost, lexists, readState, sim, spawnCli, writePlanFile } from '../helpers/hardening.js';

const MARK = 'HOSTILE';
const counts = { inputs: 0, files: 0 };

afterAll(() => {
  console.log(`hostile-input: ${counts.inputs} hostile arguments refused before any path was built, ${counts.files} hostile files left untouched, 0 followed`);
});

// ---------------------------------------------------------------------------------------------------
// Watching the fs calls: every path argument of every fs function (promise and sync) during a run.

const PROMISE_FNS = ['open', 'readFile', 'readdir', 'stat', 'lstat', 'access', 'readlink', 'realpath', 'mkdir', 'rm', 'rmdir', 'rename', 'symlink', 'link', 'unlink', 'writeFile', 'opendir', 'copyFile', 'chmod'];
const SYNC_FNS = ['openSync', 'readFileSync', 'readdirSync', 'statSync', 'lstatSync', 'accessSync', 'readlinkSync', 'realpathSync', 'existsSync', 'mkdirSync', 'writeFileSync', 'rmSync', 'renameSync', 'symlinkSync', 'unlinkSync', 'opendirSync'];
const WRITES = /^(mkdir|rm|rmdir|rename|symlink|link|unlink|writeFile|copyFile|chmod)(Sync)?$/;

interface Call {
  fn: string;
  paths: string[];
  write: boolean;
}

async function watchFs<T>(fn: () => Promise<T>): Promise<{ result: T; calls: Call[] }> {
  const calls: Call[] = [];
  const record = (name: string, args: unknown[]) => {
    const two = /^(rename|symlink|link|copyFile)(Sync)?$/.test(name);
    const paths = args.slice(0, two ? 2 : 1).filter((a) => typeof a === 'string' || Buffer.isBuffer(a) || a instanceof URL).map(String);
    const flags = name.startsWith('open') ? String(args[1] ?? 'r') : '';
    const write = WRITES.test(name) || (name.startsWith('open') && (/[wa+]/.test(flags) || (typeof args[1] === 'number' && (args[1] & 3) !== 0)));
    calls.push({ fn: name, paths, write });
  };
  const p = fs as unknown as Record<string, (...a: unknown[]) => unknown>;
  const s = fsAll as unknown as Record<string, any>;
  const origP = Object.fromEntries(PROMISE_FNS.map((n) => [n, p[n]]));
  const origS = Object.fromEntries(SYNC_FNS.map((n) => [n, s[n]]));
  for (const n of PROMISE_FNS) {
    p[n] = function (this: unknown, ...a: unknown[]) {
      record(n, a);
      return origP[n]!.apply(this, a);
    };
  }
  for (const n of SYNC_FNS) {
    const wrapped: any = function (this: unknown, ...a: unknown[]) {
      record(n, a);
      return origS[n].apply(this, a);
    };
    if (origS[n].native) {
      wrapped.native = function (this: unknown, ...a: unknown[]) {
        record(`${n}.native`, a);
        return origS[n].native.apply(this, a);
      };
    }
    (fsAll as any).default[n] = wrapped;
  }
  syncBuiltinESMExports();
  try {
    return { result: await fn(), calls };
  } finally {
    Object.assign(p, origP);
    for (const n of SYNC_FNS) (fsAll as any).default[n] = origS[n];
    syncBuiltinESMExports();
  }
}

// ---------------------------------------------------------------------------------------------------

const HOSTILE = [
  `../${MARK}`,
  `../../${MARK}/../../etc/passwd`,
  `/${MARK}`,
  `${MARK}/..`,
  `${MARK}/x`,
  `${MARK}\0`,
  `x\0${MARK}`,
  `${MARK}\nx`,
  `x\n${MARK}`,
  `${MARK}\rx`,
  `${MARK};rm -rf /`,
  `$(${MARK})`,
  `\`${MARK}\``,
  `${MARK}|cat`,
  `${MARK}&`,
  `${MARK} x`,
  `${MARK}'`,
  `${MARK}"`,
  `${MARK}*`,
  `${MARK}>x`,
  `${MARK}..x`,
  `..${MARK}`,
  `${MARK}\u202e`,
  `%2e%2e%2f${MARK}`,
];
// Hostile inputs in a UUID's place also come glued to a real UUID.
const HOSTILE_UUIDS = [...HOSTILE, `${U[0]}/../${MARK}`, `${U[0]}\0${MARK}`, `${U[0]}\n${MARK}`, `${U[0]};${MARK}`, `../${U[0]}${MARK}`, `${U[0]}${MARK}`];

type Slot = { kind: 'uuid' | 'parent' | 'type' | 'profile' | 'card'; args: (x: string) => string[]; message: RegExp };

const SLOTS: Slot[] = [
  ...(['create --profile P40-6Q -u X', 'define -u X -p 0000:82:00.0 -t nvidia-50', 'start -u X', 'stop -u X', 'modify -u X --auto', 'undefine -u X', 'destroy -u X', 'list -u X'] as const).map(
    (t): Slot => ({ kind: 'uuid', args: (x) => t.split(' ').map((a) => (a === 'X' ? x : a)), message: /is not a UUID; expected the form/ }),
  ),
  ...(['create --profile P40-6Q -p X', `define -u ${U[0]} -p X -t nvidia-50`, `start -u ${U[0]} -p X`, `modify -u ${U[0]} -p X --auto`, `undefine -u ${U[0]} -p X`, 'list -p X', 'types -p X'] as const).map(
    (t): Slot => ({ kind: 'parent', args: (x) => t.split(' ').map((a) => (a === 'X' ? x : a)), message: /is not a parent device name|is not a complete PCI address/ }),
  ),
  ...(['create -t X', 'create -t X -p 0000:82:00.0', `define -u ${U[0]} -p 0000:82:00.0 -t X`] as const).map(
    (t): Slot => ({ kind: 'type', args: (x) => t.split(' ').map((a) => (a === 'X' ? x : a)), message: /is not an mdev type id; type ids look like nvidia-286/ }),
  ),
  ...(['create --profile X', `define -u ${U[0]} -p 0000:82:00.0 --profile X`] as const).map(
    (t): Slot => ({ kind: 'profile', args: (x) => t.split(' ').map((a) => (a === 'X' ? x : a)), message: /is not a profile name; profiles look like P40-12C/ }),
  ),
];

describe('hostile identifiers are refused before any path is built', () => {
  let p40: HostRoot;
  let titan: HostRoot;
  beforeAll(async () => {
    [p40, titan] = await Promise.all([fixtureHost('p40-seed004'), fixtureHost('titanxp-seed001')]);
  });

  it('the fs watch sees what a valid command touches (so that it can see what a hostile one would)', async () => {
    const { result, calls } = await watchFs(() => sim(p40, ['list', '-p', P40, '-u', U[0]]));
    expect(result.code, result.stderr).toBe(0);
    expect(calls.filter((c) => c.paths.some((p) => p.includes(P40))).length).toBeGreaterThan(0);
    expect(calls.some((c) => c.fn.endsWith('Sync') || c.fn.endsWith('.native'))).toBe(true);
  });

  it(`${SLOTS.length} argument slots x ${HOSTILE.length}+ hostile values: exit 2, one sentence, no path with the input, no write`, async () => {
    const before = await snapshotTree(p40.root);
    const problems: string[] = [];
    let n = 0;
    for (const slot of SLOTS) {
      for (const x of slot.kind === 'uuid' ? HOSTILE_UUIDS : HOSTILE) {
        const args = slot.args(x);
        const { result: r, calls } = await watchFs(() => sim(p40, args));
        n++;
        const p: string[] = [];
        if (r.code !== 2) p.push(`exit ${r.code}`);
        if (!/^vgpuctl: error: .*\n$/.test(r.stderr) || r.stderr.split('\n').length !== 2 || !slot.message.test(r.stderr)) p.push(`stderr ${JSON.stringify(r.stderr)}`);
        const touched = calls.filter((c) => c.paths.some((q) => q.includes(MARK)));
        if (touched.length > 0) p.push(`touched ${touched.map((c) => `${c.fn}(${c.paths.join(', ')})`).join('; ')}`);
        const writes = calls.filter((c) => c.write);
        if (writes.length > 0) p.push(`wrote ${writes.map((c) => `${c.fn}(${c.paths.join(', ')})`).join('; ')}`);
        if (p.length > 0) problems.push(`${JSON.stringify(args)}: ${p.join('; ')}`);
      }
    }
    // Card names of pci detach/attach/status: matched against the cards found, never made into a path.
    // (detach and attach check the name under the host lock: the lock file is their only write.)
    for (const verb of ['detach', 'attach', 'status']) {
      for (const x of HOSTILE) {
        const { result: r, calls } = await watchFs(() => sim(titan, ['pci', verb, x]));
        n++;
        const bad = calls.filter((c) => c.paths.some((q) => q.includes(MARK)) || (c.write && !c.paths.every((q) => q.startsWith(titan.path('/run/vgpuctl')))));
        if (r.code !== 2 || !/is neither a card name/.test(r.stderr) || bad.length > 0) {
          problems.push(`pci ${verb} ${JSON.stringify(x)}: exit ${r.code} ${JSON.stringify(r.stderr)} ${bad.map((c) => `${c.fn}(${c.paths.join(', ')})`).join('; ')}`);
        }
      }
    }
    counts.inputs += n;
    expect(await snapshotTree(p40.root)).toEqual(before);
    console.log(`hostile-input: ${n} hostile arguments in ${SLOTS.length + 3} argument slots, ${problems.length} not refused cleanly`);
    expect(problems).toEqual([]);
  });

  it('white space around any identifier (-u, -p, -t, --profile, in every changing and reading command) is refused the same way, exit 2, nothing written', async () => {
    const host = copyHost(p40);
    const before = await snapshotTree(host.root);
    const BLANKS = [' ', '\n', '\t', '\r\n', '\u00a0'];
    const wrap = (v: string, b: string, i: number) => (i % 3 === 0 ? `${b}${v}` : i % 3 === 1 ? `${v}${b}` : `${b}${v}${b}`);
    const cases: Array<(b: string, i: number) => string[]> = [
      (b, i) => ['create', '-t', 'nvidia-50', '-u', wrap(U[0], b, i), '-p', P40],
      (b, i) => ['create', '-t', 'nvidia-50', '-u', U[0], '-p', wrap(P40, b, i)],
      (b, i) => ['create', '-t', wrap('nvidia-50', b, i), '-u', U[0], '-p', P40],
      (b, i) => ['create', '--profile', wrap('P40-6Q', b, i), '-u', U[0], '-p', P40],
      (b, i) => ['define', '-u', wrap(U[0], b, i), '-p', P40, '-t', 'nvidia-50'],
      (b, i) => ['define', '-u', U[0], '-p', wrap(P40, b, i), '-t', 'nvidia-50'],
      (b, i) => ['define', '-u', U[0], '-p', P40, '-t', wrap('nvidia-50', b, i)],
      (b, i) => ['start', '-u', wrap(U[0], b, i)],
      (b, i) => ['stop', '-u', wrap(U[0], b, i)],
      (b, i) => ['modify', '-u', U[0], '-p', wrap(P40, b, i), '--auto'],
      (b, i) => ['undefine', '-u', wrap(U[0], b, i)],
      (b, i) => ['destroy', '-u', wrap(U[0], b, i)],
      (b, i) => ['list', '-p', wrap(P40, b, i)],
    ];
    const problems: string[] = [];
    let n = 0;
    for (const [ci, c] of cases.entries()) {
      for (const [bi, b] of BLANKS.entries()) {
        const args = c(b, ci + bi);
        const r = await sim(host, args);
        n++;
        const bad = args.find((a) => a.trim() !== a)!;
        const hint = `did you mean ${JSON.stringify(bad.trim())}?`;
        if (r.code !== 2 || !r.stderr.includes(`${JSON.stringify(bad)} has white space around it`) || !r.stderr.includes(hint)) {
          problems.push(`${JSON.stringify(args)}: exit ${r.code} ${JSON.stringify(r.stderr)}`);
        }
      }
    }
    counts.inputs += n;
    expect(await snapshotTree(host.root)).toEqual(before);
    // The same identifiers without the blanks are taken.
    expect((await sim(host, ['create', '-t', 'nvidia-50', '-u', U[0].toUpperCase(), '-p', P40])).code).toBe(0);
    expect((await readState(host)).active).toEqual([`${U[0]} ${P40} nvidia-50`]);
    console.log(`hostile-input: ${n} identifiers with white space around them in ${cases.length} argument slots, ${problems.length} not refused the same way`);
    expect(problems).toEqual([]);
  });
});

describe('a symbolic link planted where a definition goes', () => {
  let base: HostRoot;
  beforeAll(async () => {
    base = await fixtureHost('p40-seed004');
  });

  /** A tree with a link at /etc/mdevctl.d/<P40>/<U0> pointing at a file in another directory. */
  async function planted(content: string): Promise<{ host: HostRoot; target: string; link: string }> {
    const host = copyHost(base);
    const target = path.join(tempDir('vgpuctl-outside-'), 'precious');
    await fs.writeFile(target, content, { mode: 0o600 });
    const link = host.path(`/etc/mdevctl.d/${P40}/${U[0]}`);
    await fs.mkdir(path.dirname(link), { recursive: true });
    await fs.symlink(target, link);
    return { host, target, link };
  }

  const CONTENTS = {
    'a file of the operator': 'root:$6$secret:19000:0:99999:7:::\n',
    'a valid definition': '{\n  "mdev_type": "nvidia-50",\n  "start": "auto",\n  "attrs": []\n}',
  };
  const COMMANDS: Array<[string, string[]]> = [
    ['define', ['define', '-u', U[0], '-p', P40, '-t', 'nvidia-50', '--auto']],
    ['define --force', ['define', '-u', U[0], '-p', P40, '-t', 'nvidia-286', '--manual', '--force']],
    ['undefine', ['undefine', '-u', U[0]]],
    ['undefine -p', ['undefine', '-u', U[0], '-p', P40]],
    ['start', ['start', '-u', U[0]]],
    ['modify', ['modify', '-u', U[0], '--manual']],
  ];

  for (const [what, content] of Object.entries(CONTENTS)) {
    for (const [name, args] of COMMANDS) {
      it(`${name}: refused, says the link is one, the target (${what}) is unchanged`, async () => {
        const { host, target, link } = await planted(content);
        const before = await snapshotTree(host.root);
        const r = await sim(host, args);
        counts.files++;
        expect(r.code, r.stderr).toBe(1);
        expect(r.stderr).toMatch(new RegExp(`^vgpuctl: error: /etc/mdevctl\\.d/${P40}/${U[0]} is a symbolic link; definitions must be plain files; vgpuctl does not follow, replace or remove it`));
        expect(await fs.readFile(target, 'utf8')).toBe(content);
        expect(statSync(target).mode & 0o777).toBe(0o600);
        expect(await fs.readlink(link)).toBe(target);
        expect(await snapshotTree(host.root)).toEqual(before);
      });
    }
  }

  it('list reports the link as a problem and does not read through it; the other definitions are listed', async () => {
    const { host } = await planted(CONTENTS['a valid definition']);
    expect((await sim(host, ['define', '-u', U[1], '-p', P40, '-t', 'nvidia-50'])).code).toBe(0);
    const r = await sim(host, ['list', '--defined', '-o', 'json']);
    expect(r.code).toBe(0);
    expect(r.json().devices.map((d: { uuid: string }) => d.uuid)).toEqual([U[1]]);
    expect(JSON.stringify(r.json().warnings)).toMatch(/is a symbolic link; definitions must be plain files/);
  });

  it('a definition written while a link sits at the temporary name is not written through the link either', async () => {
    // The temporary file is opened O_EXCL: a link planted at its name makes the write fail, never follow it.
    const host = copyHost(base);
    const target = path.join(tempDir('vgpuctl-outside-'), 'precious');
    await fs.writeFile(target, 'keep me\n');
    const dir = host.path(`/etc/mdevctl.d/${P40}`);
    await fs.mkdir(dir, { recursive: true });
    await fs.symlink(target, path.join(dir, `.${U[2]}.vgpuctl-${process.pid}.tmp`));
    const r = await sim(host, ['define', '-u', U[2], '-p', P40, '-t', 'nvidia-50']);
    counts.files++;
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toBe(`vgpuctl: error: cannot write /etc/mdevctl.d/${P40}/${U[2]}: EEXIST. nothing was changed\n`);
    expect(await fs.readFile(target, 'utf8')).toBe('keep me\n');
    expect(await lexists(path.join(dir, U[2]))).toBe(false);
  });
});

describe('a symbolic link planted as a definition directory (/etc/mdevctl.d/<parent>, /etc/mdevctl.d)', () => {
  let base: HostRoot;
  const OTHER = '0000:af:00.0'; // a parent that is not present: its definitions are listed all the same
  const VALID = '{\n  "mdev_type": "nvidia-50",\n  "start": "auto",\n  "attrs": []\n}';
  beforeAll(async () => {
    base = await fixtureHost('p40-seed004');
  });

  /** /etc/mdevctl.d/<P40> is a link to a directory outside the root holding a definition and a file of the operator. */
  async function planted(): Promise<{ host: HostRoot; outside: string; link: string }> {
    const host = copyHost(base);
    expect((await sim(host, ['define', '-u', U[3], '-p', OTHER, '-t', 'nvidia-50'])).code).toBe(0);
    const outside = tempDir('vgpuctl-outside-');
    await fs.writeFile(path.join(outside, U[0]), VALID, { mode: 0o600 });
    await fs.writeFile(path.join(outside, 'shadow'), 'root:$6$secret:19000:0:99999:7:::\n', { mode: 0o600 });
    const link = host.path(`/etc/mdevctl.d/${P40}`);
    await fs.mkdir(path.dirname(link), { recursive: true });
    await fs.symlink(outside, link);
    return { host, outside, link };
  }

  const MESSAGE = new RegExp(`/etc/mdevctl\\.d/${P40}:? is a symbolic link \\(to /[^)]+\\), not a directory; vgpuctl neither reads nor writes definitions through it`);
  const COMMANDS: Array<[string, string[]]> = [
    ['define', ['define', '-u', U[1], '-p', P40, '-t', 'nvidia-50', '--auto']],
    ['define (the UUID behind the link)', ['define', '-u', U[0], '-p', P40, '-t', 'nvidia-50', '--force']],
    ['create --define', ['create', '-t', 'nvidia-50', '-p', P40, '-u', U[1], '--define']],
    ['create --count 2 --define (placed)', ['create', '--profile', 'P40-6Q', '--count', '2', '--define', '--auto']],
    ['apply', ['apply', '-f', writePlanFile(`version: 1\ngpus:\n  - select: { address: "${P40}" }\n    profile: P40-12C\n    count: 1\n`)]],
  ];

  for (const [name, args] of COMMANDS) {
    it(`${name}: refused, the link named, nothing written through it, nothing left active`, async () => {
      const { host, outside, link } = await planted();
      const before = await snapshotTree(host.path('/etc'));
      const outsideBefore = await snapshotTree(outside);
      const r = await sim(host, args);
      counts.files++;
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(MESSAGE);
      expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
      expect(await snapshotTree(outside)).toEqual(outsideBefore);
      expect(await fs.readlink(link)).toBe(outside);
      expect((await readState(host)).active).toEqual([]);
      expect(await snapshotTree(host.path('/etc'))).toEqual(before);
    });
  }

  it.skipIf(!canRunMdevctlOracle())('--backend mdevctl: refused before mdevctl runs (mdevctl would follow the link), nothing written through it', async () => {
    const { host, outside } = await planted();
    const outsideBefore = await snapshotTree(outside);
    for (const args of [
      ['define', '-u', U[1], '-p', P40, '-t', 'nvidia-50', '--backend', 'mdevctl'],
      ['create', '-t', 'nvidia-50', '-p', P40, '-u', U[1], '--define', '--backend', 'mdevctl'],
    ]) {
      const r = await sim(host, args);
      counts.files++;
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`will not run mdevctl define on /etc/mdevctl\\.d/${P40}/${U[1]}: `));
      expect(r.stderr).toMatch(MESSAGE);
    }
    expect(await snapshotTree(outside)).toEqual(outsideBefore);
    expect((await readState(host)).active).toEqual([]);
  });

  it('undefine, modify and start of the UUID behind the link do not reach it; the outside directory is untouched', async () => {
    const { host, outside } = await planted();
    const outsideBefore = await snapshotTree(outside);
    for (const args of [['undefine', '-u', U[0]], ['undefine', '-u', U[0], '-p', P40], ['modify', '-u', U[0], '--manual'], ['start', '-u', U[0]]]) {
      const r = await sim(host, args);
      counts.files++;
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`no definition of ${U[0]}`));
    }
    expect(await snapshotTree(outside)).toEqual(outsideBefore);
    expect((await readState(host)).active).toEqual([]);
  });

  it('list reports the linked directory by its path, does not read through it, and lists the other definitions', async () => {
    const { host } = await planted();
    const r = await sim(host, ['list', '--defined', '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().devices.map((d: { uuid: string }) => d.uuid)).toEqual([U[3]]);
    expect(JSON.stringify(r.json().warnings)).toMatch(MESSAGE);
    const t = await sim(host, ['list', '--defined']);
    expect(t.code).toBe(0);
    expect(t.stdout).toContain(U[3]);
    expect(t.stdout).not.toContain(U[0]);
    expect(t.stderr).toMatch(MESSAGE);
  });

  it('/etc/mdevctl.d linked outside the root: reported, not followed, every definition write refused', async () => {
    const host = copyHost(base);
    const outside = tempDir('vgpuctl-outside-');
    await fs.mkdir(path.join(outside, P40));
    await fs.writeFile(path.join(outside, P40, U[0]), VALID);
    await fs.rm(host.path('/etc/mdevctl.d'), { recursive: true, force: true });
    await fs.symlink(outside, host.path('/etc/mdevctl.d'));
    const outsideBefore = await snapshotTree(outside);
    const l = await sim(host, ['list', '--defined', '-o', 'json']);
    expect(l.code, l.stderr).toBe(0);
    expect(l.json().devices).toEqual([]);
    expect(JSON.stringify(l.json().warnings)).toMatch(/\/etc\/mdevctl\.d: is a symbolic link \(to [^)]+\) that leads outside the root/);
    const d = await sim(host, ['define', '-u', U[1], '-p', P40, '-t', 'nvidia-50']);
    counts.files++;
    expect(d.code).toBe(1);
    expect(d.stderr).toMatch(new RegExp(`will not write /etc/mdevctl\\.d/${P40}/${U[1]}: /etc/mdevctl\\.d is a symbolic link \\(to [^)]+\\) that leads outside the root`));
    expect(await snapshotTree(outside)).toEqual(outsideBefore);
  });

  it('/etc/mdevctl.d linked to a directory inside the root (a stateless host\'s persistent storage) is followed', async () => {
    const host = copyHost(base);
    const keep = host.path('/persist/mdevctl.d');
    await fs.mkdir(keep, { recursive: true });
    await fs.rm(host.path('/etc/mdevctl.d'), { recursive: true, force: true });
    await fs.symlink('../persist/mdevctl.d', host.path('/etc/mdevctl.d'));
    const d = await sim(host, ['define', '-u', U[1], '-p', P40, '-t', 'nvidia-50']);
    expect(d.code, d.stderr).toBe(0);
    expect(await fs.readFile(path.join(keep, P40, U[1]), 'utf8')).toBe('{\n  "mdev_type": "nvidia-50",\n  "start": "manual",\n  "attrs": []\n}');
    const l = await sim(host, ['list', '--defined', '-o', 'json']);
    expect(l.json().devices.map((x: { uuid: string }) => x.uuid)).toEqual([U[1]]);
    expect(l.json().warnings).toEqual([]);
  });
});

describe('a symbolic link planted at the host lock', () => {
  let base: HostRoot;
  beforeAll(async () => {
    base = await fixtureHost('p40-seed004');
  });

  for (const [name, content] of [
    ['a file of the operator', 'do not touch\n'],
    ['a file that looks like a dead holder', '999999\ncreate\n'],
    ['a file naming a live process', `${process.pid}\ncreate\n`],
  ] as const) {
    it(`the lock file is a link to ${name}: refused, said, the target unchanged`, async () => {
      const host = copyHost(base);
      const target = path.join(tempDir('vgpuctl-outside-'), 'precious');
      await fs.writeFile(target, content);
      await fs.mkdir(host.path('/run/vgpuctl'), { recursive: true });
      await fs.symlink(target, host.path(LOCK));
      const before = await readState(host);
      const r = await sim(host, ['create', '--profile', 'P40-12C', '-u', U[0], '--lock-timeout', '1']);
      counts.files++;
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`vgpuctl: error: /run/vgpuctl/lock is a symbolic link (to ${target}); vgpuctl does not follow links for its lock: remove it (rm /run/vgpuctl/lock) and run again\n`);
      expect(await fs.readFile(target, 'utf8')).toBe(content);
      expect(await fs.readlink(host.path(LOCK))).toBe(target);
      expect((await readState(host)).active).toEqual(before.active);
    });
  }

  it('the lock directory is a link to another directory: refused, nothing created there', async () => {
    const host = copyHost(base);
    const elsewhere = tempDir('vgpuctl-outside-');
    await fs.mkdir(host.path('/run'), { recursive: true });
    await fs.symlink(elsewhere, host.path('/run/vgpuctl'));
    const plan = writePlanFile(`version: 1\ngpus:\n  - select: { address: "${P40}" }\n    profile: P40-12C\n    count: 1\n`);
    for (const args of [['create', '--profile', 'P40-12C'], ['apply', '-f', plan], ['cleanup', '--orphans', '--nvidia-smi', '/nonexistent']]) {
      const r = await sim(host, args);
      counts.files++;
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/^vgpuctl: error: \/run\/vgpuctl is a symbolic link \(to .*\); vgpuctl does not follow links for its lock/);
      expect(await fs.readdir(elsewhere)).toEqual([]);
    }
    expect((await readState(host)).active).toEqual([]);
  });

  it('pci detach refuses the same way', async () => {
    const host = await fixtureHost('titanxp-seed001');
    const target = path.join(tempDir('vgpuctl-outside-'), 'precious');
    await fs.writeFile(target, 'do not touch\n');
    await fs.mkdir(host.path('/run/vgpuctl'), { recursive: true });
    await fs.symlink(target, host.path(LOCK));
    const r = await sim(host, ['pci', 'detach', 'gpupci1']);
    counts.files++;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\/run\/vgpuctl\/lock is a symbolic link/);
    expect(await fs.readFile(target, 'utf8')).toBe('do not touch\n');
  });
});

describe('definition files: mode and broken neighbours', () => {
  it('are written 0644 under root umask 077 (define, create --define, define --force, modify), by the real CLI', async () => {
    const bin = await buildCli();
    const host = await fixtureHost('p40-seed004');
    const run = async (args: string[]) => {
      const r = await spawnCli(bin, host, args, { shell: 'umask 077' });
      expect(r.code, r.stderr).toBe(0);
    };
    const mode = (u: string) => statSync(host.path(`/etc/mdevctl.d/${P40}/${u}`)).mode & 0o777;
    await run(['define', '-u', U[0], '-p', P40, '-t', 'nvidia-286']);
    expect(mode(U[0])).toBe(0o644);
    await run(['create', '--profile', 'P40-12C', '-u', U[1], '--define']);
    expect(mode(U[1])).toBe(0o644);
    await run(['define', '-u', U[0], '-p', P40, '-t', 'nvidia-286', '--auto', '--force']);
    expect(mode(U[0])).toBe(0o644);
    await run(['modify', '-u', U[1], '--auto']);
    expect(mode(U[1])).toBe(0o644);
    // And the umask really was in force: a file the shell makes under it is 0600.
    const probe = await spawnCli(bin, host, ['list'], { shell: `umask 077; : > ${JSON.stringify(host.path('/tmp-umask-probe'))}` });
    expect(probe.code).toBe(0);
    expect(statSync(host.path('/tmp-umask-probe')).mode & 0o777).toBe(0o600);
  }, 60_000);

  it('a definition that is not valid JSON is reported by list, does not stop the listing, and is never overwritten', async () => {
    const host = await fixtureHost('p40-seed004');
    expect((await sim(host, ['define', '-u', U[0], '-p', P40, '-t', 'nvidia-50'])).code).toBe(0);
    const broken = host.path(`/etc/mdevctl.d/${P40}/${U[1]}`);
    const garbage = '{"mdev_type": "nvidia-50", "start": "au';
    await fs.writeFile(broken, garbage);
    const list = await sim(host, ['list', '--defined', '-o', 'json']);
    expect(list.code).toBe(0);
    expect(list.json().devices.map((d: { uuid: string }) => d.uuid)).toEqual([U[0]]);
    expect(JSON.stringify(list.json().warnings)).toMatch(new RegExp(`${U[1]}: not a valid mdevctl definition`));
    const table = await sim(host, ['list', '--defined']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(U[0]);
    for (const args of [
      ['define', '-u', U[1], '-p', P40, '-t', 'nvidia-50'],
      ['define', '-u', U[1], '-p', P40, '-t', 'nvidia-50', '--force'],
      ['undefine', '-u', U[1]],
      ['start', '-u', U[1]],
    ]) {
      const r = await sim(host, args);
      counts.files++;
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^vgpuctl: error: /etc/mdevctl\\.d/${P40}/${U[1]} is not a valid mdevctl definition \\(.*\\); vgpuctl does not follow, replace or remove it: look at it and remove it by hand\\n$`));
      expect(await fs.readFile(broken, 'utf8')).toBe(garbage);
    }
    expect(await lexists(host.path(LOCK))).toBe(false);
  });
});
