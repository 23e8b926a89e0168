/**
 * Fault injection: for every lifecycle command and for apply, each write of the command's write sequence
 * (k = 1..N, from its --dry-run) is made to fail in turn with EIO, ENOSPC, EBUSY and EINVAL — sysfs
 * writes through the simulator (VGPUCTL_SIM_FAULTS=any#k=ERRNO), definition and unit files at the fs call
 * (creating the temporary file, writing it, renaming it into place, removing a file). After each failed
 * run:
 *   - exit 1, one `vgpuctl: error:` sentence that names the cause (the errno, or the kernel's sentence);
 *   - no active device that was neither there before nor asked for ("leaked");
 *   - every file under etc/mdevctl.d parses, and the set of definitions is the one before or the one the
 *     command was asked to produce ("lost");
 *   - no lock, no temporary file; for apply, no intent journal once the run rolled back completely;
 *   - the same command run again without faults succeeds and reaches the state an unfaulted run reaches
 *     (for apply: `assert` exits 0 afterwards).
 * Then: a parent that goes away between discovery and write (ENODEV from the driver, and the parent's
 * mdev_bus link really removed right before the write), and a garbled available_instances.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostRoot } from '../../src/host/host-root.js';
import { SimulatedSysfsWriter } from '../../src/simulator/sim-writer.js';
import {
  JOURNAL,
  P40,
  SYSFS_CAUSE,
  U,
  clean,
  copyHost,
  failureProblems,
  fixtureHost,
  judge,
  listTmpLitter,
  lexists,
  put,
  putBootUnit,
  readState,
  sim,
  stagesOf,
  verdictLines,
  withFileFault,
  writePlanFile,
  writePoints,
  type FileStage,
  type TreeState,
  type WritePoint,
  P40_12C_PLAN_TEXT,
} from '../helpers/hardening.js';

const ERRNOS = ['EIO', 'ENOSPC', 'EBUSY', 'EINVAL'] as const;

interface Scenario {
  name: string;
  fixture: string;
  /** Brings the fixture to the starting state (in-process, unfaulted). */
  setup?: (host: HostRoot) => Promise<void>;
  args: string[];
  /** Extra check after the converging re-run (apply: assert). */
  converged?: (host: HostRoot) => Promise<string[]>;
  /** apply only: its intent journal is a write of its own, before the first change. */
  journal?: boolean;
}

const ok = async (host: HostRoot, args: string[]): Promise<void> => {
  const r = await sim(host, args);
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
};

const APPLY_PLAN = writePlanFile(P40_12C_PLAN_TEXT);

const T4A = '0000:3b:00.0';
const T4B = '0000:86:00.0';

