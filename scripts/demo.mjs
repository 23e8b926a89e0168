#!/usr/bin/env node
// The main job on the embedded simulator: lay out the seed-004 P40 host in a temporary directory and
// run gpus, types and list on it, then create two vGPUs the way an operator would, and list again.
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const vgpuctl = path.join(here, '..', 'bin', 'vgpuctl');
const dir = mkdtempSync(path.join(os.tmpdir(), 'vgpuctl-demo-'));
const root = path.join(dir, 'p40');
const steps = [
  ['sim', 'init', 'p40-seed004', root],
  ['--root', root, 'gpus'],
  ['--root', root, 'types', '--profile', 'P40-12C'],
  ['--root', root, 'types'],
  ['--root', root, 'list', '--all'],
];
let failed = false;
try {
  for (const args of steps) {
    console.log(`\n$ vgpuctl ${args.join(' ')}`);
    const r = await execa(vgpuctl, args, { stdio: 'inherit', reject: false });
    if (r.exitCode !== 0) {
      failed = true;
      console.error(`demo: step failed with exit code ${r.exitCode}`);
      break;
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;
