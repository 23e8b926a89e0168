/** `sriov enable|status`: writing sriov_numvfs in the simulator makes the VFs (with the vendor interface) appear. */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, tempDir } from '../helpers/hosts.js';
import { loadFixture } from '../../src/simulator/layout.js';
import { chooseSriovMethod, DEFAULT_SRIOV_MANAGE } from '../../src/vendor-vfio/sriov.js';

async function disabledH100() {
  const spec = loadFixture('h100-vfio');
  spec.pci[0]!.sriov!.numvfs = 0;
  return hostFrom(spec);
}

describe('sriov enable / status', () => {
  it('a GPU with SR-IOV off shows sriov-disabled; enable makes 20 ready VFs; then create works', async () => {
    const host = await disabledH100();
    expect((await cli(['--root', host.root, 'gpus', '-o', 'json'])).json().gpus[0].mode).toBe('sriov-disabled');
    expect((await cli(['--root', host.root, 'sriov', 'status', '-o', 'json'])).json().sriov).toEqual([{ pf: '0000:c1:00.0', totalvfs: 20, numvfs: 0, vfs: [], ready: 0 }]);
    const r = await cli(['--root', host.root, '--simulate', 'sriov', 'enable', 'c1:00.0', '-o', 'json']);
    expect(r.stderr).toBe('');
    expect(r.json()).toMatchObject({ method: 'write sriov_numvfs', enabled: [{ pf: '0000:c1:00.0', numvfs: 20, ready: 20 }] });
    expect((await cli(['--root', host.root, 'gpus', '-o', 'json'])).json().gpus[0].mode).toBe('vendor-vfio');
    const c = await cli(['--root', host.root, '--simulate', 'create', '--profile', 'H100-40C', '--count', '2', '-o', 'json']);
    expect(c.code).toBe(0);
    expect(c.json().created.map((d: any) => d.vf)).toEqual(['0000:c1:00.4', '0000:c1:00.5']);
  });

  it('runs sriov-manage -e with a time limit and says when it fails', async () => {
    const host = await disabledH100();
    const fake = path.join(tempDir(), 'sriov-manage');
    writeFileSync(fake, '#!/bin/sh\necho "called $*" >&2\nexit 3\n');
    chmodSync(fake, 0o755);
    const r = await cli(['--root', host.root, 'sriov', 'enable', 'all', '--sriov-manage', fake]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/sriov-manage failed \(exit 3\): called -e ALL/);
    const hang = path.join(tempDir(), 'sriov-manage');
    writeFileSync(hang, '#!/bin/sh\nsleep 30\n');
    chmodSync(hang, 0o755);
    const t = await cli(['--root', host.root, 'sriov', 'enable', '0000:c1:00.0', '--sriov-manage', hang, '--timeout', '0.5']);
    expect(t.stderr).toMatch(/did not finish within 0.5 s/);
  });
});

describe('sriov enable: sriov-manage on the running machine, sriov_numvfs under --simulate', () => {
  /** A fake sriov-manage that records its arguments. */
  function recordingSriovManage(): { path: string; calls: () => string[] } {
    const dir = tempDir();
    const log = path.join(dir, 'calls');
    const p = path.join(dir, 'sriov-manage');
    writeFileSync(p, `#!/bin/sh\necho "$*" >> '${log}'\nexit 0\n`);
    chmodSync(p, 0o755);
    return { path: p, calls: () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []) };
  }

  it('runs the sriov-manage VGPUCTL_SRIOV_MANAGE names, with -e PF; under --simulate writes sriov_numvfs and runs nothing', async () => {
    const ready = await hostFrom('l40s-vfio'); // VFs already there: sriov-manage returns, every VF is ready
    const fake = recordingSriovManage();
    const r = await cli(['--root', ready.root, 'sriov', 'enable', '41:00.0', '-o', 'json'], { VGPUCTL_SRIOV_MANAGE: fake.path });
    expect(r.stderr).toBe('');
    expect(r.json()).toMatchObject({ method: `${fake.path} -e 0000:41:00.0`, enabled: [{ pf: '0000:41:00.0', numvfs: 32, ready: 32 }] });
    expect(fake.calls()).toEqual(['-e 0000:41:00.0']);

    const off = await disabledH100();
    const s = await cli(['--root', off.root, '--simulate', 'sriov', 'enable', '-o', 'json'], { VGPUCTL_SRIOV_MANAGE: fake.path });
    expect(s.json()).toMatchObject({ method: 'write sriov_numvfs', enabled: [{ pf: '0000:c1:00.0', numvfs: 20, ready: 20 }] });
    expect(readFileSync(path.join(off.root, 'sys/bus/pci/devices/0000:c1:00.0/sriov_numvfs'), 'utf8').trim()).toBe('20');
    expect(fake.calls()).toEqual(['-e 0000:41:00.0']); // not run again
  });

  it('never runs the default sriov-manage against a --root tree, and says what to do when it is missing', async () => {
    const off = await disabledH100();
    const r = await cli(['--root', off.root, 'sriov', 'enable']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/\/usr\/lib\/nvidia\/sriov-manage acts on this machine's GPUs, not on the tree given with --root; use --simulate/);
    const missing = await cli(['--root', off.root, 'sriov', 'enable', '--sriov-manage', path.join(tempDir(), 'nope')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/nope is not an executable program; give its path with --sriov-manage or VGPUCTL_SRIOV_MANAGE, or write sriov_numvfs directly with --write-numvfs/);
    expect((await cli(['--root', off.root, 'sriov', 'enable', '--write-numvfs', '--sriov-manage', '/bin/true'])).code).toBe(2);
    expect(readFileSync(path.join(off.root, 'sys/bus/pci/devices/0000:c1:00.0/sriov_numvfs'), 'utf8').trim()).toBe('0');
  });

  it('chooses the method from the flags, the environment and the machine', () => {
    const base = { simulated: false, writeNumvfs: false, flagPath: undefined, env: {}, isSystemRoot: true, isProgram: (p: string) => p === DEFAULT_SRIOV_MANAGE };
    // On the real machine: /usr/lib/nvidia/sriov-manage of the machine (never a file under --root).
    expect(chooseSriovMethod(base)).toEqual({ kind: 'sriov-manage', path: '/usr/lib/nvidia/sriov-manage' });
    expect(() => chooseSriovMethod({ ...base, isProgram: () => false })).toThrow(/\/usr\/lib\/nvidia\/sriov-manage is not an executable program \(it comes with the NVIDIA vGPU manager: is it installed\?\)/);
    expect(chooseSriovMethod({ ...base, env: { VGPUCTL_SRIOV_MANAGE: '/opt/sm' }, isProgram: () => true })).toEqual({ kind: 'sriov-manage', path: '/opt/sm' });
    expect(chooseSriovMethod({ ...base, flagPath: '/x/sm', env: { VGPUCTL_SRIOV_MANAGE: '/opt/sm' }, isProgram: () => true })).toEqual({ kind: 'sriov-manage', path: '/x/sm' });
    expect(chooseSriovMethod({ ...base, simulated: true, isSystemRoot: false })).toEqual({ kind: 'numvfs' });
    expect(chooseSriovMethod({ ...base, writeNumvfs: true, isProgram: () => false })).toEqual({ kind: 'numvfs' });
  });
});
