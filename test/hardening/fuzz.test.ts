/**
 * Fuzzing with fast-check (a maintained property-based testing library): every parser of what the kernel,
 * the driver, mdevctl or an operator hands vgpuctl, and every CLI argument validator, on random and
 * hostile input. Two properties each:
 *   - it never throws anything but what it documents (VgpuctlError for operator input and plans;
 *     SyntaxError/ZodError for parseDefinition, which readDefinitions turns into a reported problem;
 *     nothing at all for the sysfs and nvidia-smi parsers);
 *   - it never accepts what it must refuse: no accepted UUID fails the UUID form; no accepted parent,
 *     type id or definition type contains `/`, `..`, NUL, a newline or a blank; parsed numbers are safe
 *     integers; a definition's attribute names cannot climb out of the device directory.
 * The number of cases run is printed per target; the total at the end.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { stringify as toYaml } from 'yaml';
// Both zod builds (classic and zod/mini, which the definition reader uses) throw errors of the core's class.
import { $ZodError } from 'zod/v4/core';
import { afterAll, describe, expect, it } from 'vitest';
import { VgpuctlError } from '../../src/errors/vgpuctl-error.js';
import { parseVgpuQuery } from '../../src/cleanup/nvidia-smi-vgpu.js';
import { parseDefinition, readDefinitions } from '../../src/host/definitions.js';
import { HostRoot } from '../../src/host/host-root.js';
import { normalizeParent, normalizeUuid, validateProfileName, validateTypeId } from '../../src/host/identifiers.js';
import { parseTypeDescription, parseFramebufferMib } from '../../src/host/type-description.js';
import { parseProfileName, parseTypeName } from '../../src/host/type-name.js';
import { parsePlanText } from '../../src/plan/plan-file.js';
import { parseCreatableVgpuTypes } from '../../src/vendor-vfio/creatable.js';
import { cli } from '../helpers/cli.js';
import { snapshotTree, tempDir } from '../helpers/hosts.js';
import { P40, U, fixtureHost } from '../helpers/hardening.js';

const RUNS = Number(process.env['VGPUCTL_FUZZ_RUNS'] ?? 2000);
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const cases: Record<string, number> = {};

afterAll(() => {
  const total = Object.values(cases).reduce((a, b) => a + b, 0);
  console.log(`fuzz: ${total} cases run over ${Object.keys(cases).length} targets, 0 unexpected exceptions, 0 accepted that must be refused`);
});

/** fc.assert that counts the cases it ran under `name` and prints them. */
function check<T>(name: string, arb: fc.Arbitrary<T>, pred: (v: T) => void | Promise<void>, numRuns = RUNS): Promise<void> | void {
  let n = 0;
  const counted = (v: T) => {
    n++;
    return pred(v);
  };
  const done = () => {
    cases[name] = (cases[name] ?? 0) + n;
    console.log(`fuzz: ${name}: ${n} cases`);
  };
  const isAsync = pred.constructor.name === 'AsyncFunction';
  if (isAsync) {
    return fc.assert(fc.asyncProperty(arb, async (v) => counted(v)), { numRuns }).then(done);
  }
  fc.assert(
    fc.property(arb, (v) => {
      counted(v);
    }),
    { numRuns },
  );
  done();
}

// Pieces an attacker or a broken driver would use, mixed with pieces of real values.
const PIECES = ['/', '..', '.', '\0', '\n', '\r', '\t', ' ', ':', '-', '_', '=', ',', '$(id)', '`id`', ';', '|', '&', '*', '~', '0000', '82', '00.0', 'nvidia', '-286', 'GRID', 'NVIDIA', 'P40', '12C', 'A100D-2-20C', 'x', '9'.repeat(20), '9'.repeat(400), 'é', '\u202e'];
const hostile = fc
  .array(fc.oneof(fc.constantFrom(...PIECES), fc.string({ unit: 'binary', maxLength: 4 }), fc.string({ maxLength: 6 })), { maxLength: 10 })
  .map((a) => a.join(''));
const anyText = fc.oneof(hostile, fc.string({ unit: 'binary', maxLength: 200 }), fc.string({ maxLength: 200 }));

