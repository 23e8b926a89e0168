/** Temporary host trees laid out from fixtures, removed after each test file. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, promises as fs, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { HostRoot } from '../../src/host/host-root.js';
import type { FixtureSpec } from '../../src/simulator/fixture-spec.js';
import { fixtureSpecSchema } from '../../src/simulator/fixture-spec.js';
import { layOutFixture, loadFixture } from '../../src/simulator/layout.js';

const made: string[] = [];
afterAll(async () => {
  for (const d of made.splice(0)) await fs.rm(d, { recursive: true, force: true });
});

export function tempDir(prefix = 'vgpuctl-test-'): string {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

/** Lays out a bundled fixture (by name) or an inline spec into a new temporary root. */
export async function hostFrom(fixture: string | Partial<FixtureSpec>): Promise<HostRoot> {
  const spec = typeof fixture === 'string' ? loadFixture(fixture) : fixtureSpecSchema.parse(fixture);
  return layOutFixture(spec, path.join(tempDir(), 'root'));
}

/** A byte-for-byte copy of a host tree (links, modes) in a new temporary directory. */
export function copyHost(host: HostRoot): HostRoot {
  const dest = path.join(tempDir(), 'root');
  execFileSync('cp', ['-a', '--', host.root, dest]);
  return new HostRoot(dest);
}

const templates = new Map<string, Promise<string>>();

/**
 * A fresh host tree of a bundled fixture: laid out once per test file, then copied for each test (laying
 * out the SR-IOV fixtures takes seconds; a copy is exact, links and modes included).
 */
export async function fixtureCopy(fixture: string): Promise<HostRoot> {
  let template = templates.get(fixture);
  if (!template) {
    template = hostFrom(fixture).then((h) => h.root);
    templates.set(fixture, template);
  }
  return copyHost(new HostRoot(await template));
}

/** Every file, link and its content or target under a root: to assert that nothing changed. */
export async function snapshotTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const e of await fs.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      const rel = path.relative(root, p);
      if (e.isSymbolicLink()) out.set(rel, `-> ${await fs.readlink(p)}`);
      else if (e.isDirectory()) {
        out.set(rel, 'dir');
        await walk(p);
      } else out.set(rel, await fs.readFile(p, 'utf8'));
    }
  };
  await walk(root);
  return out;
}

/** A plan file with this text in a fresh temporary directory; returns its path. */
export function writePlanFile(text: string): string {
  const file = path.join(tempDir('vgpuctl-plan-'), 'plan.yaml');
  writeFileSync(file, text);
  return file;
}