const SCENARIOS: Scenario[] = [
  { name: 'create --count 3', fixture: 'p40-seed004', args: ['create', '--profile', 'P40-6Q', '--count', '3', '-u', U[0], U[1], U[2]] },
  { name: 'create --count 2 --define --auto', fixture: 'p40-seed004', args: ['create', '--profile', 'P40-6Q', '--count', '2', '--define', '--auto', '-u', U[0], U[1]] },
  {
    name: 'start',
    fixture: 'p40-seed004',
    setup: (h) => ok(h, ['define', '-u', U[0], '-p', P40, '-t', 'nvidia-50', '--auto']),
    args: ['start', '-u', U[0]],
  },
  {
    name: 'stop',
    fixture: 'p40-seed004',
    setup: (h) => ok(h, ['create', '--profile', 'P40-6Q', '-u', U[0], '--define']),
    args: ['stop', '-u', U[0]],
  },
  {
    name: 'destroy (device, definition, boot unit and its link)',
    fixture: 'p40-seed004',
    setup: async (h) => {
      await ok(h, ['create', '--profile', 'P40-6Q', '--count', '2', '-u', U[0], U[1], '--define', '--auto']);
      await putBootUnit(h, U[0]);
    },
    args: ['destroy', '-u', U[0]],
  },
  {
    name: 'define --force (replace, same parent)',
    fixture: 'p40-seed004',
    setup: (h) => ok(h, ['create', '--profile', 'P40-6Q', '-u', U[0], '--define', '--manual']),
    args: ['define', '-u', U[0], '--auto', '--force'],
  },
  {
    name: 'define --force (move to another parent)',
    fixture: 't4x4-seed001',
    setup: (h) => ok(h, ['define', '-u', U[0], '-p', T4A, '--profile', 'T4-4Q']),
    args: ['define', '-u', U[0], '-p', T4B, '--profile', 'T4-4Q', '--auto', '--force'],
  },
  {
    name: 'undefine',
    fixture: 'p40-seed004',
    setup: (h) => ok(h, ['define', '-u', U[0], '-p', P40, '-t', 'nvidia-50', '--auto']),
    args: ['undefine', '-u', U[0]],
  },
  {
    name: 'undefine (defined under two parents)',
    fixture: 't4x4-seed001',
    setup: async (h) => {
      await ok(h, ['define', '-u', U[0], '-p', T4A, '--profile', 'T4-4Q']);
      await put(h, `/etc/mdevctl.d/${T4B}/${U[0]}`, await fs.readFile(h.path(`/etc/mdevctl.d/${T4A}/${U[0]}`), 'utf8'));
    },
    args: ['undefine', '-u', U[0]],
  },
  {
    name: 'apply --prune (4 x P40-6Q out, 2 x P40-12C in)',
    fixture: 'p40-seed004',
    setup: (h) => ok(h, ['create', '--profile', 'P40-6Q', '--count', '4', '--define', '--auto']),
    args: ['apply', '-f', APPLY_PLAN, '--prune'],
    journal: true,
    converged: async (h) => {
      const a = await sim(h, ['assert', '-f', APPLY_PLAN]);
      return a.code === 0 ? [] : [`assert exits ${a.code}: ${a.stdout}${a.stderr}`];
    },
  },
];

interface Fault {
  label: string;
  point: WritePoint | { kind: 'journal'; path: string; summary: string };
  errno: string;
  stage?: FileStage;
}

function faultsOf(points: WritePoint[], journal: boolean): Fault[] {
  const out: Fault[] = [];
  const all: Array<Fault['point']> = [...(journal ? [{ kind: 'journal' as const, path: JOURNAL, summary: 'write the intent journal' }] : []), ...points];
  for (const [i, p] of all.entries()) {
    const k = journal ? i : i + 1;
    for (const errno of ERRNOS) {
      if (p.kind === 'sysfs-write') out.push({ label: `k=${k} ${p.summary} -> ${errno}`, point: p, errno });
      else for (const stage of p.kind === 'journal' ? (['open', 'write', 'rename'] as FileStage[]) : stagesOf(p)) out.push({ label: `k=${k} ${p.summary} [${stage}] -> ${errno}`, point: p, errno, stage });
    }
  }
  return out;
}

/** What a failed run must say: the kernel's sentence for a refused create, else the errno itself. */
function causeOf(f: Fault): RegExp {
  if (f.point.kind === 'sysfs-write') {
    return f.errno === 'ENOSPC' && f.point.path.endsWith('/create') ? SYSFS_CAUSE['ENOSPC']! : new RegExp(`\\(${f.errno}\\)`);
  }
  return new RegExp(`\\b${f.errno}\\b`);
}

const tmpLitter = (host: HostRoot): Promise<string[]> => listTmpLitter(host, ['/etc', '/run', '/var/lib']);

const totals = { runs: 0, sysfs: 0, file: 0, inconsistent: 0, lost: 0, leaked: 0, notConverged: 0 };

afterAll(() => {
  console.log(
    `fault-injection: ${totals.runs} runs (${totals.sysfs} sysfs write faults, ${totals.file} file write faults), ${totals.inconsistent} inconsistent, ` +
      `${totals.notConverged} not converged on the next run; lost: ${totals.lost}, leaked: ${totals.leaked}`,
  );
});

