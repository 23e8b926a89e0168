/**
 * Seed 004's end state on the `leftovers` fixture: two P40-6Q vGPUs destroyed while nvidia-smi still lists
 * them, left-over nvidia-vgpu-mgr processes, y-k8s-n-1 still running on 334855e2-..., plus orphan
 * definitions, an undefined active mdev and stale nvidia-mdev@ units.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, snapshotTree, tempDir } from '../helpers/hosts.js';
import { fakeTool } from '../helpers/hardening.js';
import { fakeNvidiaSmi, fakeSystemctl, vgpuQuery } from './fake-tools.js';

const GPU = '0000:82:00.0';
const RUNNING = '334855e2-079b-11ee-9fc9-83e0dccb6713'; // active, defined auto, in running y-k8s-n-1
const SHUT_OFF = '33485650-079b-11ee-9fca-8f6415d2734c'; // defined auto, named by shut-off y-k8s-n-2
const UNDEFINED = '3348556a-079b-11ee-9fc8-7fb0c612aedd'; // active, never defined, no domain
const BAD_TYPE = 'd5603837-d2d2-44e5-9e5b-1395873a6579'; // nvidia-999 on 0000:82:00.0
const GONE_PARENT_1 = '69dd62f7-7825-4dc6-89a2-be4c9bcea5bc'; // under 0000:83:00.0
const GONE_PARENT_2 = '98198e75-9728-42dc-96c3-87eefe76a96d';
const DESTROYED_1 = 'e19fa267-ff3a-4ce8-bcf6-6ae402871085'; // stale unit, unit file present
const DESTROYED_2 = '58fe7cf4-e9de-41f4-ae4b-c424a2a81193'; // stale unit, dangling link

const WANTS = 'etc/systemd/system/multi-user.target.wants';
const STALE_UNIT_PATHS = [
  `${WANTS}/nvidia-mdev@${DESTROYED_2}.service`,
  `${WANTS}/nvidia-mdev@${DESTROYED_1}.service`,
  `etc/systemd/system/nvidia-mdev@${DESTROYED_1}.service`,
];
const ORPHAN_DEF_PATHS = [`etc/mdevctl.d/${GPU}/${BAD_TYPE}`, `etc/mdevctl.d/0000:83:00.0/${GONE_PARENT_1}`, `etc/mdevctl.d/0000:83:00.0/${GONE_PARENT_2}`];

/** nvidia-smi after seed 004's destroys: y-k8s-n-1's vGPU and the two P40-6Q whose mdevs are gone. */
const SEED004_END = vgpuQuery([
  {
    busId: '00000000:82:00.0',
    vgpus: [
      { vgpuId: '3251634329', vmUuid: '10a12241-1e83-4b70-bc59-a33d7c6d063c', vmName: 'y-k8s-n-1', name: 'GRID P40-6Q', type: '50', mdevUuid: RUNNING },
      { vgpuId: '3251634341', vmUuid: 'N/A', vmName: 'N/A', name: 'GRID P40-6Q', type: '50', mdevUuid: DESTROYED_1 },
      { vgpuId: '3251634345', vmUuid: 'N/A', vmName: 'N/A', name: 'GRID P40-6Q', type: '50', mdevUuid: DESTROYED_2 },
    ],
  },
]);

function diff(before: Map<string, string>, after: Map<string, string>) {
  const removed = [...before.keys()].filter((k) => !after.has(k)).sort();
  const added = [...after.keys()].filter((k) => !before.has(k)).sort();
  const changed = [...before.keys()].filter((k) => after.has(k) && after.get(k) !== before.get(k)).sort();
  return { removed, added, changed };
}

async function setup() {
  const host = await hostFrom('leftovers');
  const smi = fakeNvidiaSmi(SEED004_END);
  const systemctl = fakeSystemctl();
  const tools = ['--nvidia-smi', smi, '--systemctl', systemctl.path];
  const reset = path.join(host.root, 'sys/bus/pci/devices', GPU, 'reset');
  return { host, root: host.root, tools, systemctl, reset };
}

const systemctlCalls = async (log: string): Promise<string[] | null> =>
  fs.readFile(log, 'utf8').then((t) => t.split('\n').filter(Boolean), () => null);

/** Stops y-k8s-n-1 as libvirt would: the qemu process and the running domain's status XML go away. */
async function stopVm(root: string): Promise<void> {
  await fs.rm(path.join(root, 'proc/41977'), { recursive: true });
  await fs.rm(path.join(root, 'run/libvirt/qemu/y-k8s-n-1.xml'));
}

