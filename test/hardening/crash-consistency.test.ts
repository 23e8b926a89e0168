/**
 * Crash consistency: every multi-step command is killed with SIGKILL — right after each of its steps in
 * turn (VGPUCTL_SIM_CRASH_AFTER=step:k, k = 1..N: a lifecycle command's intent record, then every action:
 * sysfs writes, definition files written or removed, boot units) and at random moments after it took the
 * host lock (so also inside its file writes) — and then run again ONCE, in-process. The commands: create
 * (with and without --define, with --count N, with given and with generated UUIDs), define (new and
 * --force over an existing one), modify, destroy (device, definition, boot unit and link), apply --prune,
 * cleanup --orphans (seed 004's leftovers) and pci detach (titanxp-seed001); on vendor-VFIO hosts
 * (l40s-vfio, mixed-mdev-vfio) create --count N (with and without --define), define, modify, destroy, their
 * rollback by another command, and apply --prune of a plan with both kinds of GPU. A vendor vGPU counts as
 * an active device ("handle VF nvidia-ID"), /etc/vgpuctl/vendor-vgpus.json as a definition file. After the kill:
 *   - no active device outside the ones before and the ones asked for ("leaked");
 *   - every definition file parses and holds either what it held before or what was asked ("lost");
 * after the ONE re-run of the same command:
 *   - it exits 0, is not blocked by the dead run's lock, journal or intent record (a stale lock is taken
 *     over with a warning; the record is finished: a create takes over the devices the dead run made);
 *   - the state is exactly the one an uninterrupted run reaches (active devices, definitions, boot units;
 *     with generated UUIDs, the same devices and definitions up to the UUIDs, each device defined), and no
 *     lock, journal or intent record is left.
 * And when the next command is another one (a define of another device after a killed create --define),
 * the killed run is rolled back first: the state is the one before plus that other command, nothing else.
 * A random kill can stop the simulated kernel itself half-way through a sysfs store, which a real kernel
 * never shows; settleTornMdevs/settleTornPci (test/helpers/hardening.ts) put it back in a state a real
 * kernel could be in first, and count that.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostRoot } from '../../src/host/host-root.js';
import { isUuid } from '../../src/host/identifiers.js';
import { parseVendorDefinitions, VENDOR_STATE_PATH } from '../../src/vendor-vfio/state.js';
import { canRunMdevctlOracle } from '../helpers/tools.js';
import {
  P40,
  U,
  buildCli,
  INTENT,
  copyHost,
  definitionProblems,
  fixtureHost,
  pool,
  prng,
  putBootUnit,
  readState,
  settleTornMdevs,
  settleTornPci,
  sim,
  spawnCli,
  writePlanFile,
  type TreeState,
  P40_12C_PLAN_TEXT,
} from '../helpers/hardening.js';
import { MIXED_PLAN_TEXT } from '../vendor-vfio/mixed-plan.js';


const TITAN = ['0000:18:00.0', '0000:18:00.1'];
/** The first VFs of l40s-vfio and mixed-mdev-vfio (0000:41:00.4 ..). */
const VF = Array.from({ length: 16 }, (_, i) => `0000:41:${String(Math.floor((i + 4) / 8)).padStart(2, '0')}.${(i + 4) % 8}`);

const APPLY_PLAN = writePlanFile(P40_12C_PLAN_TEXT);

const MIXED_PLAN = writePlanFile(MIXED_PLAN_TEXT);

interface CrashSpec {
  name: string;
  fixture: string;
  setup?: (host: HostRoot) => Promise<void>;
  args: string[];
  /** Random-moment kills on top of the N kill points. */
  random: number;
  /** A lifecycle command (runOperation): its first step is the intent record. */
  intent?: boolean;
  /** The command generates UUIDs: states are compared up to the new UUIDs. */
  generated?: boolean;
  /** Instead of re-running the command, run this other one: the killed run must be rolled back first. */
  next?: string[];
  /** PCI functions whose binding the command changes (pci detach). */
  pci?: string[];
  converged?: (host: HostRoot) => Promise<string[]>;
}