describe('a write failing at every point of every changing command', () => {
  for (const sc of SCENARIOS) {
    it(sc.name, async () => {
      const base = await fixtureHost(sc.fixture);
      await sc.setup?.(base);
      const before = await readState(base);

      // The write sequence, and the state an unfaulted run reaches.
      const dry = await sim(copyHost(base), [...sc.args, '--dry-run', '-o', 'json']);
      expect(dry.code, dry.stderr).toBe(0);
      const points = writePoints(dry.json().actions);
      expect(points.length).toBeGreaterThan(0);
      const ref = copyHost(base);
      await ok(ref, sc.args);
      const target: TreeState = await readState(ref);

      const faults = faultsOf(points, sc.journal ?? false);
      const failures: string[] = [];
      for (const f of faults) {
        const host = copyHost(base);
        const problems: string[] = [];
        let r;
        if (f.point.kind === 'sysfs-write') {
          r = await sim(host, sc.args, { VGPUCTL_SIM_FAULTS: `any#${f.point.sysfsIndex}=${f.errno}` });
          totals.sysfs++;
        } else {
          const out = await withFileFault({ file: host.path(f.point.path), stage: f.stage!, errno: f.errno }, () => sim(host, sc.args));
          r = out.result;
          if (!out.fired) problems.push('the fault did not fire (the write sequence differs from the dry run)');
          totals.file++;
        }
        totals.runs++;
        problems.push(...failureProblems(r, causeOf(f)));
        const after = await readState(host);
        const v = judge(after, before, target);
        if (after.lock) v.other.push('the lock is left behind');
        if (after.journal) v.other.push('the intent journal is left behind although the run rolled back');
        const litter = await tmpLitter(host);
        if (litter.length > 0) v.lost.push(`temporary files left: ${litter.join(', ')}`);
        totals.lost += v.lost.length;
        totals.leaked += v.leaked.length;
        problems.push(...verdictLines(v));

        // The next run, without faults, repairs: it succeeds and reaches what an unfaulted run reaches.
        const again = await sim(host, sc.args);
        const final = await readState(host);
        const converged: string[] = [];
        if (again.code !== 0) converged.push(`re-run exits ${again.code}: ${again.stderr.trim()}`);
        for (const key of ['active', 'defs', 'units', 'lock', 'journal'] as const) {
          if (JSON.stringify(final[key]) !== JSON.stringify(target[key])) converged.push(`after the re-run ${key} differs from an unfaulted run: ${JSON.stringify(final[key])}`);
        }
        converged.push(...((await sc.converged?.(host)) ?? []));
        if (converged.length > 0) totals.notConverged++;
        problems.push(...converged);
        if (problems.length > 0 || !clean(v)) {
          totals.inconsistent++;
          failures.push(`${f.label}:\n    ${problems.join('\n    ')}`);
        }
      }
      console.log(`fault-injection: ${sc.name}: ${points.length} writes${sc.journal ? ' + the journal' : ''}, ${faults.length} runs, ${failures.length} inconsistent`);
      expect(failures).toEqual([]);
    });
  }
});

