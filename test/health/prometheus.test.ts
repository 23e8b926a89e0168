/**
 * `health -o prometheus` and `--textfile DIR`: node_exporter's textfile collector format, checked by the
 * real `promtool check metrics` (Debian package prometheus, installed by scripts/install-test-deps.sh).
 */
import { execa } from 'execa';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, tempDir } from '../helpers/hosts.js';
import { miniA100D } from '../helpers/mini-fixtures.js';
import { skipWithout } from '../helpers/tools.js';
import { fakeNvidiaSmi, hangingNvidiaSmi, SEED004_VGPU_Q, vgpuQuery } from '../cleanup/fake-tools.js';

const noPromtool = skipWithout('promtool');

async function promtool(text: string): Promise<{ exitCode: number | undefined; stdout: string; stderr: string }> {
  const r = await execa('promtool', ['check', 'metrics'], { input: text, reject: false, timeout: 30_000 });
  return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

const P40_6Q = 'parent="0000:82:00.0",type="nvidia-50",profile="P40-6Q"';

describe('health -o prometheus', () => {
  it.skipIf(noPromtool)('passes promtool check metrics on the leftovers host, a broken SR-IOV host and with a hung check', async () => {
    const leftovers = await hostFrom('leftovers');
    const base = miniA100D.pci![0]!;
    const sriov = await hostFrom({ ...miniA100D, pci: [{ ...base, sriov: { ...base.sriov!, numvfs: 2 } }], mdevs: [{ uuid: '5c630867-a673-5d75-aa31-a499e6c7cb19', parent: '0000:21:00.4', type: 'nvidia-700' }] });
    const runs = [
      { root: leftovers.root, smi: fakeNvidiaSmi(SEED004_VGPU_Q), code: 1 },
      { root: sriov.root, smi: fakeNvidiaSmi(vgpuQuery([{ busId: '00000000:21:00.0', vgpus: [] }])), code: 2 },
      { root: leftovers.root, smi: hangingNvidiaSmi(), code: 1 },
    ];
    for (const run of runs) {
      const r = await cli(['--root', run.root, 'health', '-o', 'prometheus', '--check-timeout', '1', '--nvidia-smi', run.smi]);
      expect(r.code).toBe(run.code);
      const check = await promtool(r.stdout);
      expect({ exit: check.exitCode, out: check.stdout + check.stderr }).toEqual({ exit: 0, out: '' });
    }
  });

  it('prints every check, capacity and activity per parent/type/profile, and the overall status', async () => {
    const host = await hostFrom('leftovers');
    const r = await cli(['--root', host.root, 'health', '-o', 'prometheus', '--nvidia-smi', fakeNvidiaSmi(SEED004_VGPU_Q)]);
    expect(r.code).toBe(1);
    const lines = r.stdout.trimEnd().split('\n');
    for (const name of ['vgpuctl_check_status', 'vgpuctl_check_duration_seconds', 'vgpuctl_available_instances', 'vgpuctl_mdev_active', 'vgpuctl_health_status', 'vgpuctl_last_run_timestamp_seconds']) {
      expect(lines).toContain(`# TYPE ${name} gauge`);
      expect(lines.some((l) => l.startsWith(`# HELP ${name} `))).toBe(true);
    }
    expect(lines).toContain(`vgpuctl_mdev_active{${P40_6Q}} 2`);
    expect(lines).toContain(`vgpuctl_available_instances{${P40_6Q}} 2`);
    expect(lines).toContain('vgpuctl_available_instances{parent="0000:82:00.0",type="nvidia-286",profile="P40-12C"} 0');
    expect(lines.filter((l) => l.startsWith('vgpuctl_mdev_active{'))).toHaveLength(25);
    expect(lines.filter((l) => l.startsWith('vgpuctl_check_status{')).map((l) => l.replace(/^vgpuctl_check_status/, ''))).toEqual([
      '{check="iommu"} 0',
      '{check="modules"} 0',
      '{check="gpus"} 0',
      '{check="vgpu-manager"} 0',
      '{check="mdev-bus"} 0',
      '{check="autostart"} 1',
      '{check="leftovers"} 1',
      '{check="capacity"} 0',
    ]);
    expect(lines).toContain('vgpuctl_health_status 1');
    const ts = Number(lines.find((l) => l.startsWith('vgpuctl_last_run_timestamp_seconds '))!.split(' ')[1]);
    expect(Math.abs(ts - Date.now() / 1000)).toBeLessThan(120);
  });
});

describe('health --textfile', () => {
  it('writes DIR/vgpuctl.prom atomically, replacing the previous file and leaving no temporary file', async () => {
    const host = await hostFrom('leftovers');
    const dir = tempDir('vgpuctl-textfile-');
    const prom = path.join(dir, 'vgpuctl.prom');
    await fs.writeFile(prom, '# previous run\nvgpuctl_health_status 0\n');
    const before = await fs.stat(prom);

    const r = await cli(['--root', host.root, 'health', '--textfile', dir, '-o', 'nagios', '--nvidia-smi', fakeNvidiaSmi(SEED004_VGPU_Q)]);
    expect(r.code).toBe(1); // the textfile does not change the Nagios result
    expect(r.stdout).toMatch(/^VGPUCTL WARNING - /);
    expect(await fs.readdir(dir)).toEqual(['vgpuctl.prom']);
    const after = await fs.stat(prom);
    expect(after.ino).not.toBe(before.ino); // a new file renamed over the old one, not rewritten in place
    expect(after.mode & 0o777).toBe(0o644);

    const text = await fs.readFile(prom, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    expect(text).not.toContain('# previous run');
    expect(text).toContain(`\nvgpuctl_mdev_active{${P40_6Q}} 2\n`);
    expect(text).toContain(`\nvgpuctl_available_instances{${P40_6Q}} 2\n`);
    expect(text).toContain('\nvgpuctl_check_status{check="leftovers"} 1\n');
    expect(text).toContain('\nvgpuctl_health_status 1\n');
    if (!noPromtool) {
      const check = await promtool(text);
      expect({ exit: check.exitCode, out: check.stdout + check.stderr }).toEqual({ exit: 0, out: '' });
    }

    // A second run replaces it again; still one file.
    expect((await cli(['--root', host.root, 'health', '--textfile', dir, '--nvidia-smi', fakeNvidiaSmi(SEED004_VGPU_Q)])).code).toBe(1);
    expect(await fs.readdir(dir)).toEqual(['vgpuctl.prom']);
  });

  it('refuses a --textfile that is not a directory, without writing anything', async () => {
    const host = await hostFrom('p40-seed004');
    const dir = tempDir('vgpuctl-textfile-');
    const r = await cli(['--root', host.root, 'health', '--textfile', path.join(dir, 'missing'), '--nvidia-smi', fakeNvidiaSmi('')]);
    expect(r.code).toBe(3); // health could not run: UNKNOWN
    expect(r.stderr).toMatch(/--textfile .*missing is not a directory/);
    expect(await fs.readdir(dir)).toEqual([]);
  });
});
