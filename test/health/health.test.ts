/**
 * `vgpuctl health`: Nagios exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), the JSON report, the Nagios
 * plugin output (status line and perfdata) and drift from a plan.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, snapshotTree, tempDir } from '../helpers/hosts.js';
import { miniA100D } from '../helpers/mini-fixtures.js';
import { fakeNvidiaSmi, fakeSystemctl, hangingNvidiaSmi, SEED004_VGPU_Q, vgpuQuery } from '../cleanup/fake-tools.js';

const CHECKS = ['iommu', 'modules', 'gpus', 'vgpu-manager', 'mdev-bus', 'autostart', 'leftovers', 'capacity'];
/** What nvidia-smi prints on a P40 host where no VM runs. */
const P40_IDLE = vgpuQuery([{ busId: '00000000:82:00.0', vgpus: [] }]);

function tools(smiOutput = P40_IDLE) {
  const systemctl = fakeSystemctl();
  return { args: ['--nvidia-smi', fakeNvidiaSmi(smiOutput), '--systemctl', systemctl.path], log: systemctl.log };
}

const statusOf = (report: any, check: string) => report.checks.find((c: any) => c.check === check)?.status;

describe('health exit codes', () => {
  it('0 OK on a clean p40-seed004 host, every check OK, nothing written', async () => {
    const host = await hostFrom('p40-seed004');
    const t = tools();
    const before = await snapshotTree(host.root);
    const r = await cli(['--root', host.root, 'health', ...t.args]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('OK');
    for (const c of CHECKS) expect(r.stdout).toMatch(new RegExp(`^  OK +${c} +\\S`, 'm'));
    expect(r.stdout).toMatch(/vgpu-manager +nvidia-vgpu-mgr is running/);
    expect(await snapshotTree(host.root)).toEqual(before);
    // Against a tree (--root) the service check reads <root>/proc: the real host's systemd is never asked.
    await expect(fs.readFile(t.log, 'utf8')).rejects.toThrow(/ENOENT/);
  });

  it('1 WARNING on the leftovers host', async () => {
    const host = await hostFrom('leftovers');
    const r = await cli(['--root', host.root, 'health', '-o', 'json', ...tools(SEED004_VGPU_Q).args]);
    expect(r.code).toBe(1);
    const report = r.json();
    expect(report.status).toBe('WARNING');
    expect(Object.fromEntries(report.checks.map((c: any) => [c.check, c.status]))).toEqual({
      iommu: 'OK',
      modules: 'OK',
      gpus: 'OK',
      'vgpu-manager': 'OK',
      'mdev-bus': 'OK',
      autostart: 'WARNING',
      leftovers: 'WARNING',
      capacity: 'OK',
    });
    const msg = (c: string) => report.checks.find((x: any) => x.check === c).message;
    expect(msg('autostart')).toBe('start-auto definitions not running: 33485650-079b-11ee-9fca-8f6415d2734c (vgpuctl start --autostart)');
    // The real seed-004 listing names 334855e2 (active) and 33485650 (defined, not active): one gone mdev.
    expect(msg('leftovers')).toBe(
      '3 orphan definition(s), 1 undefined unused mdev(s), 3 stale unit(s), 1 vGPU(s) nvidia-smi lists for gone mdevs, 1 leftover nvidia-vgpu-mgr process(es) (vgpuctl cleanup)',
    );
  });

  it('2 CRITICAL when nouveau is loaded', async () => {
    const host = await hostFrom('p40-seed004');
    await fs.appendFile(path.join(host.root, 'proc/modules'), 'nouveau 2433024 0 - Live 0x0000000000000000\n');
    const r = await cli(['--root', host.root, 'health', '-o', 'json', ...tools().args]);
    expect(r.code).toBe(2);
    expect(r.json().status).toBe('CRITICAL');
    expect(r.json().checks.find((c: any) => c.check === 'modules')).toMatchObject({ status: 'CRITICAL', message: expect.stringMatching(/^nouveau is loaded/) });
    expect(r.json().checks.filter((c: any) => c.status !== 'OK').map((c: any) => c.check)).toEqual(['modules']);
  });

  it('2 CRITICAL when an SR-IOV GPU has no virtual functions enabled', async () => {
    const base = miniA100D.pci![0]!;
    const host = await hostFrom({ ...miniA100D, pci: [{ ...base, sriov: { ...base.sriov!, numvfs: 0 } }] });
    const r = await cli(['--root', host.root, 'health', '-o', 'json', ...tools(vgpuQuery([{ busId: '00000000:21:00.0', vgpus: [] }])).args]);
    expect(r.code).toBe(2);
    expect(r.json().checks.find((c: any) => c.check === 'gpus')).toMatchObject({
      status: 'CRITICAL',
      message: 'SR-IOV not enabled on 0000:21:00.0: run /usr/lib/nvidia/sriov-manage -e ALL',
    });
  });

  it('3 UNKNOWN when the only problem is a check that hangs', async () => {
    const host = await hostFrom('p40-seed004');
    const started = Date.now();
    const r = await cli(['--root', host.root, 'health', '-o', 'json', '--check-timeout', '1', '--nvidia-smi', hangingNvidiaSmi()]);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r.code).toBe(3);
    expect(r.json().status).toBe('UNKNOWN');
    expect(r.json().checks.filter((c: any) => c.status !== 'OK').map((c: any) => [c.check, c.status])).toEqual([['leftovers', 'UNKNOWN']]);
  });
});