describe('the GPU goes away between discovery and write', () => {
  it('ENODEV from the driver on create, start and apply: the sentence says the GPU went away, nothing is left', async () => {
    const cases: Array<[string, string[], (h: HostRoot) => Promise<void>]> = [
      ['create', ['create', '--profile', 'P40-12C', '--count', '2', '--define', '-u', U[0], U[1]], async () => undefined],
      ['start', ['start', '-u', U[0]], (h) => ok(h, ['define', '-u', U[0], '-p', P40, '-t', 'nvidia-286'])],
      ['apply', ['apply', '-f', APPLY_PLAN], async () => undefined],
    ];
    let runs = 0;
    for (const [name, args, setup] of cases) {
      for (const k of name === 'start' ? [1] : [1, 2]) {
        const host = await fixtureHost('p40-seed004');
        await setup(host);
        const before = await readState(host);
        const r = await sim(host, args, { VGPUCTL_SIM_FAULTS: `create#${k}=ENODEV` });
        runs++;
        expect(failureProblems(r, new RegExp(`${P40} went away \\(ENODEV\\): the GPU was removed or SR-IOV was disabled; check 'vgpuctl gpus'`)), name).toEqual([]);
        const after = await readState(host);
        expect(after, `${name} k=${k}`).toEqual(before);
        if (name === 'apply') expect(await sim(host, ['apply', '-f', APPLY_PLAN]).then((x) => x.code)).toBe(0);
      }
    }
    console.log(`fault-injection: GPU gone (ENODEV): ${runs} runs, 0 inconsistent`);
  });

  it("the parent's mdev_bus link and types really vanish right before the create write: refused with a sentence, nothing left", async () => {
    const host = await fixtureHost('p40-seed004');
    const before = await readState(host);
    const parentLink = host.path(`/sys/class/mdev_bus/${P40}`);
    const types = path.join(await fs.realpath(parentLink), 'mdev_supported_types');
    // Hot-unplug at the moment of the write: vgpuctl has read the host, checked its rules and now writes
    // the UUID into `create` — and just then nvidia lets go of the GPU (the parent is unregistered).
    const proto = SimulatedSysfsWriter.prototype as unknown as { write: (realPath: string, data: string) => Promise<void> };
    const write = proto.write;
    let unplugged = false;
    proto.write = async function (this: unknown, realPath: string, data: string) {
      if (!unplugged && realPath.endsWith('/create')) {
        unplugged = true;
        await fs.rm(parentLink);
        await fs.rename(types, `${types}.gone`);
      }
      return write.call(this, realPath, data);
    };
    let r;
    try {
      r = await sim(host, ['create', '--profile', 'P40-12C', '-u', U[0], '--define']);
    } finally {
      proto.write = write;
    }
    expect(unplugged).toBe(true);
    expect(failureProblems(r, /does not exist: the parent or type vanished; check 'vgpuctl types'.*nothing was changed/)).toEqual([]);
    const after = await readState(host);
    expect(after.active).toEqual(before.active);
    expect(after.defs).toEqual(before.defs);
    expect(await lexists(host.path('/run/vgpuctl/lock'))).toBe(false);
    // The GPU comes back: the next run works.
    await fs.rename(`${types}.gone`, types);
    await fs.symlink(path.relative(path.dirname(parentLink), await fs.realpath(path.dirname(types))), parentLink);
    expect((await sim(host, ['create', '--profile', 'P40-12C', '-u', U[0], '--define'])).code).toBe(0);
  });
});

describe('a garbled read', () => {
  let host: HostRoot;
  beforeAll(async () => {
    host = await fixtureHost('p40-seed004');
  });

  it.each([
    ['garbage', 'garbage\n'],
    ['binary', '\u0000\u0001\u00ff\n'],
    ['empty', ''],
    ['a number with a suffix', '2abc\n'],
    ['two numbers', '1 2\n'],
  ])('available_instances holding %s: exit 1, a sentence naming the file, nothing written', async (_n, content) => {
    const h = copyHost(host);
    const file = h.path(`/sys/class/mdev_bus/${P40}/mdev_supported_types/nvidia-286/available_instances`);
    await fs.writeFile(file, content);
    const before = await readState(h);
    const r = await sim(h, ['create', '--profile', 'P40-12C', '-u', U[0], '--define']);
    if (content === '') {
      // An empty attribute reads as absent: no instance to offer, refused as "none left", never a crash.
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^vgpuctl: error: /);
      expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
    } else {
      expect(failureProblems(r, /cannot read \/sys\/.*nvidia-286\/available_instances: expected a whole number, found .*; the file is garbled/)).toEqual([]);
    }
    expect(await readState(h)).toEqual(before);
  });
});
