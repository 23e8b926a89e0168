/**
 * Concurrency, with the real CLI in child processes (bundled from src/, see buildCli):
 *   - 8 `create --profile P40-12C` runs at once on the P40 (room for 2): exactly 2 succeed, the others fail
 *     cleanly (exit 1, one sentence, no stack trace) and the tree holds exactly 2 devices;
 *   - `apply` and `cleanup --orphans` started together: neither removes a device the other just made;
 *   - a run killed with SIGKILL while holding the host lock: the next run takes the lock over with a
 *     warning, and several runs racing for the stale lock still change the host one at a time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostRoot } from '../../src/host/host-root.js';
import {
  LOCK,
  P40,
  U,
  activeDevices,
  buildCli,
  copyHost,
  fixtureHost,
  lexists,
  prng,
  readState,
  sim,
  spawnCli,
  writePlanFile,
  type ChildResult,
} from '../helpers/hardening.js';

/** The refusal once both instances are taken (the placement rule's sentence, or the driver's via the simulator). */
const NONE_LEFT = /^vgpuctl: error: no instances of P40-12C (\(nvidia-286\) )?left on 0000:82:00\.0: 2 of 2 in use; free one, or pick another GPU \(vgpuctl types --available\)\n$/;

let bin: string;
let p40: HostRoot;
const counts = { runs: 0, inconsistent: 0 };

beforeAll(async () => {
  [bin, p40] = await Promise.all([buildCli(), fixtureHost('p40-seed004')]);
}, 120_000);

afterAll(() => {
  console.log(`concurrency: ${counts.runs} child runs, ${counts.inconsistent} inconsistent`);
});

/** A clean failure: exit 1, exactly one line `vgpuctl: error: ...` and nothing else, no stack trace. */
function cleanFailure(r: ChildResult, sentence: RegExp): string[] {
  const out: string[] = [];
  if (r.code !== 1 || r.signal !== null) out.push(`exit ${r.code} signal ${r.signal}`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  if (lines.length !== 1 || !lines[0]!.startsWith('vgpuctl: error: ')) out.push(`not one error sentence: ${JSON.stringify(r.stderr)}`);
  if (/internal error|\n\s+at |Error:/.test(r.stderr.replace(/^vgpuctl: error: /, ''))) out.push(`stack trace or internal error: ${JSON.stringify(r.stderr)}`);
  if (!sentence.test(r.stderr)) out.push(`unexpected sentence: ${JSON.stringify(r.stderr)}`);
  if (r.stdout !== '') out.push(`stdout: ${JSON.stringify(r.stdout)}`);
  return out;
}

describe('8 parallel creates competing for the last 2 instances', () => {
  const ROUNDS = 3;
  it(`exactly 2 succeed, 6 fail with one sentence, the tree holds exactly 2 devices (${ROUNDS} rounds)`, async () => {
    const problems: string[] = [];
    let ok = 0;
    let refused = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const host = copyHost(p40);
      const results = await Promise.all(Array.from({ length: 8 }, () => spawnCli(bin, host, ['create', '--profile', 'P40-12C'])));
      counts.runs += results.length;
      const winners = results.filter((r) => r.code === 0);
      const losers = results.filter((r) => r.code !== 0);
      ok += winners.length;
      refused += losers.length;
      const round_: string[] = [];
      if (winners.length !== 2) round_.push(`${winners.length} succeeded: ${results.map((r) => r.stderr.trim()).join(' | ')}`);
      for (const w of winners) if (!/^[0-9a-f-]{36}\n$/.test(w.stdout) || w.stderr !== '') round_.push(`winner printed ${JSON.stringify(w.stdout)} ${JSON.stringify(w.stderr)}`);
      for (const l of losers) round_.push(...cleanFailure(l, NONE_LEFT));
      const active = await activeDevices(host);
      const made = winners.map((w) => `${w.stdout.trim()} ${P40} nvidia-286`).sort();
      if (JSON.stringify(active) !== JSON.stringify(made)) round_.push(`tree holds ${JSON.stringify(active)}, the winners printed ${JSON.stringify(made)}`);
      const avail = (await readState(host)).lock;
      if (avail) round_.push('lock left behind');
      const types = await sim(host, ['types', '--profile', 'P40-12C', '-o', 'json']);
      if (types.json().types[0].available_instances !== 0) round_.push(`available_instances ${types.json().types[0].available_instances}, not 0`);
      if (round_.length > 0) {
        counts.inconsistent++;
        problems.push(`round ${round}: ${round_.join('; ')}`);
      }
    }
    console.log(`concurrency: parallel create: ${ROUNDS} rounds x 8 runs: ${ok} succeeded, ${refused} refused cleanly, ${problems.length} inconsistent rounds`);
    expect(problems).toEqual([]);
    expect(ok).toBe(2 * ROUNDS);
  }, 120_000);
});