async function pciState(host: HostRoot, addrs: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const a of addrs) {
    const drv = await fs.readlink(host.path(`/sys/bus/pci/devices/${a}/driver`)).catch(() => null);
    const override = await fs.readFile(host.path(`/sys/bus/pci/devices/${a}/driver_override`), 'utf8').catch(() => '-');
    out.push(`${a} driver=${drv === null ? '-' : path.basename(drv)} override=${override.trim()}`);
  }
  return out;
}

const defined = (h: HostRoot, ...args: string[]) => async () => {
  const r = await sim(h, args);
  expect(r.code, r.stderr).toBe(0);
};

// mdevctl runs in a chroot of the tree (root, unshare): where it cannot, those specs are left out, said on stderr.
const canRunMdevctl = canRunMdevctlOracle();

const SPECS: CrashSpec[] = [
  {
    name: 'create --count 3 --define --auto -u U0 U1 U2',
    fixture: 'p40-seed004',
    args: ['create', '--profile', 'P40-6Q', '--count', '3', '--define', '--auto', '-u', U[0], U[1], U[2]],
    random: 12,
    intent: true,
  },
  {
    name: 'create --count 2 -u U0 U1 (no --define)',
    fixture: 'p40-seed004',
    args: ['create', '-t', 'nvidia-50', '-p', P40, '--count', '2', '-u', U[0], U[1]],
    random: 8,
    intent: true,
  },
  {
    name: 'create --count 3 --define (generated UUIDs)',
    fixture: 'p40-seed004',
    args: ['create', '--profile', 'P40-6Q', '--count', '3', '--define'],
    random: 12,
    intent: true,
    generated: true,
  },
  {
    name: 'create -u U0 --define (one device)',
    fixture: 'p40-seed004',
    args: ['create', '-t', 'nvidia-286', '-p', P40, '-u', U[0], '--define', '--auto'],
    random: 6,
    intent: true,
  },
  {
    name: 'define -u U0 (new definition)',
    fixture: 'p40-seed004',
    args: ['define', '-u', U[0], '-p', P40, '-t', 'nvidia-50', '--auto'],
    random: 6,
    intent: true,
  },
  {
    name: 'define --force (replacing a definition of an active device)',
    fixture: 'p40-seed004',
    setup: async (h) => defined(h, 'create', '-t', 'nvidia-50', '-p', P40, '-u', U[0], U[1], '--count', '2', '--define')(),
    args: ['define', '-u', U[0], '--auto', '--force'],
    random: 6,
    intent: true,
  },
  {
    name: 'modify --manual',
    fixture: 'p40-seed004',
    setup: async (h) => defined(h, 'create', '--profile', 'P40-6Q', '--count', '2', '--define', '--auto', '-u', U[0], U[1])(),
    args: ['modify', '-u', U[0], '--manual'],
    random: 6,
    intent: true,
  },
  {
    name: 'destroy (device, definition, boot unit, wants link)',
    fixture: 'p40-seed004',
    setup: async (h) => {
      await defined(h, 'create', '--profile', 'P40-6Q', '--count', '2', '--define', '--auto', '-u', U[0], U[1])();
      await putBootUnit(h, U[0]);
    },
    args: ['destroy', '-u', U[0]],
    random: 10,
    intent: true,
  },
  {
    name: 'create --count 3 --define killed, then another command (define of another device): rolled back first',
    fixture: 'p40-seed004',
    args: ['create', '--profile', 'P40-6Q', '--count', '3', '--define', '--auto', '-u', U[0], U[1], U[2]],
    next: ['define', '-u', U[4], '-p', P40, '-t', 'nvidia-286'],
    random: 8,
    intent: true,
  },
  {
    name: 'create --count 3 (generated) killed, then another command (create of another device): rolled back first',
    fixture: 'p40-seed004',
    args: ['create', '--profile', 'P40-6Q', '--count', '3', '--define'],
    next: ['create', '-t', 'nvidia-50', '-p', P40, '-u', U[4]],
    random: 6,
    intent: true,
    generated: true,
  },
  // The mdevctl backend: each mdevctl run is a step; define --force is mdevctl undefine, then mdevctl define.
  ...(canRunMdevctl
    ? ([
        {
          name: '--backend mdevctl: create --count 2 --define --auto -u U0 U1',
          fixture: 'p40-seed004',
          args: ['create', '--profile', 'P40-6Q', '--count', '2', '--define', '--auto', '-u', U[0], U[1], '--backend', 'mdevctl'],
          random: 4,
          intent: true,
        },
        {
          name: '--backend mdevctl: define --force (undefine, then define)',
          fixture: 'p40-seed004',
          setup: async (h) => defined(h, 'define', '-u', U[0], '-p', P40, '-t', 'nvidia-50')(),
          args: ['define', '-u', U[0], '-p', P40, '-t', 'nvidia-286', '--auto', '--force', '--backend', 'mdevctl'],
          random: 4,
          intent: true,
        },
        {
          name: '--backend mdevctl: define --force killed, then another command: the old definition comes back',
          fixture: 'p40-seed004',
          setup: async (h) => defined(h, 'define', '-u', U[0], '-p', P40, '-t', 'nvidia-50')(),
          args: ['define', '-u', U[0], '-p', P40, '-t', 'nvidia-286', '--auto', '--force', '--backend', 'mdevctl'],
          next: ['create', '-t', 'nvidia-50', '-p', P40, '-u', U[3]],
          random: 4,
          intent: true,
        },
      ] satisfies CrashSpec[])
    : []),
  // vendor-VFIO (l40s-vfio: 32 VFs 0000:41:00.4 ..): current_vgpu_type writes and /etc/vgpuctl/vendor-vgpus.json.
  {
    name: 'vendor: create --profile L40S-4Q --count 3 (l40s-vfio)',
    fixture: 'l40s-vfio',
    args: ['create', '--profile', 'L40S-4Q', '--count', '3'],
    random: 8,
    intent: true,
  },
  {
    name: 'vendor: create --count 3 --define --auto (l40s-vfio)',
    fixture: 'l40s-vfio',
    setup: async (h) => defined(h, 'create', '--profile', 'L40S-4Q', '-p', VF[10]!, '--define')(),
    args: ['create', '--profile', 'L40S-4Q', '--count', '3', '--define', '--auto'],
    random: 10,
    intent: true,
  },
  {
    name: 'vendor: define -u VF (an active vGPU, beside another definition)',
    fixture: 'l40s-vfio',
    setup: async (h) => {
      await defined(h, 'create', '--profile', 'L40S-4Q', '--count', '2', '--define')();
      await defined(h, 'create', '--profile', 'L40S-4Q', '-p', VF[2]!)();
    },
    args: ['define', '-u', VF[2]!, '--auto'],
    random: 6,
    intent: true,
  },
  {
    name: 'vendor: modify -u VF --manual',
    fixture: 'l40s-vfio',
    setup: async (h) => defined(h, 'create', '--profile', 'L40S-4Q', '--count', '2', '--define', '--auto')(),
    args: ['modify', '-u', VF[0]!, '--manual'],
    random: 6,
    intent: true,
  },
  {
    name: 'vendor: destroy -u VF (vGPU and its definition)',
    fixture: 'l40s-vfio',
    setup: async (h) => defined(h, 'create', '--profile', 'L40S-4Q', '--count', '2', '--define', '--auto')(),
    args: ['destroy', '-u', VF[0]!],
    random: 6,
    intent: true,
  },
  {
    name: 'vendor: create --count 3 --define killed, then another command (define of another VF): rolled back first',
    fixture: 'l40s-vfio',
    setup: async (h) => defined(h, 'create', '--profile', 'L40S-4Q', '-p', VF[10]!, '--define')(),
    args: ['create', '--profile', 'L40S-4Q', '--count', '3', '--define', '--auto'],
    next: ['define', '-u', VF[12]!, '-t', 'nvidia-1150'],
    random: 8,
    intent: true,
  },
  {
    name: 'vendor: define killed, then another command (create of another VF): vendor-vgpus.json put back byte for byte',
    fixture: 'l40s-vfio',
    setup: async (h) => {
      await defined(h, 'create', '--profile', 'L40S-4Q', '--count', '2', '--define')();
      await defined(h, 'create', '--profile', 'L40S-4Q', '-p', VF[2]!)();
    },
    args: ['define', '-u', VF[2]!, '--auto'],
    next: ['create', '--profile', 'L40S-4Q', '-p', VF[3]!],
    random: 6,
    intent: true,
  },
  {
    name: 'vendor: create --count 3 killed, then an mdev command on mixed-mdev-vfio: the VFs it set are emptied first',
    fixture: 'mixed-mdev-vfio',
    args: ['create', '--profile', 'L40S-4Q', '--count', '3'],
    next: ['create', '-t', 'nvidia-50', '-p', P40, '-u', U[4]],
    random: 6,
    intent: true,
  },
  {
    name: 'apply --prune (4 x P40-6Q out, 2 x P40-12C in)',
    fixture: 'p40-seed004',
    setup: async (h) => defined(h, 'create', '--profile', 'P40-6Q', '--count', '4', '--define', '--auto')(),
    args: ['apply', '-f', APPLY_PLAN, '--prune'],
    random: 12,
    converged: async (h) => {
      const a = await sim(h, ['assert', '-f', APPLY_PLAN]);
      return a.code === 0 ? [] : [`assert exits ${a.code}: ${a.stdout}`];
    },
  },
  {
    name: 'apply --prune on mixed-mdev-vfio (2 x P40-6Q and 2 x L40S-4Q out; 2 x P40-12C and 3 x L40S-8Q in, defined)',
    fixture: 'mixed-mdev-vfio',
    setup: async (h) => {
      await defined(h, 'create', '--profile', 'P40-6Q', '--count', '2', '--define', '--auto')();
      await defined(h, 'create', '--profile', 'L40S-4Q', '--count', '2', '--define', '--auto')();
    },
    args: ['apply', '-f', MIXED_PLAN, '--prune'],
    random: 12,
    converged: async (h) => {
      const a = await sim(h, ['assert', '-f', MIXED_PLAN]);
      return a.code === 0 ? [] : [`assert exits ${a.code}: ${a.stdout}`];
    },
  },
  {
    name: 'cleanup --orphans (seed 004 leftovers)',
    fixture: 'leftovers',
    args: ['cleanup', '--orphans', '--nvidia-smi', '/nonexistent/nvidia-smi'],
    random: 12,
  },
  {
    name: 'pci detach gpupci1 (titanxp-seed001)',
    fixture: 'titanxp-seed001',
    args: ['pci', 'detach', 'gpupci1'],
    random: 10,
    pci: TITAN,
  },
];

