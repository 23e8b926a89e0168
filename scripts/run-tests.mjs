#!/usr/bin/env node
// Runs the whole vitest suite and ends with one plain summary line, "vitest: N passed, N failed, N skipped",
// so that CI logs can be read at a glance. Exit code: vitest's, and non-zero when no test ran.
import { execa } from 'execa';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const dir = mkdtempSync(path.join(os.tmpdir(), 'vgpuctl-vitest-'));
const report = path.join(dir, 'report.json');
const run = await execa('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)], {
  stdio: 'inherit',
  reject: false,
});
let passed = 0;
let failed = 0;
let skipped = 0;
try {
  const r = JSON.parse(readFileSync(report, 'utf8'));
  passed = r.numPassedTests;
  failed = r.numFailedTests;
  skipped = r.numPendingTests + (r.numTodoTests ?? 0);
} catch {
  failed = Math.max(failed, 1);
}
rmSync(dir, { recursive: true, force: true });
console.log(`vitest: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exitCode = run.exitCode !== 0 ? run.exitCode || 1 : passed === 0 ? 1 : 0;