describe('health output', () => {
  it('-o json: status, checks (check, status, message, duration_ms) and capacity per parent and type', async () => {
    const host = await hostFrom('leftovers');
    const report = (await cli(['--root', host.root, 'health', '-o', 'json', ...tools(SEED004_VGPU_Q).args])).json();
    expect(Object.keys(report).sort()).toEqual(['capacity', 'checks', 'counts', 'status', 'summary']);
    expect(report.counts).toEqual({ OK: 6, WARNING: 2, CRITICAL: 0, UNKNOWN: 0 });
    expect(report.summary).toMatch(/^autostart: start-auto definitions not running: .*; leftovers: 3 orphan definition\(s\)/);
    expect(report.checks.map((c: any) => c.check)).toEqual(CHECKS);
    for (const c of report.checks) {
      expect(Object.keys(c).sort()).toEqual(['check', 'duration_ms', 'message', 'status']);
      expect(['OK', 'WARNING', 'CRITICAL', 'UNKNOWN']).toContain(c.status);
      expect(c.message).toEqual(expect.any(String));
      expect(Number.isInteger(c.duration_ms) && c.duration_ms >= 0).toBe(true);
    }
    expect(report.capacity).toHaveLength(25); // the P40's 25 types
    for (const c of report.capacity) expect(Object.keys(c).sort()).toEqual(['active', 'available', 'parent', 'profile', 'type']);
    expect(report.capacity.find((c: any) => c.type === 'nvidia-50')).toEqual({ parent: '0000:82:00.0', type: 'nvidia-50', profile: 'P40-6Q', available: 2, active: 2 });
    // One time-sliced type per GPU: with P40-6Q on the GPU every other type has 0 left.
    expect(report.capacity.filter((c: any) => c.available > 0).map((c: any) => c.type)).toEqual(['nvidia-50']);
  });

  it('-o nagios follows the plugin format: status line with summary and perfdata, then one line per check', async () => {
    const host = await hostFrom('leftovers');
    const r = await cli(['--root', host.root, 'health', '-o', 'nagios', ...tools(SEED004_VGPU_Q).args]);
    expect(r.code).toBe(1);
    const [first, ...rest] = r.stdout.trimEnd().split('\n');
    const m = /^VGPUCTL (OK|WARNING|CRITICAL|UNKNOWN) - ([^|]+) \| (.+)$/.exec(first!);
    expect(m, first).not.toBeNull();
    expect(m![1]).toBe('WARNING');
    expect(m![2]).toMatch(/^autostart: start-auto definitions not running: 33485650-[^;]*; leftovers: 3 orphan definition\(s\)/);
    const perf = m![3]!.split(' ');
    for (const item of perf) expect(item).toMatch(/^'[^'=]+'=\d+;;;0$/);
    expect(perf).toContain("'avail_0000:82:00.0_P40-6Q'=2;;;0");
    expect(perf).toContain("'avail_0000:82:00.0_P40-12C'=0;;;0");
    expect(perf).toContain("'active_0000:82:00.0_P40-6Q'=2;;;0");
    expect(perf.filter((p) => p.startsWith("'avail_"))).toHaveLength(25);
    // Long output: one line per check; '|' only ever separates the perfdata of the first line.
    expect(rest).toHaveLength(CHECKS.length);
    expect(rest.map((l) => l.split(':')[0])).toEqual(['OK', 'OK', 'OK', 'OK', 'OK', 'WARNING', 'WARNING', 'OK']);
    for (const l of rest) expect(l).not.toContain('|');
    expect(first!.split('|')).toHaveLength(2);
  });

  it('-o nagios on a clean host says OK with every check counted', async () => {
    const host = await hostFrom('p40-seed004');
    const r = await cli(['--root', host.root, 'health', '-o', 'nagios', ...tools().args]);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^VGPUCTL OK - 8 checks OK \| 'avail_0000:82:00\.0_P40-2B'=12;;;0 /);
  });

  it('rejects an output format it does not have, as UNKNOWN (3): health speaks Nagios exit codes in every format', async () => {
    const host = await hostFrom('p40-seed004');
    const r = await cli(['--root', host.root, 'health', '-o', 'xml']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/not an output format/);
  });
});

