/** health capacity/autostart/plan and cleanup of orphan definitions on vendor-VFIO and mixed hosts. */
import { execa } from 'execa';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, snapshotTree, tempDir } from '../helpers/hosts.js';
import { skipWithout } from '../helpers/tools.js';
import { vfHandle } from '../../src/vendor-vfio/discovery.js';
import { loadFixture } from '../../src/simulator/layout.js';
import type { HostRoot } from '../../src/host/host-root.js';
import { fakeSystemctl } from '../cleanup/fake-tools.js';

const NO_SMI = { VGPUCTL_NVIDIA_SMI: '/bin/false' };
const noPromtool = skipWithout('promtool');
const sim = (host: HostRoot, ...args: string[]) => cli(['--root', host.root, '--simulate', ...args], NO_SMI);
const health = async (host: HostRoot, ...args: string[]) => (await cli(['--root', host.root, 'health', '-o', 'json', ...args], NO_SMI)).json();
const check = (report: any, name: string) => report.checks.find((c: any) => c.check === name);

describe('health on vendor-VFIO hosts', () => {
  it('capacity per GPU and type (free and used), autostart of vendor definitions, Prometheus text promtool accepts', async () => {
    const host = await hostFrom('l40s-vfio');
    const empty = await health(host);
    expect(empty.capacity.every((c: any) => c.parent === '0000:41:00.0')).toBe(true);
    // Nothing on the GPU: every type, as many as fit (48 GiB / size, at most the 32 VFs).
    expect(empty.capacity.find((c: any) => c.type === 'nvidia-1152')).toEqual({ parent: '0000:41:00.0', type: 'nvidia-1152', profile: 'L40S-8Q', available: 6, active: 0 });
    expect(empty.capacity.find((c: any) => c.type === 'nvidia-1145')).toMatchObject({ profile: 'L40S-1B', available: 32, active: 0 });

    expect((await sim(host, 'create', '--profile', 'L40S-8Q', '--count', '2', '--define', '--auto')).code).toBe(0);
    const two = await health(host);
    // Equal-size mode: only the 8 GiB types are left.
    expect(two.capacity).toEqual([
      { parent: '0000:41:00.0', type: 'nvidia-1152', profile: 'L40S-8Q', available: 4, active: 2 },
      { parent: '0000:41:00.0', type: 'nvidia-1162', profile: 'L40S-8A', available: 4, active: 0 },
    ]);
    expect(check(two, 'autostart').status).toBe('OK');
    expect(check(two, 'capacity').message).toBe('8 instance(s) available across 2 type(s)');

    expect((await sim(host, 'stop', '-u', '0000:41:00.5')).code).toBe(0);
    const stopped = await health(host);
    expect(stopped.capacity[0]).toEqual({ parent: '0000:41:00.0', type: 'nvidia-1152', profile: 'L40S-8Q', available: 5, active: 1 });
    expect(check(stopped, 'autostart')).toMatchObject({ status: 'WARNING', message: `start-auto definitions not running: ${vfHandle('0000:41:00.5')} (0000:41:00.5) (vgpuctl start --autostart)` });

    const prom = await cli(['--root', host.root, 'health', '-o', 'prometheus'], NO_SMI);
    expect(prom.stdout).toContain('vgpuctl_available_instances{parent="0000:41:00.0",type="nvidia-1152",profile="L40S-8Q"} 5\n');
    expect(prom.stdout).toContain('vgpuctl_mdev_active{parent="0000:41:00.0",type="nvidia-1152",profile="L40S-8Q"} 1\n');
    expect(prom.stdout).not.toMatch(/parent="0000:41:0[0-9]\.[1-7]"/);
    if (!noPromtool) {
      const r = await execa('promtool', ['check', 'metrics'], { input: prom.stdout, reject: false, timeout: 30_000 });
      expect({ exit: r.exitCode, out: String(r.stdout) + String(r.stderr) }).toEqual({ exit: 0, out: '' });
    }
    const nagios = await cli(['--root', host.root, 'health', '-o', 'nagios'], NO_SMI);
    expect(nagios.stdout).toContain("'avail_0000:41:00.0_L40S-8Q'=5;;;0");
    expect(nagios.stdout).toContain("'active_0000:41:00.0_L40S-8Q'=1;;;0");
  });

  it('a mixed host: mdev and vendor capacity side by side; --plan reports vendor drift', async () => {
    const host = await hostFrom('mixed-mdev-vfio');
    const plan = path.join(tempDir(), 'plan.yaml');
    writeFileSync(plan, 'version: 1\ndefaults: { autostart: true }\ngpus:\n  - select: { address: "0000:82:00.0" }\n    profile: P40-12C\n    count: 2\n  - select: { pf: "0000:41:00.0" }\n    profile: L40S-8Q\n    count: 3\n');
    expect((await sim(host, 'apply', '-f', plan)).code).toBe(0);
    const h = await health(host, '--plan', plan);
    expect(h.capacity.find((c: any) => c.parent === '0000:82:00.0' && c.type === 'nvidia-286')).toMatchObject({ available: 0, active: 2 });
    expect(h.capacity.find((c: any) => c.parent === '0000:41:00.0' && c.type === 'nvidia-1152')).toMatchObject({ available: 3, active: 3 });
    expect(check(h, 'plan')).toMatchObject({ status: 'OK', message: 'host matches the plan (5 vGPUs)' });
    expect((await sim(host, 'stop', '-u', '0000:41:00.6')).code).toBe(0);
    const drift = await health(host, '--plan', plan);
    expect(check(drift, 'plan')).toMatchObject({ status: 'CRITICAL', message: `drift from the plan: ${vfHandle('0000:41:00.6')} needs start (vgpuctl apply)` });
  });
});