const totals = { runs: 0, killPoints: 0, randomKills: 0, killed: 0, finished: 0, inconsistent: 0, lost: 0, leaked: 0, torn: 0, litter: 0 };
let bin: string;

beforeAll(async () => {
  bin = await buildCli();
}, 120_000);

afterAll(() => {
  console.log(
    `crash-consistency: ${totals.runs} kill -9 runs (${totals.killPoints} at VGPUCTL_SIM_CRASH_AFTER=step:k, ${totals.randomKills} at random moments; ` +
      `${totals.killed} killed, ${totals.finished} finished before the kill), ${totals.inconsistent} inconsistent after ONE re-run; ` +
      `lost: ${totals.lost}, leaked: ${totals.leaked}; torn simulated-kernel states repaired before judging: ${totals.torn}; ` +
      `temporary files a kill left that the re-run did not take away: ${totals.litter}`,
  );
});

const UUID_G = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/** A state up to the UUIDs a run generated: every UUID not in `known` reads NEW. */
function canon(s: TreeState, known: Set<string>): { active: string[]; defs: string[]; units: string[] } {
  const c = (x: string) => x.replace(UUID_G, (u) => (known.has(u) ? u : 'NEW'));
  const entries = (r: Record<string, string>) => Object.entries(r).map(([k, v]) => `${c(k)} ${c(v)}`).sort();
  return {
    active: s.active.map(c).sort(),
    defs: entries(Object.fromEntries(Object.entries(s.defs).filter(([rel]) => isUuid(path.basename(rel))))),
    units: entries(s.units),
  };
}