describe('apply and cleanup --orphans at the same time', () => {
  const PLAN = writePlanFile(`version: 1
gpus:
  - select: { address: "${P40}" }
    profile: P40-12C
    count: 2
`);
  const ROUNDS = 6;

  it(`neither removes a device the other just made (${ROUNDS} rounds, random start offsets)`, async () => {
    const rand = prng(11);
    const problems: string[] = [];
    const order = { adopted: 0, removedFirst: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const host = copyHost(p40);
      // An orphan: active, never defined, no VM: cleanup --orphans removes it, apply may adopt it.
      expect((await sim(host, ['create', '--profile', 'P40-12C', '-u', U[0]])).code).toBe(0);
      const delayApply = Math.floor(rand() * 250);
      const delayCleanup = Math.floor(rand() * 250);
      const later = (ms: number, f: () => Promise<ChildResult>) => new Promise<ChildResult>((resolve, reject) => setTimeout(() => f().then(resolve, reject), ms));
      const [apply, cleanup] = await Promise.all([
        later(delayApply, () => spawnCli(bin, host, ['apply', '-f', PLAN, '-o', 'json'])),
        later(delayCleanup, () => spawnCli(bin, host, ['cleanup', '--orphans', '--nvidia-smi', '/nonexistent/nvidia-smi', '-o', 'json'])),
      ]);
      counts.runs += 2;
      const p: string[] = [];
      if (apply.code !== 0) p.push(`apply exit ${apply.code}: ${apply.stderr}`);
      if (cleanup.code !== 0) p.push(`cleanup exit ${cleanup.code}: ${cleanup.stderr}`);
      if (p.length === 0) {
        const planned: string[] = JSON.parse(apply.stdout).devices.map((d: { uuid: string }) => d.uuid);
        const removedByCleanup: string[] = JSON.parse(cleanup.stdout)
          .findings.filter((f: { kind: string; resolution: string }) => f.kind === 'undefined-active-mdev' && f.resolution === 'removed')
          .map((f: { subject: string }) => f.subject);
        if (planned.includes(U[0])) order.adopted++;
        if (removedByCleanup.includes(U[0])) order.removedFirst++;
        const gone = planned.filter((u) => removedByCleanup.includes(u));
        if (gone.length > 0) p.push(`cleanup removed ${gone.join(', ')}, which apply made or adopted`);
        const active = (await activeDevices(host)).map((a) => a.split(' ')[0]);
        const missing = planned.filter((u) => !active.includes(u));
        if (missing.length > 0) p.push(`apply's devices ${missing.join(', ')} are gone`);
        const a = await sim(host, ['assert', '-f', PLAN]);
        if (a.code !== 0) p.push(`assert exits ${a.code}: ${a.stdout}`);
        if (active.length !== 2) p.push(`${active.length} devices active, not 2`);
        if (await lexists(host.path(LOCK))) p.push('lock left behind');
      }
      if (p.length > 0) {
        counts.inconsistent++;
        problems.push(`round ${round} (apply +${delayApply} ms, cleanup +${delayCleanup} ms): ${p.join('; ')}`);
      }
    }
    console.log(
      `concurrency: apply vs cleanup --orphans: ${ROUNDS} rounds (apply first, adopting the orphan: ${order.adopted}; cleanup first, removing it: ${order.removedFirst}), ${problems.length} inconsistent`,
    );
    expect(problems).toEqual([]);
  }, 120_000);
});

describe('a lock whose holder was killed with SIGKILL', () => {
  it('is taken over by the next run, with a warning naming the dead pid', async () => {
    const host = copyHost(p40);
    const killed = await spawnCli(bin, host, ['create', '--profile', 'P40-12C', '-u', U[0]], { env: { VGPUCTL_SIM_CRASH_AFTER: '1' } });
    counts.runs++;
    expect(killed.signal).toBe('SIGKILL');
    expect(await lexists(host.path(LOCK))).toBe(true);
    const next = await sim(host, ['create', '--profile', 'P40-12C', '-u', U[1], '--lock-timeout', '2']);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toMatch(
      new RegExp(
        `^vgpuctl: warning: took over the lock of vgpuctl pid ${killed.pid}, which is no longer running\n` +
          `vgpuctl: warning: a previous 'create' \\(pid ${killed.pid}, started [^)]+\\) was interrupted; rolled back: remove ${U[0]} \\(P40-12C on ${P40}\\)\n$`,
      ),
    );
    expect(next.stdout).toBe(`${U[1]}\n`);
    expect(await lexists(host.path(LOCK))).toBe(false);
    // The killed run made its device before it died; the next (other) command took it back first.
    expect(await activeDevices(host)).toEqual([`${U[1]} ${P40} nvidia-286`]);
  }, 60_000);

  it('four runs racing for the stale lock change the host one at a time: the killed run is rolled back once, then exactly the capacity succeeds', async () => {
    const host = copyHost(p40);
    const killed = await spawnCli(bin, host, ['create', '--profile', 'P40-12C', '-u', U[0]], { env: { VGPUCTL_SIM_CRASH_AFTER: '1' } });
    expect(killed.signal).toBe('SIGKILL');
    const results = await Promise.all(Array.from({ length: 4 }, () => spawnCli(bin, host, ['create', '--profile', 'P40-12C'])));
    counts.runs += 5;
    const winners = results.filter((r) => r.code === 0);
    // The first to take the lock rolls the killed create back (its device goes): both P40-12C slots are free.
    expect(winners.length, results.map((r) => r.stderr).join('|')).toBe(2);
    expect(results.filter((r) => /was interrupted; rolled back: remove /.test(r.stderr)).length).toBe(1);
    const takeovers = results.filter((r) => r.stderr.includes(`took over the lock of vgpuctl pid ${killed.pid}, which is no longer running`));
    expect(takeovers.length).toBeGreaterThanOrEqual(1);
    for (const r of results.filter((x) => x.code !== 0)) {
      const withoutWarning = { ...r, stderr: r.stderr.replace(/^vgpuctl: warning: (took over the lock|a previous 'create').*\n/gm, '') };
      expect(cleanFailure(withoutWarning, NONE_LEFT)).toEqual([]);
    }
    expect((await activeDevices(host)).length).toBe(2);
    expect(await activeDevices(host)).not.toContain(`${U[0]} ${P40} nvidia-286`);
    expect(await lexists(host.path(LOCK))).toBe(false);
  }, 60_000);
});
