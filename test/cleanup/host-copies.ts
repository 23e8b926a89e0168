/**
 * Laying out a large fixture (a100d-sriov-seed002: 40 VFs with 12 types each) is slow on a busy machine;
 * tests that need several fresh copies lay it out once and copy the tree (sysfs links are relative).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { HostRoot } from '../../src/host/host-root.js';
import { hostFrom, tempDir } from '../helpers/hosts.js';

const templates = new Map<string, Promise<string>>();

export async function freshCopyOf(fixture: string): Promise<HostRoot> {
  let template = templates.get(fixture);
  if (!template) {
    template = hostFrom(fixture).then((h) => h.root);
    templates.set(fixture, template);
  }
  const dst = path.join(tempDir(), 'root');
  await fs.cp(await template, dst, { recursive: true, verbatimSymlinks: true });
  return new HostRoot(dst);
}