/** The entries of `part` that are not in the multiset `whole`. */
function notWithin(part: string[], whole: string[]): string[] {
  const left = [...whole];
  return part.filter((x) => {
    const i = left.indexOf(x);
    if (i < 0) return true;
    left.splice(i, 1);
    return false;
  });
}

/** Each definition file holds what it held before or what the command was asked to write. */
function foreignDefinitions(after: TreeState, before: TreeState, target: TreeState, known: Set<string> | null): string[] {
  const targetCanon = known ? canon(target, known).defs : [];
  return Object.entries(after.defs)
    .filter(([rel]) => isUuid(path.basename(rel)))
    .filter(([rel, text]) => text !== before.defs[rel] && text !== target.defs[rel])
    .filter(([rel, text]) => !(known && !known.has(path.basename(rel)) && targetCanon.includes(canon({ ...after, active: [], units: {}, defs: { [rel]: text } }, known).defs[0]!)))
    .map(([rel, text]) => `${rel} holds neither its old nor its new content: ${JSON.stringify(text.slice(0, 80))}`);
}

/** How `s` differs from `t` in active devices, definitions and boot units (up to new UUIDs when `known` is given). */
function differences(s: TreeState, t: TreeState, known: Set<string> | null): string[] {
  const out: string[] = [];
  if (known) {
    const f = canon(s, known);
    const c = canon(t, known);
    for (const key of ['active', 'defs', 'units'] as const) {
      if (JSON.stringify(f[key]) !== JSON.stringify(c[key])) out.push(`${key} differs from an uninterrupted run (up to new UUIDs): ${JSON.stringify(f[key])}`);
    }
    // Each new device is the one its new definition describes.
    const newActive = s.active.map((a) => a.split(' ')[0]!).filter((u) => !known.has(u)).sort();
    const newDefs = Object.keys(s.defs).map((r) => path.basename(r)).filter((u) => isUuid(u) && !known.has(u)).sort();
    if (c.defs.some((d) => d.includes('NEW')) && JSON.stringify(newActive) !== JSON.stringify(newDefs)) out.push(`new devices ${newActive.join(',')} and new definitions ${newDefs.join(',')} differ`);
    if (s.vendorDefs !== t.vendorDefs) out.push(`${VENDOR_STATE_PATH} differs from an uninterrupted run: ${JSON.stringify(s.vendorDefs)}`);
    return out;
  }
  if (s.vendorDefs !== t.vendorDefs) out.push(`${VENDOR_STATE_PATH} differs from an uninterrupted run: ${JSON.stringify(s.vendorDefs)}`);
  for (const key of ['active', 'defs', 'units'] as const) {
    const f = key === 'defs' ? Object.fromEntries(Object.entries(s.defs).filter(([rel]) => isUuid(path.basename(rel)))) : s[key];
    if (JSON.stringify(f) !== JSON.stringify(t[key])) out.push(`${key} differs from an uninterrupted run: ${JSON.stringify(f)}`);
  }
  return out;
}