describe('health usage errors are UNKNOWN (3), as monitoring plugins report invalid arguments', () => {
  it('-o nagios: a bad flag, a bad value, an extra argument and an unreadable plan exit 3 with a VGPUCTL UNKNOWN status line', async () => {
    const host = await hostFrom('p40-seed004');
    const cases: Array<[string[], RegExp]> = [
      [['--bogus'], /unknown option '--bogus'/],
      [['--check-timeout', 'soon'], /check-timeout/],
      [['--check-timeout', '0'], /check-timeout/],
      [['extra'], /too many arguments|unexpected argument|excess/i],
      [['--plan', path.join(tempDir(), 'absent.yaml')], /absent\.yaml/],
    ];
    for (const [args, why] of cases) {
      for (const o of [['-o', 'nagios'], ['--output=nagios']]) {
        const r = await cli(['--root', host.root, ...o, 'health', ...args, ...tools().args]);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(3);
        const lines = r.stdout.trimEnd().split('\n');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(/^VGPUCTL UNKNOWN - /);
        expect(lines[0]).toMatch(why);
        expect(r.stderr).toMatch(/^vgpuctl: error: /);
      }
    }
  });

  it('other formats exit 3 too and print nothing on stdout; other commands keep 2 for bad usage, help stays 0', async () => {
    const host = await hostFrom('p40-seed004');
    for (const o of [[], ['-o', 'json'], ['-o', 'prometheus']]) {
      const r = await cli(['--root', host.root, 'health', ...o, '--check-timeout', 'soon']);
      expect(r.code).toBe(3);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/check-timeout/);
    }
    expect((await cli(['--root', host.root, 'cleanup', '--bogus'])).code).toBe(2);
    expect((await cli(['--root', host.root, 'types', '-o', 'nagios'])).code).toBe(2);
    expect((await cli(['health', '--help'])).code).toBe(0);
  });
});

describe('an UNKNOWN check is never hidden', () => {
  it('ranks CRITICAL > WARNING > UNKNOWN > OK and keeps the outranked UNKNOWN in the summary, counts and Prometheus', async () => {
    const host = await hostFrom('p40-seed004');
    const plan = path.join(tempDir(), 'plan.yaml');
    await fs.writeFile(plan, 'version: 1\ngpus:\n  - select: { address: "0000:82:00.0" }\n    profile: P40-12C\n    count: 2\n');
    const args = ['--root', host.root, 'health', '--plan', plan, '--check-timeout', '1', '--nvidia-smi', hangingNvidiaSmi()];
    const j = await cli([...args, '-o', 'json']);
    expect(j.code).toBe(2);
    const report = j.json();
    expect(report.status).toBe('CRITICAL');
    expect(report.counts).toEqual({ OK: 7, WARNING: 0, CRITICAL: 1, UNKNOWN: 1 });
    expect(report.summary).toMatch(/^plan: drift from the plan: .*; UNKNOWN leftovers: did not finish within 1000 ms$/);

    const n = await cli([...args, '-o', 'nagios']);
    expect(n.code).toBe(2);
    expect(n.stdout.split('\n')[0]).toMatch(/^VGPUCTL CRITICAL - plan: drift from the plan: [^|]*; UNKNOWN leftovers: did not finish within 1000 ms \| /);

    const p = await cli([...args, '-o', 'prometheus']);
    const lines = p.stdout.trimEnd().split('\n');
    expect(lines).toContain('vgpuctl_checks{status="UNKNOWN"} 1');
    expect(lines).toContain('vgpuctl_checks{status="CRITICAL"} 1');
    expect(lines).toContain('vgpuctl_check_status{check="leftovers"} 3');
    expect(lines).toContain('vgpuctl_health_status 2');
  });

  it('a lone UNKNOWN makes the host UNKNOWN, never OK', async () => {
    const host = await hostFrom('p40-seed004');
    const r = await cli(['--root', host.root, 'health', '-o', 'nagios', '--check-timeout', '1', '--nvidia-smi', hangingNvidiaSmi()]);
    expect(r.code).toBe(3);
    expect(r.stdout.split('\n')[0]).toMatch(/^VGPUCTL UNKNOWN - leftovers: did not finish within 1000 ms \| /);
  });
});