describe("cleanup on seed 004's end state (leftovers fixture)", () => {
  it('--dry-run reports exactly the expected findings and changes nothing', async () => {
    const { root, tools, systemctl } = await setup();
    const before = await snapshotTree(root);
    const r = await cli(['--root', root, 'cleanup', '--dry-run', '-o', 'json', ...tools]);
    expect(r.code).toBe(0);
    const report = r.json();
    expect(report.dry_run).toBe(true);
    expect(report.findings.map((f: any) => [f.kind, f.subject, f.resolution])).toEqual([
      ['orphan-definition', BAD_TYPE, 'kept'],
      ['orphan-definition', GONE_PARENT_1, 'kept'],
      ['orphan-definition', GONE_PARENT_2, 'kept'],
      ['undefined-active-mdev', UNDEFINED, 'kept'],
      ['stale-unit', DESTROYED_2, 'removed'],
      ['stale-unit', DESTROYED_1, 'removed'],
      ['stale-unit', DESTROYED_1, 'removed'],
      ['stale-driver-vgpu', DESTROYED_1, 'reported'],
      ['stale-driver-vgpu', DESTROYED_2, 'reported'],
      ['leftover-vgpu-mgr', 'nvidia-vgpu-mgr', 'reported'],
    ]);
    const detail = (kind: string, subject: string) => report.findings.filter((f: any) => f.kind === kind && f.subject === subject).map((f: any) => f.detail);
    expect(detail('orphan-definition', BAD_TYPE)).toEqual([`/etc/mdevctl.d/${GPU}/${BAD_TYPE}: ${GPU} has no type nvidia-999`]);
    expect(detail('orphan-definition', GONE_PARENT_1)[0]).toMatch(/parent 0000:83:00\.0 does not exist/);
    expect(detail('stale-driver-vgpu', DESTROYED_1)[0]).toMatch(/vGPU 3251634341 \(GRID P40-6Q\) on 0000:82:00\.0 for an mdev that no longer exists/);
    // Three manager processes (the seed's pids): the daemon and y-k8s-n-1's vGPU account for two.
    expect(detail('leftover-vgpu-mgr', 'nvidia-vgpu-mgr')).toEqual(['3 nvidia-vgpu-mgr processes (pids 3784, 30253, 34360) where 2 are expected']);
    // Nothing in use is reported: not the running VM's device, not the shut-off VM's definition.
    const subjects = report.findings.map((f: any) => f.subject);
    expect(subjects).not.toContain(RUNNING);
    expect(subjects).not.toContain(SHUT_OFF);
    // The would-be actions: only the three unit paths (orphans need --orphans).
    expect(report.actions.map((a: any) => [a.kind, a.path])).toEqual(STALE_UNIT_PATHS.map((p) => ['remove-file', `/${p}`]));
    expect(report.vgpu_mgr).toEqual({ restart: 'not-requested', blocking_vms: ['y-k8s-n-1'] });

    const text = await cli(['--root', root, 'cleanup', '--dry-run', ...tools]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/stale-unit\s+58fe7cf4-e9de-41f4-ae4b-c424a2a81193\s+would remove/);
    expect(text.stderr).toMatch(/run cleanup --restart-vgpu-mgr once no VM uses a vGPU/);

    // --dry-run with --orphans and --restart-vgpu-mgr still changes nothing and calls no systemctl.
    const all = await cli(['--root', root, '--simulate', 'cleanup', '--dry-run', '--orphans', '--restart-vgpu-mgr', '-o', 'json', ...tools]);
    expect(all.code).toBe(0);
    expect(all.json().vgpu_mgr.restart).toBe('dry-run');
    expect(all.json().actions).toHaveLength(3 + 3 + 1);
    expect(await snapshotTree(root)).toEqual(before);
    expect(await systemctlCalls(systemctl.log)).toBeNull();
  });

  it('refuses to restart nvidia-vgpu-mgr while y-k8s-n-1 runs, and restarts it once the VM is stopped', async () => {
    const { root, tools, systemctl, reset } = await setup();
    const resetBefore = { content: await fs.readFile(reset, 'utf8'), mtime: (await fs.stat(reset)).mtimeMs };

    const refused = await cli(['--root', root, '--simulate', 'cleanup', '--restart-vgpu-mgr', ...tools]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/nvidia-vgpu-mgr not restarted: running VMs use vGPUs \(y-k8s-n-1\); stop them first/);
    expect(refused.stdout).toMatch(/stale-driver-vgpu\s+e19fa267-ff3a-4ce8-bcf6-6ae402871085\s+refused/);
    expect(await systemctlCalls(systemctl.log)).toBeNull();

    const again = await cli(['--root', root, '--simulate', 'cleanup', '--restart-vgpu-mgr', '-o', 'json', ...tools]);
    expect(again.code).toBe(1);
    expect(again.json().vgpu_mgr).toEqual({ restart: 'refused', blocking_vms: ['y-k8s-n-1'] });
    expect(again.json().findings.filter((f: any) => f.kind === 'stale-driver-vgpu' || f.kind === 'leftover-vgpu-mgr').map((f: any) => f.resolution)).toEqual(['refused', 'refused', 'refused']);
    expect(await systemctlCalls(systemctl.log)).toBeNull();

    await stopVm(root);
    const done = await cli(['--root', root, '--simulate', 'cleanup', '--restart-vgpu-mgr', '-o', 'json', ...tools]);
    expect(done.stderr).toBe('');
    expect(done.code).toBe(0);
    expect(done.json().vgpu_mgr).toEqual({ restart: 'done', blocking_vms: [] });
    expect(done.json().findings.filter((f: any) => f.kind === 'stale-driver-vgpu' || f.kind === 'leftover-vgpu-mgr').map((f: any) => f.resolution)).toEqual(['restarted', 'restarted', 'restarted']);
    expect(await systemctlCalls(systemctl.log)).toEqual(['restart nvidia-vgpu-mgr.service']);

    const text = await cli(['--root', root, '--simulate', 'cleanup', '--restart-vgpu-mgr', ...tools]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/Restarted nvidia-vgpu-mgr\.service\./);

    // Seed 004: writing the GPU's reset made it vanish from nvidia-smi; cleanup never does.
    expect(await fs.readFile(reset, 'utf8')).toBe(resetBefore.content);
    expect((await fs.stat(reset)).mtimeMs).toBe(resetBefore.mtime);
  });

  it('without --orphans removes only the stale units; orphan definitions and the undefined mdev are kept', async () => {
    const { root, tools } = await setup();
    const before = await snapshotTree(root);
    const r = await cli(['--root', root, '--simulate', 'cleanup', '-o', 'json', ...tools]);
    expect(r.code).toBe(0);
    expect(r.json().findings.filter((f: any) => f.resolution === 'removed').map((f: any) => f.subject)).toEqual([DESTROYED_2, DESTROYED_1, DESTROYED_1]);
    const after = await snapshotTree(root);
    const d = diff(before, after);
    expect(d.removed).toEqual([...STALE_UNIT_PATHS].sort());
    expect(d.changed).toEqual([]);
    expect(d.added.filter((p) => !p.startsWith('run/vgpuctl'))).toEqual([]);
    for (const p of ORPHAN_DEF_PATHS) expect(after.get(p)).toBe(before.get(p));
    expect((await fs.readdir(path.join(root, 'sys/bus/mdev/devices'))).sort()).toEqual([RUNNING, UNDEFINED].sort());

    // A second run finds the units gone and the rest as before.
    const second = await cli(['--root', root, '--simulate', 'cleanup', '--dry-run', '-o', 'json', ...tools]);
    expect(second.json().findings.map((f: any) => f.kind)).not.toContain('stale-unit');
    expect(second.json().findings.filter((f: any) => f.kind === 'orphan-definition')).toHaveLength(3);
    expect(second.json().findings.filter((f: any) => f.kind === 'undefined-active-mdev')).toHaveLength(1);
  });

  it('with --orphans removes orphan definitions and the undefined mdev, never a definition or device in use', async () => {
    const { root, tools } = await setup();
    const before = await snapshotTree(root);
    const r = await cli(['--root', root, '--simulate', 'cleanup', '--orphans', '-o', 'json', ...tools]);
    expect(r.code).toBe(0);
    expect(r.json().findings.filter((f: any) => f.resolution === 'removed').map((f: any) => f.subject)).toEqual([BAD_TYPE, GONE_PARENT_1, GONE_PARENT_2, UNDEFINED, DESTROYED_2, DESTROYED_1, DESTROYED_1]);
    const after = await snapshotTree(root);
    const d = diff(before, after);

    // /etc: exactly the orphan definitions and the stale units went; nothing was added or rewritten.
    expect(d.removed.filter((p) => p.startsWith('etc/')).sort()).toEqual([...ORPHAN_DEF_PATHS, ...STALE_UNIT_PATHS].sort());
    expect(d.changed.filter((p) => p.startsWith('etc/'))).toEqual([]);
    expect(d.added.filter((p) => p.startsWith('etc/'))).toEqual([]);
    // The undefined mdev is gone from the kernel; the running VM's device and both in-use definitions stay.
    const devices = await fs.readdir(path.join(root, 'sys/bus/mdev/devices'));
    expect(devices).toEqual([RUNNING]);
    for (const p of [`etc/mdevctl.d/${GPU}/${RUNNING}`, `etc/mdevctl.d/${GPU}/${SHUT_OFF}`, 'etc/libvirt/qemu/y-k8s-n-1.xml', 'etc/libvirt/qemu/y-k8s-n-2.xml', 'run/libvirt/qemu/y-k8s-n-1.xml']) {
      expect(after.get(p)).toBe(before.get(p));
    }
    expect(d.removed.some((p) => p.includes(RUNNING) || p.includes(SHUT_OFF))).toBe(false);
    expect(d.changed.some((p) => p.includes(RUNNING))).toBe(false);
    expect(d.removed.filter((p) => p.startsWith('proc/'))).toEqual([]);

    // The host is clean but for what only a restart of the vGPU manager clears.
    const after2 = await cli(['--root', root, 'cleanup', '--dry-run', '-o', 'json', ...tools]);
    expect(after2.json().findings.map((f: any) => f.kind)).toEqual(['stale-driver-vgpu', 'stale-driver-vgpu', 'leftover-vgpu-mgr']);
  });

  it('keeps an undefined mdev a running qemu holds, even with --orphans', async () => {
    const { root, tools } = await setup();
    // A hand-started qemu (no libvirt) that holds the undefined device.
    const argv = ['/usr/bin/qemu-system-x86_64', '-name', 'guest=scratch', '-device', `vfio-pci,sysfsdev=/sys/bus/mdev/devices/${UNDEFINED}`];
    await fs.mkdir(path.join(root, 'proc/50001'));
    await fs.writeFile(path.join(root, 'proc/50001/cmdline'), argv.join('\0') + '\0');
    await fs.writeFile(path.join(root, 'proc/50001/comm'), 'qemu-system-x86\n');
    const r = await cli(['--root', root, '--simulate', 'cleanup', '--orphans', '-o', 'json', ...tools]);
    expect(r.code).toBe(0);
    expect(r.json().findings.map((f: any) => f.subject)).not.toContain(UNDEFINED);
    expect((await fs.readdir(path.join(root, 'sys/bus/mdev/devices'))).sort()).toEqual([RUNNING, UNDEFINED].sort());
    expect(r.json().vgpu_mgr.blocking_vms).toEqual(['scratch', 'y-k8s-n-1']);
  });

  it('says so when systemctl fails or hangs on the restart, after doing the other clean-up steps', async () => {
    const { root, tools } = await setup();
    await stopVm(root);
    const dir = tempDir('vgpuctl-tools-');
    const failing = fakeTool('systemctl-failing', 'echo "Failed to restart nvidia-vgpu-mgr.service: Unit nvidia-vgpu-mgr.service not found." >&2\nexit 5\n', dir);
    const r = await cli(['--root', root, '--simulate', 'cleanup', '--restart-vgpu-mgr', ...tools, '--systemctl', failing]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/systemctl restart nvidia-vgpu-mgr\.service failed \(exit 5\): Failed to restart .*not found\.; the other clean-up steps were done/);
    await expect(fs.lstat(path.join(root, STALE_UNIT_PATHS[0]!))).rejects.toThrow(/ENOENT/);

    const hanging = fakeTool('systemctl-hanging', 'sleep 30\n', dir);
    const started = Date.now();
    const h = await cli(['--root', root, '--simulate', 'cleanup', '--restart-vgpu-mgr', '--timeout', '1', ...tools, '--systemctl', hanging]);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(h.code).toBe(1);
    expect(h.stderr).toMatch(/systemctl restart nvidia-vgpu-mgr\.service failed \(timeout\)/);
  });

  describe('tool paths from the environment', () => {
    afterEach(() => vi.unstubAllEnvs());

    // The paths come from the environment run() is given (bin/vgpuctl gives it process.env).
    it('VGPUCTL_NVIDIA_SMI and VGPUCTL_SYSTEMCTL stand in for --nvidia-smi and --systemctl', async () => {
      const { root, systemctl } = await setup();
      await stopVm(root);
      const env = { VGPUCTL_NVIDIA_SMI: fakeNvidiaSmi(SEED004_END), VGPUCTL_SYSTEMCTL: systemctl.path };
      const r = await cli(['--root', root, '--simulate', 'cleanup', '--restart-vgpu-mgr', '-o', 'json'], env);
      expect(r.code).toBe(0);
      expect(r.json().findings.filter((f: any) => f.kind === 'stale-driver-vgpu').map((f: any) => f.subject)).toEqual([DESTROYED_1, DESTROYED_2]);
      expect(await systemctlCalls(systemctl.log)).toEqual(['restart nvidia-vgpu-mgr.service']);
    });
  });
});