describe('cleanup of vendor-VFIO definitions', () => {
  it('definitions whose VF is gone are orphans: reported, removed with --orphans (dry run changes nothing); the others are kept', async () => {
    const spec = loadFixture('h100-vfio');
    spec.pci[0]!.sriov!.numvfs = 2; // c1:00.4 and c1:00.5 exist; c1:00.6 and c1:00.7 do not
    const host = await hostFrom(spec);
    mkdirSync(path.join(host.root, 'etc/vgpuctl'), { recursive: true });
    const defs = ['0000:c1:00.4', '0000:c1:00.5', '0000:c1:00.6', '0000:c1:00.7'].map((vf) => ({ vf, type: 'nvidia-1306', profile: 'H100-20C', start: 'auto' }));
    const file = path.join(host.root, 'etc/vgpuctl/vendor-vgpus.json');
    writeFileSync(file, JSON.stringify({ version: 1, vgpus: defs }, null, 2) + '\n');
    expect((await sim(host, 'start', '-u', '0000:c1:00.4')).code).toBe(0);

    const report = await cli(['--root', host.root, 'cleanup', '-o', 'json'], NO_SMI);
    const orphans = report.json().findings.filter((f: any) => f.kind === 'orphan-definition');
    expect(orphans).toEqual(['0000:c1:00.6', '0000:c1:00.7'].map((vf) => ({
      kind: 'orphan-definition', subject: vfHandle(vf), resolution: 'kept',
      detail: `/etc/vgpuctl/vendor-vgpus.json: nvidia-1306 on ${vf}: virtual function ${vf} does not exist (SR-IOV disabled, or the GPU is gone)`,
    })));
    expect(check(await health(host), 'leftovers').message).toMatch(/^2 orphan definition\(s\)/);

    const before = await snapshotTree(host.root);
    const dry = await cli(['--root', host.root, '--simulate', 'cleanup', '--orphans', '--dry-run', '-o', 'json'], NO_SMI);
    expect(dry.json().findings.filter((f: any) => f.kind === 'orphan-definition').map((f: any) => f.resolution)).toEqual(['removed', 'removed']);
    expect(dry.json().actions).toEqual([expect.objectContaining({ kind: 'write-file', path: '/etc/vgpuctl/vendor-vgpus.json' })]);
    const text = await cli(['--root', host.root, 'cleanup', '--orphans', '--dry-run'], NO_SMI);
    expect(text.stdout).toMatch(/orphan-definition .*would remove/);
    expect(await snapshotTree(host.root)).toEqual(before);

    const done = await cli(['--root', host.root, '--simulate', 'cleanup', '--orphans', '-o', 'json'], NO_SMI);
    expect(done.code).toBe(0);
    expect(JSON.parse(readFileSync(file, 'utf8')).vgpus.map((d: any) => d.vf)).toEqual(['0000:c1:00.4', '0000:c1:00.5']);
    const again = await cli(['--root', host.root, 'cleanup', '-o', 'json'], NO_SMI);
    expect(again.json().findings.filter((f: any) => f.kind === 'orphan-definition')).toEqual([]);
    // SR-IOV disabled entirely: every vendor definition is an orphan, and the boot job skips them.
    const off = loadFixture('h100-vfio');
    off.pci[0]!.sriov!.numvfs = 0;
    const offHost = await hostFrom(off);
    mkdirSync(path.join(offHost.root, 'etc/vgpuctl'), { recursive: true });
    writeFileSync(path.join(offHost.root, 'etc/vgpuctl/vendor-vgpus.json'), readFileSync(file));
    const all = (await cli(['--root', offHost.root, 'cleanup', '-o', 'json'], NO_SMI)).json();
    expect(all.findings.filter((f: any) => f.kind === 'orphan-definition').map((f: any) => f.subject)).toEqual([vfHandle('0000:c1:00.4'), vfHandle('0000:c1:00.5')]);
  });

  it('a definitions file it cannot read is reported by health and never rewritten by cleanup --orphans', async () => {
    const spec = loadFixture('h100-vfio');
    spec.pci[0]!.sriov!.numvfs = 0;
    const host = await hostFrom(spec);
    mkdirSync(path.join(host.root, 'etc/vgpuctl'), { recursive: true });
    const file = path.join(host.root, 'etc/vgpuctl/vendor-vgpus.json');
    writeFileSync(file, '{"version": 2}');
    const r = await cli(['--root', host.root, '--simulate', 'cleanup', '--orphans', '-o', 'json'], NO_SMI);
    expect(r.code).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe('{"version": 2}');
    expect(check(await health(host), 'leftovers')).toMatchObject({ status: 'WARNING', message: expect.stringMatching(/^\/etc\/vgpuctl\/vendor-vgpus.json: invalid \(version: .*\); fix or remove it/) });
  });

  it('vendor vGPUs count for nvidia-vgpu-mgr: their processes are not leftovers, and a VM on a VF blocks the restart', async () => {
    const spec = loadFixture('l40s-vfio');
    const mgr = (pid: number, args: string[]) => ({ pid, comm: 'nvidia-vgpu-mgr', cmdline: ['/usr/bin/nvidia-vgpu-mgr', ...args] });
    spec.processes = [
      mgr(1000, []), mgr(1001, ['vgpu-1']), mgr(1002, ['vgpu-2']),
      { pid: 4242, comm: 'qemu-system-x86', cmdline: ['/usr/bin/qemu-system-x86_64', '-name', 'guest=gpu-vm,debug-threads=on', '-device', 'vfio-pci,host=0000:41:00.4,id=hostdev0'] },
    ];
    const host = await hostFrom(spec);
    expect((await sim(host, 'create', '--profile', 'L40S-8Q', '--count', '2', '--define')).code).toBe(0);
    const systemctl = fakeSystemctl();
    const run = async (...extra: string[]) => (await cli(['--root', host.root, '--simulate', 'cleanup', '--restart-vgpu-mgr', '--systemctl', systemctl.path, '-o', 'json', ...extra], NO_SMI)).json();
    // One daemon + one process per live vGPU (2 on VFs): nothing is left over, nothing to restart.
    const ok = await run();
    expect(ok.findings.filter((f: any) => f.kind === 'leftover-vgpu-mgr')).toEqual([]);
    expect(ok.vgpu_mgr).toEqual({ restart: 'not-needed', blocking_vms: ['gpu-vm'] });
    // A third per-vGPU process is left over; the VM on 41:00.4 forbids the restart.
    mkdirSync(path.join(host.root, 'proc/1003'), { recursive: true });
    writeFileSync(path.join(host.root, 'proc/1003/cmdline'), '/usr/bin/nvidia-vgpu-mgr\0vgpu-3\0');
    writeFileSync(path.join(host.root, 'proc/1003/comm'), 'nvidia-vgpu-mgr\n');
    const blocked = await run();
    expect(blocked.findings.find((f: any) => f.kind === 'leftover-vgpu-mgr')).toMatchObject({ resolution: 'refused', detail: expect.stringMatching(/4 nvidia-vgpu-mgr processes .* where 3 are expected/) });
    expect(blocked.vgpu_mgr).toEqual({ restart: 'refused', blocking_vms: ['gpu-vm'] });
    expect(existsSync(systemctl.log) ? readFileSync(systemctl.log, 'utf8') : '').toBe('');
  });

  it('a vendor vGPU active on its VF, defined nowhere and named by no VM is reported, and removed with --orphans', async () => {
    const host = await hostFrom('l40s-vfio');
    expect((await sim(host, 'create', '--profile', 'L40S-8Q', '--count', '3')).code).toBe(0);
    expect((await sim(host, 'define', '-u', '0000:41:00.4')).code).toBe(0);
    // 41:00.5 is named by a shut-off domain: in use, never an orphan.
    mkdirSync(path.join(host.root, 'etc/libvirt/qemu'), { recursive: true });
    writeFileSync(path.join(host.root, 'etc/libvirt/qemu/off-vm.xml'), "<domain type='kvm'><name>off-vm</name><devices><hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' bus='0x41' slot='0x00' function='0x5'/></source></hostdev></devices></domain>");
    const r = (await cli(['--root', host.root, 'cleanup', '-o', 'json'], NO_SMI)).json();
    expect(r.findings.filter((f: any) => f.kind === 'undefined-active-mdev')).toEqual([
      { kind: 'undefined-active-mdev', subject: vfHandle('0000:41:00.6'), detail: 'nvidia-1152 on the vendor-VFIO VF 0000:41:00.6: active, not defined, no VM names it', resolution: 'kept' },
    ]);
    expect(check(await health(host), 'leftovers').message).toMatch(/^1 undefined unused mdev\(s\)/);
    const before = await snapshotTree(host.root);
    const dry = (await cli(['--root', host.root, '--simulate', 'cleanup', '--orphans', '--dry-run', '-o', 'json'], NO_SMI)).json();
    expect(dry.actions).toEqual([expect.objectContaining({ kind: 'sysfs-write', path: '/sys/bus/pci/devices/0000:41:00.6/nvidia/current_vgpu_type', data: '0' })]);
    expect(await snapshotTree(host.root)).toEqual(before);
    expect((await cli(['--root', host.root, '--simulate', 'cleanup', '--orphans'], NO_SMI)).code).toBe(0);
    const cur = (vf: string) => readFileSync(path.join(host.root, 'sys/bus/pci/devices', vf, 'nvidia/current_vgpu_type'), 'utf8').trim();
    expect([cur('0000:41:00.4'), cur('0000:41:00.5'), cur('0000:41:00.6')]).toEqual(['1152', '1152', '0']);
  });
});
