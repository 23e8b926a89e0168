/**
 * vgpuctl's real sysfs path against a real Linux mdev bus: Debian's kernel booted under qemu (TCG) with
 * the kernel's sample mdev drivers (mtty, mdpy, mbochs), built by test/kernel/setup-vm.sh. The checks run
 * inside the VM in one node process (test/kernel/inside.mjs); each becomes one assertion here.
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasTool } from '../helpers/tools.js';

const repo = path.resolve(import.meta.dirname, '../..');
const vmDir = process.env['VGPUCTL_KERNEL_VM_DIR'] ?? '/var/tmp/vgpuctl-kernel-vm';
const inCi = process.env['CI'] === 'true' || process.env['CI'] === '1';
const ready = hasTool('qemu-system-x86_64') && existsSync(path.join(vmDir, 'vmlinuz')) && existsSync(path.join(vmDir, 'initrd.gz')) && process.getuid?.() === 0;
if (!ready && !inCi) process.stderr.write(`[skip] real-kernel tests: no VM in ${vmDir} (run test/kernel/setup-vm.sh as root)\n`);

describe.skipIf(!ready && !inCi)('real kernel (qemu VM with mtty, mdpy, mbochs)', () => {
  it('every check inside the VM passes', async () => {
    expect(ready, `the kernel VM is missing in ${vmDir}: scripts/install-test-deps.sh runs test/kernel/setup-vm.sh`).toBe(true);
    const r = await execa('sh', [path.join(repo, 'test/kernel/run-in-vm.sh'), 'node test/kernel/inside.mjs'], {
      cwd: repo,
      reject: false,
      env: { W: vmDir, VGPUCTL_VM_TIMEOUT: '420' },
    });
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('{'));
    const results = lines.map((l) => JSON.parse(l) as { check?: string; ok?: boolean; detail?: string; summary?: boolean; passed?: number; failed?: number });
    const summary = results.find((x) => x.summary);
    expect(summary, `no summary from the VM (exit ${r.exitCode}):\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-2000)}`).toBeDefined();
    process.stdout.write(`real-kernel checks: ${summary!.passed} passed, ${summary!.failed} failed\n`);
    for (const c of results.filter((x) => !x.summary)) expect.soft(c.ok, `${c.check}: ${c.detail}`).toBe(true);
    expect(results.filter((x) => !x.summary).length).toBeGreaterThanOrEqual(20);
    expect(r.exitCode).toBe(0);
  }, 600_000);
});
