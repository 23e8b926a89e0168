/**
 * A hung nvidia-smi (a wedged driver) must not hang cron: the health check that asks it ends UNKNOWN
 * within its limit while the other checks are still reported, and cleanup reports nvidia-smi as
 * unavailable. The fake is a shell whose child sleeps: the limit has to end the child too.
 */
import { readFileSync, writeFileSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, tempDir } from '../helpers/hosts.js';

/** `sleep 30` in the background, its pid in a file, then wait: like a wrapper around a hung binary. */
function hangingSmi(): { path: string; pidFile: string } {
  const dir = tempDir('vgpuctl-tools-');
  const pidFile = path.join(dir, 'sleep.pid');
  const p = path.join(dir, 'nvidia-smi');
  writeFileSync(p, `#!/bin/sh\nsleep 30 &\necho $! > '${pidFile}'\nwait\necho "GPU 00000000:82:00.0"\n`);
  chmodSync(p, 0o755);
  return { path: p, pidFile };
}

/** Gone, or a zombie waiting for its parent to reap it: either way no longer running. */
async function expectEnded(pidFile: string): Promise<void> {
  const pid = readFileSync(pidFile, 'utf8').trim();
  const state = (): string | null => {
    try {
      return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '')[0]!;
    } catch {
      return null;
    }
  };
  for (let i = 0; i < 20 && state() !== null && state() !== 'Z'; i++) await new Promise((r) => setTimeout(r, 50));
  expect([null, 'Z']).toContain(state());
}

describe('a hung nvidia-smi', () => {
  it('health --check-timeout 1: the leftovers check is UNKNOWN in about a second, the others are reported', async () => {
    const host = await hostFrom('leftovers');
    const smi = hangingSmi();
    const started = Date.now();
    const r = await cli(['--root', host.root, 'health', '-o', 'json', '--check-timeout', '1', '--nvidia-smi', smi.path]);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeLessThan(5000);
    const report = r.json();
    expect(report.checks.map((c: any) => [c.check, c.status])).toEqual([
      ['iommu', 'OK'],
      ['modules', 'OK'],
      ['gpus', 'OK'],
      ['vgpu-manager', 'OK'],
      ['mdev-bus', 'OK'],
      ['autostart', 'WARNING'],
      ['leftovers', 'UNKNOWN'],
      ['capacity', 'OK'],
    ]);
    const leftovers = report.checks.find((c: any) => c.check === 'leftovers');
    expect(leftovers.message).toMatch(/within 1000 ms/);
    expect(leftovers.duration_ms).toBeGreaterThanOrEqual(900);
    expect(leftovers.duration_ms).toBeLessThan(2500);
    // WARNING outranks UNKNOWN: the autostart warning is still this host's status.
    expect(report.status).toBe('WARNING');
    expect(r.code).toBe(1);
    await expectEnded(smi.pidFile);
  });

  it('cleanup --timeout 1 reports nvidia-smi unavailable instead of hanging, and still does the rest', async () => {
    const host = await hostFrom('leftovers');
    const smi = hangingSmi();
    const started = Date.now();
    const r = await cli(['--root', host.root, 'cleanup', '--dry-run', '--timeout', '1', '-o', 'json', '--nvidia-smi', smi.path]);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r.code).toBe(0);
    const findings = r.json().findings;
    expect(findings.filter((f: any) => f.kind === 'nvidia-smi-unavailable')).toEqual([
      { kind: 'nvidia-smi-unavailable', subject: smi.path, detail: `${smi.path} vgpu -q did not answer within 1000 ms`, resolution: 'reported' },
    ]);
    // Without the driver's list nothing is claimed about vGPUs or manager processes...
    expect(findings.map((f: any) => f.kind)).not.toContain('stale-driver-vgpu');
    expect(findings.map((f: any) => f.kind)).not.toContain('leftover-vgpu-mgr');
    expect(r.json().vgpu_mgr.restart).toBe('not-needed');
    // ...while what the tree shows is still found.
    expect(findings.filter((f: any) => f.kind === 'stale-unit')).toHaveLength(3);
    expect(findings.filter((f: any) => f.kind === 'orphan-definition')).toHaveLength(3);
    await expectEnded(smi.pidFile);
  });

  it('cleanup reports a missing nvidia-smi the same way', async () => {
    const host = await hostFrom('leftovers');
    const missing = path.join(tempDir(), 'no-such-nvidia-smi');
    const r = await cli(['--root', host.root, 'cleanup', '--dry-run', '-o', 'json', '--nvidia-smi', missing]);
    expect(r.code).toBe(0);
    expect(r.json().findings.filter((f: any) => f.kind === 'nvidia-smi-unavailable')).toEqual([
      { kind: 'nvidia-smi-unavailable', subject: missing, detail: `${missing} is not installed`, resolution: 'reported' },
    ]);
  });
});
