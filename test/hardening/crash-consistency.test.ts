/**
 * Crash consistency: every multi-step command is killed with SIGKILL — right after each of its sysfs
 * writes in turn (VGPUCTL_SIM_CRASH_AFTER=k, k = 1..N) and at random moments after it took the host lock
 * (so also between and inside its file writes: definitions, unit files, the intent journal, the lock) —
 * and then run again, in-process. The commands: create --count 3 --define, destroy (device, definition,
 * boot unit and link), apply --prune, cleanup --orphans (seed 004's leftovers) and pci detach
 * (titanxp-seed001). After the kill:
 *   - no active device outside the ones before and the ones asked for ("leaked");
 *   - every definition file parses and holds either what it held before or what was asked ("lost");
 * after the re-run:
 *   - it is not blocked by the dead run's lock or journal (a stale lock is taken over with a warning);
 *   - idempotent commands (destroy, apply, cleanup, pci detach) succeed and reach exactly the state an
 *     uninterrupted run reaches (apply: `assert` exits 0); create, which is not idempotent, either
 *     succeeds or refuses cleanly because its UUIDs are in use — the state stays consistent either way.
 * A random kill can stop the simulated kernel itself half-way through a sysfs store, which a real kernel
 * never shows; torn-kernel.ts puts it back in a state a real kernel could be in first, and counts that.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostRoot } from '../../src/host/host-root.js';
import { isUuid } from '../../src/host/identifiers.js';
import {
  P40,
  U,
  buildCli,
  copyHost,
  definitionProblems,
  fixtureHost,
  pool,
  prng,
  putBootUnit,
  readState,
  sim,
  spawnCli,
  writePlanFile,
  writePoints,
  type TreeState,
} from './hardening-helpers.js';
import { settleTornMdevs, settleTornPci } from './torn-kernel.js';

const TITAN = ['0000:18:00.0', '0000:18:00.1'];

const APPLY_PLAN = writePlanFile(`version: 1
gpus:
  - select: { address: "${P40}" }
    profile: P40-12C
    count: 2
`);

interface CrashSpec {
  name: string;
  fixture: string;
  setup?: (host: HostRoot) => Promise<void>;
  args: string[];
  /** Random-moment kills on top of the N kill points. */
  random: number;
  /** create is not idempotent: a re-run may refuse (its UUIDs are in use). destroy may find nothing left. */
  rerunMayRefuse?: RegExp;
  /** A refused re-run still finds the state an uninterrupted run reaches (destroy: it was all done). */
  refusedMeansDone?: boolean;
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

const SPECS: CrashSpec[] = [
  {
    name: 'create --count 3 --define',
    fixture: 'p40-seed004',
    args: ['create', '--profile', 'P40-6Q', '--count', '3', '--define', '--auto', '-u', U[0], U[1], U[2]],
    random: 22,
    rerunMayRefuse: /^vgpuctl: error: UUID [0-9a-f-]{36} is already used by an active mdev \(nvidia-50 on 0000:82:00\.0\); choose another UUID$/m,
  },
  {
    name: 'destroy (device, definition, boot unit, wants link)',
    fixture: 'p40-seed004',
    setup: async (h) => {
      expect((await sim(h, ['create', '--profile', 'P40-6Q', '--count', '2', '--define', '--auto', '-u', U[0], U[1]])).code).toBe(0);
      await putBootUnit(h, U[0]);
    },
    args: ['destroy', '-u', U[0]],
    random: 19,
    rerunMayRefuse: new RegExp(`^vgpuctl: error: no mdev ${U[0]} on this host: not active, not defined, no boot unit`, 'm'),
    refusedMeansDone: true,
  },
  {
    name: 'apply --prune (4 x P40-6Q out, 2 x P40-12C in)',
    fixture: 'p40-seed004',
    setup: async (h) => {
      expect((await sim(h, ['create', '--profile', 'P40-6Q', '--count', '4', '--define', '--auto'])).code).toBe(0);
    },
    args: ['apply', '-f', APPLY_PLAN, '--prune'],
    random: 16,
    converged: async (h) => {
      const a = await sim(h, ['assert', '-f', APPLY_PLAN]);
      return a.code === 0 ? [] : [`assert exits ${a.code}: ${a.stdout}`];
    },
  },
  {
    name: 'cleanup --orphans (seed 004 leftovers)',
    fixture: 'leftovers',
    args: ['cleanup', '--orphans', '--nvidia-smi', '/nonexistent/nvidia-smi'],
    random: 19,
  },
  {
    name: 'pci detach gpupci1 (titanxp-seed001)',
    fixture: 'titanxp-seed001',
    args: ['pci', 'detach', 'gpupci1'],
    random: 14,
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
    `crash-consistency: ${totals.runs} kill -9 runs (${totals.killPoints} at VGPUCTL_SIM_CRASH_AFTER=k, ${totals.randomKills} at random moments; ` +
      `${totals.killed} killed, ${totals.finished} finished before the kill), ${totals.inconsistent} inconsistent after the re-run; ` +
      `lost: ${totals.lost}, leaked: ${totals.leaked}; torn simulated-kernel states repaired before judging: ${totals.torn}; ` +
      `temporary files a kill left that the re-run did not take away: ${totals.litter}`,
  );
});

/** Each definition file holds what it held before or what the command was asked to write. */
function foreignDefinitions(after: TreeState, before: TreeState, target: TreeState): string[] {
  return Object.entries(after.defs)
    .filter(([rel]) => isUuid(path.basename(rel)))
    .filter(([rel, text]) => text !== before.defs[rel] && text !== target.defs[rel])
    .map(([rel, text]) => `${rel} holds neither its old nor its new content: ${JSON.stringify(text.slice(0, 80))}`);
}

