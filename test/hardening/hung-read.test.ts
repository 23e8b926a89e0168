/**
 * A sysfs attribute whose read never answers (a stuck driver, modelled by src/simulator/hung.ts as a FIFO
 * nobody writes) must not hang vgpuctl: the real CLI in a child process ends within the limit
 * (VGPUCTL_READ_TIMEOUT) with one sentence naming the file, and the host is left as it was.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { plantHungAttribute, restoreAttribute } from '../../src/simulator/hung.js';
import { P40, U, buildCli, fixtureHost, readState, spawnCli, writePlanFile } from '../helpers/hardening.js';

const LIMIT_S = 1;
// The limit, the watchdog's tick and a slow shared machine's start-up; far below "forever".
const BOUND_MS = 10_000;
const TYPE_DIR = `/sys/class/mdev_bus/${P40}/mdev_supported_types/nvidia-286`;

let bin: string;
beforeAll(async () => {
  bin = await buildCli();
}, 120_000);

describe('a hung attribute read', () => {
  for (const [what, args] of [
    ['types (read only)', ['types', '-o', 'json']],
    ['create (changing)', ['create', '-u', U[0], '-p', P40, '-t', 'nvidia-286']],
    ['apply (changing)', ['apply', '-f', 'PLAN']],
  ] as const) {
    it(`${what}: ends within the limit naming the file, and changes nothing`, async () => {
      const host = await fixtureHost('p40-seed004');
      const before = await readState(host);
      const original = readFileSync(host.path(`${TYPE_DIR}/available_instances`), 'utf8');
      const hung = await plantHungAttribute(host, `${TYPE_DIR}/available_instances`);
      const started = Date.now();
      const argv = args.map((a) => (a === 'PLAN' ? writePlanFile('version: 1\ngpus:\n  - select: { board: P40 }\n    type: nvidia-286\n    count: 1\n') : a));
      const r = await spawnCli(bin, host, argv, { env: { VGPUCTL_READ_TIMEOUT: String(LIMIT_S) } });
      const elapsed = Date.now() - started;
      expect(elapsed).toBeLessThan(BOUND_MS);
      expect(elapsed).toBeGreaterThanOrEqual(LIMIT_S * 1000);
      expect(r.code === 0).toBe(false);
      expect(r.stderr).toContain(`vgpuctl: error: cannot read ${hung}: no answer within ${LIMIT_S} s`);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      const after = await readState(host);
      expect({ ...after, lock: false }).toEqual({ ...before, lock: false });
      // A lock the killed run held is stale (its pid is gone): the next run takes it over and works.
      restoreAttribute(host, hung, original);
      const next = await spawnCli(bin, host, ['create', '-u', U[1], '-p', P40, '-t', 'nvidia-286']);
      expect(next.stderr).not.toMatch(/internal error/);
      expect(next.code).toBe(0);
    }, 60_000);
  }

  it('an invalid VGPUCTL_READ_TIMEOUT is a usage error', async () => {
    const host = await fixtureHost('p40-seed004');
    const r = await spawnCli(bin, host, ['types'], { env: { VGPUCTL_READ_TIMEOUT: 'soon' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^vgpuctl: error: VGPUCTL_READ_TIMEOUT must be a number of seconds/);
  }, 60_000);
});
