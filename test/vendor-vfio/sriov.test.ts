/** `sriov enable|status`: writing sriov_numvfs in the simulator makes the VFs (with the vendor interface) appear. */
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, tempDir } from '../helpers/hosts.js';
import { loadFixture } from '../../src/simulator/layout.js';

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
