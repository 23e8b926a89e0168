/**
 * Helpers for the plan tests: plans written to temporary files, host trees cloned from a laid-out fixture
 * (laying out is slow; a copy is not), the device state as `list --all` reports it, and the definition
 * files read straight from the tree.
 */
import { promises as fs, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { HostRoot } from '../../src/host/host-root.js';
import { SimulatedSysfsWriter } from '../../src/simulator/sim-writer.js';
import { cli, type CliResult } from '../helpers/cli.js';
import { tempDir } from '../helpers/hosts.js';
import { JOURNAL, LOCK, copyHost, lexists } from '../helpers/hardening.js';
import { isUuid } from '../../src/host/identifiers.js';

let planCounter = 0;

/** Writes a plan (inline YAML or any text) to a new temporary file and returns its path. */
export function writePlan(text: string, name = `plan-${++planCounter}.yaml`): string {
  const file = path.join(tempDir('vgpuctl-plan-'), name);
  writeFileSync(file, text);
  return file;
}

/** A byte-for-byte copy of a host tree (links kept as links) in a new temporary directory. */
export const cloneHost = copyHost;

/** `vgpuctl --root R --simulate ARGS...` in-process. */
export const sim = (host: HostRoot, ...args: string[]): Promise<CliResult> => cli(['--root', host.root, '--simulate', ...args]);

export interface DeviceRow {
  uuid: string;
  parent: string;
  type: string;
  active: boolean;
  defined: boolean;
  autostart: boolean;
}

/** Every device, active or defined, as `vgpuctl list --all -o json` reports it. */
export async function devices(host: HostRoot): Promise<DeviceRow[]> {
  const r = await cli(['--root', host.root, 'list', '--all', '-o', 'json']);
  expect(r.code, r.stderr).toBe(0);
  return r.json().devices.map((d: DeviceRow) => ({ uuid: d.uuid, parent: d.parent, type: d.type, active: d.active, defined: d.defined, autostart: d.autostart }));
}

/** UUIDs of the active devices, sorted. */
export async function activeUuids(host: HostRoot): Promise<string[]> {
  return (await devices(host)).filter((d) => d.active).map((d) => d.uuid).sort();
}

/** The host state two ways of reaching it should agree on: (parent, type, autostart) of active+defined devices, with counts. */
export async function shapeOfHost(host: HostRoot): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const d of await devices(host)) {
    const key = `${d.parent} ${d.type} ${d.active && d.defined ? (d.autostart ? 'auto' : 'manual') : d.active ? 'active-only' : 'defined-only'}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

/** Every file under etc/mdevctl.d (outside scripts.d), by path relative to the root, with its content. */
export async function definitionFiles(host: HostRoot): Promise<Map<string, string>> {
  const base = host.path('/etc/mdevctl.d');
  const out = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (path.relative(base, p) !== 'scripts.d') await walk(p);
      } else out.set(path.relative(host.root, p), await fs.readFile(p, 'utf8'));
    }
  };
  await walk(base);
  return out;
}

/** "Reboot": every active mdev goes away, as the kernel does it (1 written to each device's remove). */
export async function rebootHost(host: HostRoot): Promise<string[]> {
  const writer = new SimulatedSysfsWriter(host);
  const gone = await activeUuids(host);
  for (const uuid of gone) await writer.write(host.path(`/sys/bus/mdev/devices/${uuid}/remove`), '1');
  return gone;
}

export const exists = lexists;

/** Paths whose content differs between two snapshots (added, removed or changed): [] when identical. */
export function treeDiff(before: Map<string, string>, after: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of before) if (after.get(k) !== v) out.push(after.has(k) ? `changed ${k}` : `removed ${k}`);
  for (const k of after.keys()) if (!before.has(k)) out.push(`added ${k}`);
  return out.sort();
}

// Crash tests of apply (the child-process machinery is test/helpers/hardening.ts).

/** Counts sysfs writes a plan's apply would make (from --dry-run): the crash points k = 1..N. */
export async function sysfsWrites(host: HostRoot, args: string[]): Promise<number> {
  const r = await sim(host, 'apply', ...args, '--dry-run', '-o', 'json');
  expect(r.code, r.stderr).toBe(0);
  return r.json().actions.filter((a: { kind: string }) => a.kind === 'sysfs-write').length;
}

/**
 * After a crash: an ordinary apply (not killed) converges, and the host is sound — assert passes, lock and
 * journal are gone, every definition file is complete JSON under a UUID name, every planned device is
 * active and defined, nothing active that the plan does not hold (except `kept`, devices that were there
 * before and that the plan leaves alone), and a further apply has nothing to do.
 */
export async function recoverAndCheck(host: HostRoot, args: string[], kept: string[] = []): Promise<{ report: any; stderr: string; rows: DeviceRow[] }> {
  const r = await sim(host, 'apply', ...args, '-o', 'json');
  expect(r.code, `recovery apply failed: ${r.stderr}`).toBe(0);
  const report = r.json();

  const a = await sim(host, 'assert', ...args.filter((x) => x !== '--prune'));
  expect(a.code, `assert after recovery: ${a.stdout}${a.stderr}`).toBe(0);

  expect(await exists(host.path(LOCK)), 'stale lock left').toBe(false);
  expect(await exists(host.path(JOURNAL)), 'journal left').toBe(false);

  for (const [file, text] of await definitionFiles(host)) {
    expect(isUuid(path.basename(file)), `not a definition: ${file}`).toBe(true);
    let parsed: any;
    expect(() => (parsed = JSON.parse(text)), `${file} is not valid JSON: ${JSON.stringify(text)}`).not.toThrow();
    expect(Object.keys(parsed), file).toEqual(['mdev_type', 'start', 'attrs']);
  }

  const planned = new Map<string, any>(report.devices.map((d: any) => [d.uuid, d]));
  const rows = await devices(host);
  for (const [uuid, d] of planned) {
    const row = rows.find((x) => x.uuid === uuid);
    expect(row, `planned ${uuid} missing`).toMatchObject({ parent: d.parent, type: d.type, active: true, defined: true, autostart: d.autostart });
  }
  const strays = rows.filter((x) => x.active && !planned.has(x.uuid) && !kept.includes(x.uuid));
  expect(strays, 'active devices the plan does not hold').toEqual([]);

  const again = await sim(host, 'apply', ...args, '-o', 'json');
  expect(again.code).toBe(0);
  expect(again.json().changes).toEqual([]);
  return { report, stderr: r.stderr, rows };
}