const tmpFiles = (s: TreeState) => Object.keys(s.defs).filter((rel) => !isUuid(path.basename(rel)));

describe('kill -9 at every sysfs write and at random moments, then run again', () => {
  for (const [specIndex, spec] of SPECS.entries()) {
    it(spec.name, async () => {
      const base = await fixtureHost(spec.fixture);
      await spec.setup?.(base);
      const before = await readState(base);
      const dry = await sim(copyHost(base), [...spec.args, '--dry-run', '-o', 'json']);
      expect(dry.code, dry.stderr).toBe(0);
      const n = writePoints(dry.json().actions).filter((w) => w.kind === 'sysfs-write').length;
      expect(n).toBeGreaterThan(0);
      const ref = copyHost(base);
      const refRun = await sim(ref, spec.args);
      expect(refRun.code, refRun.stderr).toBe(0);
      const target = await readState(ref);
      const targetPci = spec.pci ? await pciState(ref, spec.pci) : [];

      // How long the command works once it holds the lock: the range for the random kills.
      const probe = await spawnCli(bin, copyHost(base), spec.args, { killAfterMs: 60_000 });
      expect(probe.code, probe.stderr).toBe(0);
      const window = Math.max(15, (probe.afterLockMs ?? 30) * 1.3);

      const rand = prng(1000 + specIndex);
      const runs: Array<{ crashAfter?: number; killAfterMs?: number }> = [
        ...Array.from({ length: n }, (_, i) => ({ crashAfter: i + 1 })),
        ...Array.from({ length: spec.random }, () => ({ killAfterMs: Math.floor(rand() * window) })),
      ];
      let killed = 0;
      let torn = 0;
      const failures = (
        await pool(runs, 2, async (run) => {
          const host = copyHost(base);
          const child = await spawnCli(bin, host, spec.args, run.crashAfter ? { env: { VGPUCTL_SIM_CRASH_AFTER: String(run.crashAfter) } } : { killAfterMs: run.killAfterMs! });
          const label = run.crashAfter ? `crash after sysfs write ${run.crashAfter}/${n}` : `kill ${run.killAfterMs} ms after the lock`;
          const problems: string[] = [];
          if (child.signal === 'SIGKILL') killed++;
          else if (child.code !== 0) problems.push(`the run ended with ${child.code} before the kill: ${child.stderr}`);
          if (run.crashAfter && child.signal !== 'SIGKILL') problems.push('VGPUCTL_SIM_CRASH_AFTER did not kill it');

          const repaired = [...(await settleTornMdevs(host)), ...(spec.pci ? await settleTornPci(host, spec.pci) : [])];
          if (run.crashAfter && repaired.length > 0) problems.push(`a kill right after a completed write left the simulated kernel torn: ${repaired.join(', ')}`);
          torn += repaired.length;

          // Right after the kill.
          const after = await readState(host);
          const allowed = new Set([...before.active, ...target.active]);
          const leaked = after.active.filter((a) => !allowed.has(a));
          const lost = [...definitionProblems(after).filter((p) => !/temporary file/.test(p)), ...foreignDefinitions(after, before, target)];
          // A definition that was there before and is not asked to go must still be there.
          for (const rel of Object.keys(before.defs)) if (!(rel in after.defs) && rel in target.defs) lost.push(`${rel} vanished`);

          // The re-run.
          const again = await sim(host, spec.args);
          if (/another vgpuctl/.test(again.stderr)) problems.push(`the re-run is blocked by the dead run's lock: ${again.stderr}`);
          const refused = again.code !== 0 && spec.rerunMayRefuse !== undefined && spec.rerunMayRefuse.test(again.stderr);
          if (again.code !== 0 && !refused) problems.push(`re-run exits ${again.code}: ${again.stderr.trim()}`);
          if (again.code === 0 && child.signal === 'SIGKILL' && !/took over the lock of vgpuctl pid \d+, which is no longer running/.test(again.stderr) && after.lock) {
            problems.push(`the stale lock was taken over without a warning: ${JSON.stringify(again.stderr)}`);
          }
          const final = await readState(host);
          if (final.lock) problems.push('lock left after the re-run');
          if (final.journal) problems.push('journal left after the re-run');
          lost.push(...definitionProblems(final).filter((p) => !/temporary file/.test(p)));
          const leftTmp = tmpFiles(final);
          totals.litter += leftTmp.length;
          if (!refused || spec.refusedMeansDone) {
            for (const key of ['active', 'defs', 'units'] as const) {
              const f = key === 'defs' ? Object.fromEntries(Object.entries(final.defs).filter(([rel]) => isUuid(path.basename(rel)))) : final[key];
              if (JSON.stringify(f) !== JSON.stringify(target[key])) problems.push(`after the re-run ${key} differs from an uninterrupted run: ${JSON.stringify(f)}`);
            }
            if (spec.pci) {
              const ps = await pciState(host, spec.pci);
              if (JSON.stringify(ps) !== JSON.stringify(targetPci)) problems.push(`binding after the re-run ${JSON.stringify(ps)}, not ${JSON.stringify(targetPci)}`);
            }
            problems.push(...((await spec.converged?.(host)) ?? []));
          } else {
            // Refused: nothing of the refused run, and still consistent.
            const stray = final.active.filter((a) => !allowed.has(a));
            leaked.push(...stray.filter((a) => !leaked.includes(a)));
            lost.push(...foreignDefinitions(final, before, target));
          }
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
          `${killed} killed, ${failures.length} inconsistent, torn simulated-kernel states repaired: ${torn}`,
      );
      expect(failures).toEqual([]);
    }, 150_000);
  }
});
