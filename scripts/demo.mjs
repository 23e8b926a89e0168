#!/usr/bin/env node
// The main job on the embedded simulator: lay out the seed-004 P40 host in a temporary directory, look at
// it (gpus, types, list), split the P40 into two P40-12C vGPUs the way seed 004 wanted, show the rule that
// refuses a second type on the same GPU, and take one vGPU away again.
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const vgpuctl = path.join(here, '..', 'bin', 'vgpuctl');
const dir = mkdtempSync(path.join(os.tmpdir(), 'vgpuctl-demo-'));
const root = path.join(dir, 'p40');
const U1 = '334852fe-079b-11ee-9fc7-77463608f467';
const U2 = '3348556a-079b-11ee-9fc8-7fb0c612aedd';
const sim = ['--root', root, '--simulate'];
// [arguments, expected exit code]
const steps = [
  [['sim', 'init', 'p40-seed004', root], 0],
  [['--root', root, 'gpus'], 0],
  [['--root', root, 'types', '--profile', 'P40-12C'], 0],
  [[...sim, 'create', '--profile', 'P40-12C', '--count', '2', '-u', U1, U2, '--define', '--auto', '--dry-run'], 0],
  [[...sim, 'create', '--profile', 'P40-12C', '--count', '2', '-u', U1, U2, '--define', '--auto'], 0],
  [['--root', root, 'list', '--all'], 0],
  [[...sim, 'create', '--profile', 'P40-6Q'], 1],
  [[...sim, 'destroy', '-u', U2], 0],
  [['--root', root, 'types', '--available'], 0],
];
let failed = false;
try {
  for (const [args, expected] of steps) {
    console.log(`\n$ vgpuctl ${args.join(' ')}`);
    const r = await execa(vgpuctl, args, { stdio: 'inherit', reject: false });
    if (r.exitCode !== expected) {
      failed = true;
      console.error(`demo: expected exit code ${expected}, got ${r.exitCode}`);
      break;
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;