/** Nothing an accepted identifier may contain: it becomes a path component. */
function safeComponent(s: string): string | null {
  if (s.includes('/')) return 'contains /';
  if (s.includes('..')) return 'contains ..';
  if (s.includes('\0')) return 'contains NUL';
  if (/\s/.test(s)) return 'contains white space';
  if (s === '' || s === '.') return 'empty or .';
  return null;
}

function expectOnly(e: unknown, ...allowed: Array<abstract new (...a: any[]) => Error>): void {
  if (!allowed.some((c) => e instanceof c)) throw new Error(`unexpected exception ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
}

describe('CLI argument validators', () => {
  it('normalizeUuid accepts only UUIDs, returns them in the kernel spelling, refuses with a VgpuctlError', () => {
    check('normalizeUuid', fc.oneof(anyText, fc.uuid().map((u) => u.toUpperCase()), fc.uuid().map((u) => ` ${u}\n`), fc.uuid().map((u) => `${u}/..`)), (s) => {
      let r: string;
      try {
        r = normalizeUuid(s);
      } catch (e) {
        expectOnly(e, VgpuctlError);
        expect((e as VgpuctlError).code).toBe('invalid-input');
        return;
      }
      expect(r).toMatch(UUID_RE);
      expect(normalizeUuid(r)).toBe(r);
    });
  });

  it('normalizeParent never accepts /, .., NUL, blanks; PCI addresses come out in full form', () => {
    const pciish = fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xff }), fc.integer({ min: 0, max: 0x1f }), fc.integer({ min: 0, max: 7 })).map(
      ([d, b, s, f]) => `${d.toString(16).padStart(4, '0')}:${b.toString(16).padStart(2, '0')}:${s.toString(16).padStart(2, '0')}.${f}`,
    );
    check('normalizeParent', fc.oneof(anyText, fc.constantFrom('a..b', 'mtty..', '..', '.', 'mtty/..', 'mtty\n', 'mtty\0'), pciish, pciish.map((p) => p.slice(5).toUpperCase()), pciish.map((p) => `${p}/../..`)), (s) => {
      let r: string;
      try {
        r = normalizeParent(s);
      } catch (e) {
        expectOnly(e, VgpuctlError);
        expect((e as VgpuctlError).code).toBe('invalid-input');
        return;
      }
      expect(safeComponent(r), JSON.stringify(r)).toBeNull();
      expect(normalizeParent(r)).toBe(r);
      if (/^[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/i.test(s)) expect(r).toBe(`0000:${s.toLowerCase()}`);
    });
  });

  it('validateTypeId never accepts /, .., NUL, blanks', () => {
    check('validateTypeId', fc.oneof(anyText, fc.stringMatching(/^[a-z]+-[0-9]{1,4}$/), fc.constantFrom('..', '.', 'nvidia-286/..', 'a..b', '../nvidia-286')), (s) => {
      let r: string;
      try {
        r = validateTypeId(s);
      } catch (e) {
        expectOnly(e, VgpuctlError);
        expect((e as VgpuctlError).code).toBe('invalid-input');
        return;
      }
      expect(safeComponent(r), JSON.stringify(r)).toBeNull();
      expect(validateTypeId(r)).toBe(r);
    });
  });
});

describe('white space around an identifier, the same for every validator', () => {
  // Valid identifiers of each kind, wrapped in random white space (at least one character on one side).
  const blank = fc.constantFrom(' ', '\t', '\n', '\r', '\v', '\f', '\u00a0', '\u2003', '\ufeff');
  const blanks = fc.array(blank, { maxLength: 3 }).map((a) => a.join(''));
  const pci = fc.tuple(fc.integer({ min: 0, max: 0xff }), fc.integer({ min: 0, max: 0x1f }), fc.integer({ min: 0, max: 7 })).map(
    ([b, s, f]) => `0000:${b.toString(16).padStart(2, '0')}:${s.toString(16).padStart(2, '0')}.${f}`,
  );
  const VALIDATORS: Array<[string, (s: string) => string, fc.Arbitrary<string>]> = [
    ['normalizeUuid', normalizeUuid, fc.uuid()],
    ['normalizeParent', normalizeParent, fc.oneof(pci, fc.constantFrom('mtty', 'mdpy', '0.0.0123'))],
    ['validateTypeId', validateTypeId, fc.stringMatching(/^nvidia-[0-9]{1,4}$/)],
    ['validateProfileName', validateProfileName, fc.constantFrom('P40-12C', 'A100D-2-20C', 'T4-16Q')],
  ];
  for (const [name, fn, good] of VALIDATORS) {
    it(`${name}: refused with exit 2 and the bare value named, never trimmed into acceptance`, () => {
      const wrapped = fc.tuple(good, blanks, blanks).filter(([, a, b]) => a.length + b.length > 0);
      check(`${name} (white space)`, wrapped, ([g, a, b]) => {
        const input = `${a}${g}${b}`;
        expect(() => fn(g), g).not.toThrow();
        let err: unknown;
        try {
          fn(input);
        } catch (e) {
          err = e;
        }
        expect(err, JSON.stringify(input)).toBeInstanceOf(VgpuctlError);
        expect((err as VgpuctlError).exitCode).toBe(2);
        expect((err as VgpuctlError).message).toContain(`${JSON.stringify(input)} has white space around it`);
        expect((err as VgpuctlError).message).toContain(`did you mean ${JSON.stringify(input.trim())}?`);
      }, Math.min(RUNS, 500));
    });
  }
});

describe('parsers of what the kernel and the driver write', () => {
  const KEYS = ['num_heads', 'frl_config', 'framebuffer', 'max_resolution', 'max_instance', 'x', '', ' '];
  const value = fc.oneof(fc.nat().map(String), fc.constantFrom('6144M', '6G', '1048576K', '4096x2160', '9'.repeat(400), '9'.repeat(400) + 'M', '-1', '1e9', 'NaN', ''), hostile);
  const description = fc.oneof(
    anyText,
    fc.tuple(fc.array(fc.tuple(fc.constantFrom(...KEYS), value), { maxLength: 8 }), fc.constantFrom(', ', '\n', ',')).map(([kv, sep]) => kv.map(([k, v]) => `${k}=${v}`).join(sep)),
  );

  it('parseTypeDescription never throws; every number it returns is a safe whole number or null', () => {
    check('parseTypeDescription', fc.oneof(description, fc.constant(null), fc.constant(undefined)), (text) => {
      const d = parseTypeDescription(text);
      for (const n of [d.numHeads, d.frlConfig, d.framebufferMib, d.maxInstance, d.maxResolution?.width ?? null, d.maxResolution?.height ?? null]) {
        if (n !== null) expect(Number.isSafeInteger(n) && n >= 0, `${n} from ${JSON.stringify(text)}`).toBe(true);
      }
      const fb = parseFramebufferMib(d.fields['framebuffer']);
      expect(fb).toBe(d.framebufferMib);
    });
  });

  it('parseTypeName / parseProfileName never throw; an accepted profile is a plain NVIDIA profile name', () => {
    const names = fc.oneof(
      anyText,
      fc.tuple(fc.constantFrom('GRID ', 'NVIDIA ', 'Tesla ', '', 'grid ', 'X '), fc.stringMatching(/^[A-Z0-9]{1,6}-([0-9]{1,2}-)?[0-9]{1,3}[ABCQ][A-Z0-9]{0,3}$/), fc.constantFrom('', ' ', '\n', '/..', ' x')).map((p) => p.join('')),
      fc.constantFrom(`GRID P40-${'9'.repeat(400)}C`, 'GRID P40-1-9999999999999999999999C'),
    );
    check('parseTypeName+parseProfileName', names, (s) => {
      for (const p of [parseTypeName(s), parseProfileName(s)]) {
        if (p === null) continue;
        expect(p.profile).toMatch(/^[A-Z0-9]+-(\d+-)?\d+[ABCQ][A-Z0-9]*$/);
        expect(safeComponent(p.profile)).toBeNull();
        expect(Number.isSafeInteger(p.framebufferGib), `${p.framebufferGib} from ${JSON.stringify(s)}`).toBe(true);
        if (p.migSlices !== null) expect(Number.isSafeInteger(p.migSlices)).toBe(true);
        expect(p.board.length).toBeGreaterThan(0);
      }
    });
  });

  it('parseCreatableVgpuTypes never throws; ids are safe positive whole numbers, type ids plain, names one line', () => {
    const line = fc.oneof(
      fc.constant('ID    : vGPU Name'),
      fc.tuple(fc.oneof(fc.nat({ max: 99999 }).map(String), fc.constantFrom('0', '9'.repeat(30), '9'.repeat(400), '-1', 'x')), fc.constantFrom(' : ', ':', '  :  '), fc.oneof(hostile, fc.constantFrom('NVIDIA L40S-1B', 'NVIDIA H100-80C'))).map((t) => t.join('')),
      anyText,
    );
    check('parseCreatableVgpuTypes', fc.tuple(fc.array(line, { maxLength: 12 }), fc.constantFrom('\n', '\r\n')).map(([l, sep]) => l.join(sep)), (text) => {
      const types = parseCreatableVgpuTypes(text);
      const ids = new Set<number>();
      for (const t of types) {
        expect(Number.isSafeInteger(t.id) && t.id > 0, `id ${t.id} from ${JSON.stringify(text)}`).toBe(true);
        expect(ids.has(t.id)).toBe(false);
        ids.add(t.id);
        expect(t.typeId).toBe(`nvidia-${t.id}`);
        expect(t.name).not.toMatch(/\n/);
      }
    });
  });

  it('parseVgpuQuery (nvidia-smi vgpu -q) never throws; MDEV UUIDs are UUIDs or null, GPU ids one line', () => {
    const field = fc.tuple(
      fc.constantFrom('    vGPU ID', '        VM UUID', '        VM Name', '        vGPU Name', '        vGPU Type', '        MDEV UUID', 'GPU', 'Attached GPUs', hostile.map((h) => `  ${h}`)),
      fc.constantFrom(' : ', ':', '  :', ' '),
      fc.oneof(hostile, fc.uuid(), fc.uuid().map((u) => u.toUpperCase()), fc.constantFrom('N/A', '', '3251634213', '00000000:82:00.0', 'GRID P40-6Q')),
    );
    const gpuLine = fc.oneof(fc.constantFrom('GPU 00000000:82:00.0', 'GPU 0000:3B:00.0', 'GPU ..:..', 'GPU ::::'), hostile.map((h) => `GPU ${h}`));
    const doc = fc.array(fc.oneof(gpuLine, field.map((f) => f.join('')), anyText), { maxLength: 30 }).map((l) => l.join('\n'));
    check('parseVgpuQuery', doc, (text) => {
      for (const v of parseVgpuQuery(text)) {
        if (v.mdevUuid !== null) expect(v.mdevUuid).toMatch(UUID_RE);
        expect(v.gpu).not.toMatch(/[\n\0]/);
      }
    });
  });
});

describe('mdevctl definitions', () => {
  const definitionObject = fc.record(
    {
      mdev_type: fc.oneof(hostile, fc.constantFrom('nvidia-286', 'mtty-1', '../../../../etc', 'nvidia-286/../x', '')),
      start: fc.constantFrom('auto', 'manual', 'AUTO', '', 'auto\n'),
      attrs: fc.array(fc.dictionary(fc.oneof(hostile, fc.constantFrom('nvidia/vgpu_params', '../../../../etc/shadow', '/etc/shadow', 'a/../../b', 'frame_rate_limiter')), fc.string({ maxLength: 20 }), { maxKeys: 2 }), { maxLength: 3 }),
      extra: fc.anything(),
    },
    { requiredKeys: [] },
  );
  const text = fc.oneof(anyText, definitionObject.map((o) => JSON.stringify(o)), fc.jsonValue().map((v) => JSON.stringify(v)), definitionObject.map((o) => JSON.stringify(o).slice(0, 30)));

  it('parseDefinition throws only SyntaxError or ZodError; an accepted type and every attribute name are safe', () => {
    check('parseDefinition', text, (t) => {
      let d;
      try {
        d = parseDefinition(t);
      } catch (e) {
        expectOnly(e, SyntaxError, $ZodError as unknown as abstract new (...a: any[]) => Error);
        return;
      }
      expect(safeComponent(d.mdev_type), JSON.stringify(d.mdev_type)).toBeNull();
      expect(['auto', 'manual']).toContain(d.start);
      for (const a of d.attrs) {
        const keys = Object.keys(a);
        expect(keys.length).toBe(1);
        // A name may have sub-directories (nvidia/vgpu_params) but never leaves the device directory.
        for (const seg of keys[0]!.split('/')) expect(safeComponent(seg), JSON.stringify(keys[0])).toBeNull();
        expect(keys[0]!.startsWith('/')).toBe(false);
      }
    });
  });

  it('readDefinitions never throws on random files in /etc/mdevctl.d: bad ones are reported, good ones still listed', async () => {
    const root = path.join(tempDir('vgpuctl-fuzz-defs-'), 'root');
    const host = new HostRoot(root);
    const good = `{\n  "mdev_type": "nvidia-286",\n  "start": "auto",\n  "attrs": []\n}`;
    const fileName = fc.oneof(fc.uuid(), fc.uuid().map((u) => u.toUpperCase()), fc.stringMatching(/^[A-Za-z0-9._-]{1,20}$/).filter((n) => n !== '.' && n !== '..'));
    await check(
      'readDefinitions',
      fc.array(fc.tuple(fileName, text), { maxLength: 6 }),
      async (files) => {
        const dir = host.path(`/etc/mdevctl.d/${P40}`);
        await fs.rm(host.path('/etc'), { recursive: true, force: true });
        await fs.mkdir(dir, { recursive: true });
        await fs.writeFile(path.join(dir, U[0]), good);
        for (const [name, content] of files) if (name.toLowerCase() !== U[0]) await fs.writeFile(path.join(dir, name), content);
        const r = await readDefinitions(host);
        expect(r.definitions.some((d) => d.uuid === U[0] && d.type === 'nvidia-286')).toBe(true);
        const written = new Set([U[0], ...files.map(([n]) => n).filter((n) => n.toLowerCase() !== U[0])]);
        expect(r.definitions.length + r.problems.length).toBe(written.size);
      },
      Math.max(50, RUNS / 10),
    );
  });
});

describe('the plan reader', () => {
  const entry = fc.record(
    {
      select: fc.oneof(
        fc.record({ address: fc.oneof(hostile, fc.constantFrom(P40, '82:00.0', '0000:82:00.0/..')) }),
        fc.record({ board: fc.oneof(hostile, fc.constant('P40')) }),
        fc.record({ all: fc.oneof(fc.constant(true), fc.anything()) }),
        fc.anything(),
      ),
      profile: fc.oneof(hostile, fc.constantFrom('P40-12C', 'A100D-2-20C', '../P40-12C')),
      type: fc.oneof(hostile, fc.constantFrom('nvidia-286', '../nvidia-286', 'nvidia-286\n')),
      count: fc.oneof(fc.integer({ min: -3, max: 2000 }), fc.constant('max'), fc.anything()),
      autostart: fc.anything(),
      uuids: fc.array(fc.oneof(fc.uuid(), hostile), { maxLength: 3 }),
    },
    { requiredKeys: ['select'] },
  );
  const plan = fc.record({ version: fc.oneof(fc.constant(1), fc.anything()), gpus: fc.array(entry, { maxLength: 3 }), uuid_namespace: fc.oneof(fc.uuid(), hostile), defaults: fc.anything() }, { requiredKeys: ['gpus'] });
  const planText = fc.oneof(
    anyText,
    plan.map((p) => toYaml(p)),
    plan.map((p) => JSON.stringify(p)),
    plan.map((p) => toYaml(p).slice(0, 40)),
    // Anchors and aliases, up to a billion laughs.
    fc.integer({ min: 1, max: 9 }).map((depth) => {
      const lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
      for (let i = 1; i <= depth; i++) lines.push(`a${i}: &a${i} [${Array(9).fill(`*a${i - 1}`).join(',')}]`);
      return `${lines.join('\n')}\nversion: 1\ngpus: *a${depth}\n`;
    }),
  );

  it('parsePlanText throws only VgpuctlError (invalid input, naming the file); an accepted plan holds only safe values', () => {
    check('parsePlanText', planText, (t) => {
      let p: any;
      try {
        p = parsePlanText(t, 'plan.yaml');
      } catch (e) {
        expectOnly(e, VgpuctlError);
        expect((e as VgpuctlError).code).toBe('invalid-input');
        expect((e as Error).message).toMatch(/plan\.yaml|invalid plan/);
        return;
      }
      expect(p.version).toBe(1);
      for (const g of p.gpus) {
        if (g.type !== undefined) {
          expect(g.type).toMatch(/^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}$/);
          expect(g.type).not.toMatch(/[/\0\n]/);
        }
        if (g.profile !== undefined) expect(safeComponent(g.profile)).toBeNull();
        if (g.select.address !== undefined) expect(g.select.address).toMatch(/^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/);
        for (const u of g.uuids ?? []) expect(u).toMatch(UUID_RE);
        expect(g.count === 'max' || (Number.isInteger(g.count) && g.count >= 1 && g.count <= 1024)).toBe(true);
      }
    }, RUNS);
  });
});

describe('the CLI with random arguments (in-process)', () => {
  const value = fc.oneof(
    { arbitrary: hostile, weight: 1 },
    { arbitrary: fc.constantFrom(P40, '82:00.0', 'nvidia-286', 'nvidia-50', 'P40-12C', 'P40-6Q', U[0], U[1], U[0].toUpperCase(), '1', '2', '0', '-1', 'sysfs', 'json'), weight: 3 },
  );
  const OPTIONS: Record<string, string[]> = {
    create: ['-t', '--profile', '-p', '-n', '-u', '--spread', '--define', '-a', '--manual', '--dry-run', '--backend', '--lock-timeout'],
    define: ['-u', '-p', '-t', '--profile', '-a', '--manual', '--force', '--dry-run'],
    start: ['-u', '-p', '--dry-run'],
    stop: ['-u', '--force', '--dry-run'],
    modify: ['-u', '-p', '-a', '--manual', '--dry-run'],
    undefine: ['-u', '-p', '--dry-run'],
    destroy: ['-u', '--keep-definition', '--force', '--dry-run'],
    list: ['-u', '-p', '--defined', '--all'],
    types: ['-p', '--profile', '--available'],
  };
  const FLAGS = new Set(['--spread', '--define', '-a', '--manual', '--dry-run', '--force', '--keep-definition', '--defined', '--all', '--available']);
  const argv = fc
    .tuple(fc.constantFrom(...Object.keys(OPTIONS)), fc.array(fc.tuple(fc.nat(), value), { maxLength: 6 }), fc.boolean())
    .map(([cmd, opts, json]) => {
      const out = [cmd];
      for (const [i, v] of opts) {
        const o = OPTIONS[cmd]![i % OPTIONS[cmd]!.length]!;
        out.push(o);
        if (!FLAGS.has(o)) out.push(v);
      }
      if (json) out.push('-o', 'json');
      return out;
    });

  it('exit 0, 1 or 2, never an internal error or a stack trace, nothing written outside the mdev state', async () => {
    let host = await fixtureHost('p40-seed004');
    let runs = 0;
    const exits: Record<number, number> = {};
    const allowed = /^(sys\/|dev\/vfio\/|etc\/mdevctl\.d(\/|$)|run\/vgpuctl(\/|$)|run$)/;
    await check(
      'CLI argv',
      argv,
      async (args) => {
        if (++runs % 100 === 0) host = await fixtureHost('p40-seed004');
        const before = await snapshotTree(host.root);
        const r = await cli(['--root', host.root, '--simulate', ...args]);
        exits[r.code] = (exits[r.code] ?? 0) + 1;
        expect([0, 1, 2], `${JSON.stringify(args)}: ${r.stderr}`).toContain(r.code);
        expect(r.stderr, JSON.stringify(args)).not.toMatch(/internal error|\n\s+at /);
        if (r.code !== 0) expect(r.stderr, JSON.stringify(args)).toMatch(/^vgpuctl: error: /m);
        const after = await snapshotTree(host.root);
        const changed = [...new Set([...before.keys(), ...after.keys()])].filter((k) => before.get(k) !== after.get(k));
        const foreign = changed.filter((k) => !allowed.test(k));
        expect(foreign, `${JSON.stringify(args)} changed ${foreign.join(', ')}`).toEqual([]);
        if (r.code === 2) expect(changed, `${JSON.stringify(args)}: refused as bad input, yet changed the tree`).toEqual([]);
        expect(await fs.readdir(path.dirname(host.root))).toEqual(['root']);
      },
      Math.max(150, RUNS / 8),
    );
    console.log(`fuzz: CLI argv exit codes: ${Object.entries(exits).map(([c, n]) => `${n} x exit ${c}`).join(', ')}`);
  }, 120_000);
});