const tmpFiles = (s: TreeState) => Object.keys(s.defs).filter((rel) => !isUuid(path.basename(rel)));

/** vendor-vgpus.json must be whole and hold what it held before or what a complete run writes (`also`: or this). */
function vendorDefinitionProblems(after: TreeState, before: TreeState, full: TreeState, also: TreeState | null): string[] {
  const text = after.vendorDefs;
  if (text === null) return before.vendorDefs === null || full.vendorDefs === null ? [] : [`${VENDOR_STATE_PATH} vanished`];
  if (parseVendorDefinitions(text) === null) return [`${VENDOR_STATE_PATH} does not parse: ${JSON.stringify(text.slice(0, 80))}`];
  return [before.vendorDefs, full.vendorDefs, also?.vendorDefs].includes(text) ? [] : [`${VENDOR_STATE_PATH} holds neither its old nor its new content: ${JSON.stringify(text)}`];
}

/** Temporary files of the vendor definitions write under /etc/vgpuctl. */
const vendorTmpFiles = async (host: HostRoot): Promise<string[]> =>
  (await fs.readdir(host.path(path.posix.dirname(VENDOR_STATE_PATH))).catch(() => [] as string[])).filter((n) => /\.tmp$/.test(n)).map((n) => `etc/vgpuctl/${n}`);