describe('health --plan', () => {
  it('reports drift as CRITICAL, and OK once the plan is applied', async () => {
    const host = await hostFrom('p40-seed004');
    const t = tools();
    const plan = path.join(tempDir(), 'plan.yaml');
    await fs.writeFile(plan, 'version: 1\ngpus:\n  - select: { address: "0000:82:00.0" }\n    profile: P40-12C\n    count: 2\n');

    const drift = await cli(['--root', host.root, 'health', '--plan', plan, '-o', 'json', ...t.args]);
    expect(drift.code).toBe(2);
    expect(drift.json().checks.map((c: any) => c.check)).toEqual([...CHECKS, 'plan']);
    const planCheck = drift.json().checks.find((c: any) => c.check === 'plan');
    expect(planCheck.status).toBe('CRITICAL');
    expect(planCheck.message).toMatch(/^drift from the plan: [0-9a-f-]{36} needs create\+define, [0-9a-f-]{36} needs create\+define \(vgpuctl apply\)$/);
    expect(drift.json().checks.filter((c: any) => c.status !== 'OK').map((c: any) => c.check)).toEqual(['plan']);

    const applied = await cli(['--root', host.root, '--simulate', 'apply', '-f', plan]);
    expect(applied.code, applied.stderr).toBe(0);

    const ok = await cli(['--root', host.root, 'health', '--plan', plan, '-o', 'json', ...t.args]);
    expect(ok.code).toBe(0);
    expect(ok.json().checks.find((c: any) => c.check === 'plan')).toMatchObject({ status: 'OK', message: 'host matches the plan (2 vGPUs)' });
    expect(ok.json().capacity.find((c: any) => c.type === 'nvidia-286')).toMatchObject({ available: 0, active: 2 });
    // The UUIDs the drift named are the ones apply made.
    const uuids = (await fs.readdir(path.join(host.root, 'sys/bus/mdev/devices'))).sort();
    expect(planCheck.message.match(/[0-9a-f]{8}-[0-9a-f-]{27}/g).sort()).toEqual(uuids);
  });

  it('is CRITICAL when the plan cannot be met; an invalid plan file is an error naming file and line', async () => {
    const host = await hostFrom('p40-seed004');
    const dir = tempDir();
    const tooMany = path.join(dir, 'too-many.yaml');
    await fs.writeFile(tooMany, 'version: 1\ngpus:\n  - select: { address: "0000:82:00.0" }\n    profile: P40-12C\n    count: 3\n');
    const r = await cli(['--root', host.root, 'health', '--plan', tooMany, '-o', 'json', ...tools().args]);
    expect(r.code).toBe(2);
    expect(r.json().checks.find((c: any) => c.check === 'plan')).toMatchObject({ status: 'CRITICAL', message: expect.stringMatching(/^the plan cannot be met: /) });

    const unknownProfile = path.join(dir, 'unknown-profile.yaml');
    await fs.writeFile(unknownProfile, 'version: 1\ngpus:\n  - select: { address: "0000:82:00.0" }\n    profile: P40-13Q\n    count: 1\n');
    const u = await cli(['--root', host.root, 'health', '--plan', unknownProfile, '-o', 'json', ...tools().args]);
    expect(u.code).toBe(2);
    expect(u.json().checks.find((c: any) => c.check === 'plan').message).toMatch(/^the plan cannot be met: .*unknown profile "P40-13Q"/);

    const bad = path.join(dir, 'bad.yaml');
    await fs.writeFile(bad, 'version: 1\nbogus: 1\ngpus:\n  - select: { address: "0000:82:00.0" }\n    profile: P40-12C\n    count: 1\n');
    const invalid = await cli(['--root', host.root, 'health', '--plan', bad, ...tools().args]);
    expect(invalid.code).toBe(3); // it could not check: UNKNOWN, not CRITICAL
    expect(invalid.stdout).toBe('');
    expect(invalid.stderr).toMatch(/invalid plan: .*bad\.yaml:2: bogus: unknown key/);
  });
});