describe('kill -9 at every step and at random moments, then run again once', () => {
  for (const [specIndex, spec] of SPECS.entries()) {
    it(spec.name, async () => {
      const base = await fixtureHost(spec.fixture);
      await spec.setup?.(base);
      const before = await readState(base);
      const dry = await sim(copyHost(base), [...spec.args, '--dry-run', '-o', 'json']);
      expect(dry.code, dry.stderr).toBe(0);
      const n = (spec.intent ? 1 : 0) + (dry.json().actions as unknown[]).length; // each action is a step
      expect(n).toBeGreaterThan(1);
      // The state one uninterrupted run reaches (or, with `next`, the state before plus the other command).
      const ref = copyHost(base);
      const refRun = await sim(ref, spec.next ?? spec.args);
      expect(refRun.code, refRun.stderr).toBe(0);
      const target = await readState(ref);
      const targetPci = spec.pci ? await pciState(ref, spec.pci) : [];
      const known = spec.generated ? new Set([...before.active.join(' ').match(UUID_G) ?? [], ...Object.keys(before.defs).map((r) => path.basename(r)), ...U]) : null;
      // With `next`, the killed run may have made anything of its own request before the kill.
      const fullHost = copyHost(base);
      expect((await sim(fullHost, spec.args)).code).toBe(0);
      const full = await readState(fullHost);
      // With `next` after a run that had finished before the kill: the other command on top of it.
      let fullNext: TreeState | null = null;
      if (spec.next) {
        expect((await sim(fullHost, spec.next)).code).toBe(0);
        fullNext = await readState(fullHost);
      }

      // How long the command works once it holds the lock: the range for the random kills.
      const probe = await spawnCli(bin, copyHost(base), spec.args, { killAfterMs: 60_000 });
      expect(probe.code, probe.stderr).toBe(0);
      const window = Math.max(15, (probe.afterLockMs ?? 30) * 1.3);

      const rand = prng(1000 + specIndex);
      const runs: Array<{ step?: number; killAfterMs?: number }> = [
        ...Array.from({ length: n }, (_, i) => ({ step: i + 1 })),
        ...Array.from({ length: spec.random }, () => ({ killAfterMs: Math.floor(rand() * window) })),
      ];
      let killed = 0;
      let torn = 0;
      let completed = 0;
      const failures = (
        await pool(runs, 2, async (run) => {
          const host = copyHost(base);
          const child = await spawnCli(bin, host, spec.args, run.step ? { env: { VGPUCTL_SIM_CRASH_AFTER: `step:${run.step}` } } : { killAfterMs: run.killAfterMs! });
          const label = run.step ? `crash after step ${run.step}/${n}` : `kill ${run.killAfterMs} ms after the lock`;
          const problems: string[] = [];
          if (child.signal === 'SIGKILL') killed++;
          else if (child.code !== 0) problems.push(`the run ended with ${child.code} before the kill: ${child.stderr}`);
          if (run.step && child.signal !== 'SIGKILL') problems.push('VGPUCTL_SIM_CRASH_AFTER did not kill it');

          const repaired = [...(await settleTornMdevs(host)), ...(spec.pci ? await settleTornPci(host, spec.pci) : [])];
          if (run.step && repaired.length > 0) problems.push(`a kill right after a completed step left the simulated kernel torn: ${repaired.join(', ')}`);
          torn += repaired.length;

          // Right after the kill.
          const after = await readState(host);
          const leaked = known
            ? notWithin(canon(after, known).active, canon(full, known).active)
            : after.active.filter((a) => !new Set([...before.active, ...full.active]).has(a));
          const lost = [...definitionProblems(after).filter((p) => !/temporary file/.test(p)), ...foreignDefinitions(after, before, full, known), ...vendorDefinitionProblems(after, before, full, null)];
          // A definition that was there before and is not asked to go must still be there — or, while the
          // killed run replaced it (mdevctl undefine, then define), be in its intent record, byte for byte,
          // for the next run to put back (checked after that run below).
          const record = after.intent ? (JSON.parse(await fs.readFile(host.path(INTENT), 'utf8')) as { files: Array<{ file: string; before: string | null }> }) : null;
          const recorded = (rel: string) => record?.files.some((f) => f.file === `/${rel}` && f.before === before.defs[rel]) ?? false;
          for (const rel of Object.keys(before.defs)) if (!(rel in after.defs) && rel in full.defs && !recorded(rel)) lost.push(`${rel} vanished`);

          // Finished before the kill came (or killed after its record was removed, before it exited): nothing is
          // interrupted, and running the same command again is a new request (a create of the same UUIDs is
          // refused as in use, one with generated UUIDs makes more) — so it is judged right here, without a re-run.
          // (Only create, define and destroy, whose re-run after success is refused: the others are idempotent
          // and are re-run whatever happened.)
          const finished = ['create', 'define', 'destroy'].includes(spec.args[0]!) && (child.signal === 'SIGKILL' || child.code === 0) && !after.intent && !after.journal && differences(after, full, known).length === 0;
          if (finished) completed++;
          if (finished && !spec.next) {
            totals.lost += lost.length;
            totals.leaked += leaked.length;
            problems.push(...leaked.map((x) => `leaked: ${x}`), ...lost.map((x) => `lost: ${x}`));
            return problems.length > 0 ? `${label}:\n    ${problems.join('\n    ')}` : null;
          }

          // ONE re-run (or the other command).
          const again = await sim(host, spec.next ?? spec.args);
          if (/another vgpuctl/.test(again.stderr)) problems.push(`the re-run is blocked by the dead run's lock: ${again.stderr}`);
          if (again.code !== 0) problems.push(`re-run exits ${again.code}: ${again.stderr.trim()}`);
          if (again.code === 0 && child.signal === 'SIGKILL' && !/took over the lock of vgpuctl pid \d+, which is no longer running/.test(again.stderr) && after.lock) {
            problems.push(`the stale lock was taken over without a warning: ${JSON.stringify(again.stderr)}`);
          }
          if (spec.next && after.intent && !/was interrupted; (rolled back|nothing of it was left)/.test(again.stderr)) problems.push(`the other command did not say it rolled back: ${JSON.stringify(again.stderr)}`);
          const final = await readState(host);
          if (final.lock) problems.push('lock left after the re-run');
          if (final.journal) problems.push('journal left after the re-run');
          if (final.intent) problems.push('intent record left after the re-run');
          lost.push(...definitionProblems(final).filter((p) => !/temporary file/.test(p)), ...vendorDefinitionProblems(final, before, full, finished && fullNext ? fullNext : target));
          const leftTmp = [...tmpFiles(final), ...(await vendorTmpFiles(host))];
          totals.litter += leftTmp.length;
          if (leftTmp.length > 0) problems.push(`temporary files left after the re-run: ${leftTmp.join(', ')}`);
          problems.push(...differences(final, finished && fullNext ? fullNext : target, known).map((d) => `after the re-run ${d}`));
          if (spec.pci) {
            const ps = await pciState(host, spec.pci);
            if (JSON.stringify(ps) !== JSON.stringify(targetPci)) problems.push(`binding after the re-run ${JSON.stringify(ps)}, not ${JSON.stringify(targetPci)}`);
          }
          problems.push(...((await spec.converged?.(host)) ?? []));
          totals.lost += lost.length;
          totals.leaked += leaked.length;
          problems.push(...leaked.map((x) => `leaked: ${x}`), ...lost.map((x) => `lost: ${x}`));
          return problems.length > 0 ? `${label}:\n    ${problems.join('\n    ')}` : null;
        })
      ).filter((x): x is string => x !== null);

      totals.runs += runs.length;
      totals.killPoints += n;
      totals.randomKills += spec.random;
      totals.killed += killed;
      totals.finished += runs.length - killed;
      totals.torn += torn;
      totals.inconsistent += failures.length;
      console.log(
        `crash-consistency: ${spec.name}: ${n} kill points + ${spec.random} random kills (0-${Math.round(window)} ms after the lock) = ${runs.length} runs, ` +
          `${killed} killed, ${completed} had finished their work before the kill (judged without a re-run), ${failures.length} inconsistent after one ${spec.next ? 'other command' : 're-run'}, torn simulated-kernel states repaired: ${torn}`,
      );
      expect(failures).toEqual([]);
    }, 240_000);
  }
});
