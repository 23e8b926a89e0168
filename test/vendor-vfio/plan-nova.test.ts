/** Plans on a host mixing an mdev GPU and a vendor-VFIO GPU; nova-config for vendor-VFIO hosts; health; cleanup; sriov. */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, tempDir, writePlanFile } from '../helpers/hosts.js';
import { MIXED_PLAN_TEXT } from './mixed-plan.js';
import { vfHandle } from '../../src/vendor-vfio/discovery.js';

const current = (root: string, vf: string) => readFileSync(path.join(root, 'sys/bus/pci/devices', vf, 'nvidia/current_vgpu_type'), 'utf8').trim();

const planFile = writePlanFile;

const MIXED = MIXED_PLAN_TEXT;

describe('one plan for an mdev GPU and a vendor-VFIO GPU', () => {
  it('plan, apply, idempotent re-apply, and apply after a reboot', async () => {
    const host = await hostFrom('mixed-mdev-vfio');
    const g = (await cli(['--root', host.root, 'gpus', '-o', 'json'])).json();
    expect(g.gpus.map((x: any) => [x.address, x.mode])).toEqual([['0000:41:00.0', 'vendor-vfio'], ['0000:82:00.0', 'mdev']]);
    const plan = planFile(MIXED);
    const p = await cli(['--root', host.root, 'plan', '-f', plan, '-o', 'json']);
    expect(p.stderr).toBe('');
    const report = p.json();
    expect(report.devices.filter((d: any) => d.entry === 0)).toHaveLength(2);
    expect(report.devices.filter((d: any) => d.entry === 1).map((d: any) => d.parent)).toEqual(['0000:41:00.4', '0000:41:00.5', '0000:41:00.6']);
    const a = await cli(['--root', host.root, '--simulate', 'apply', '-f', plan, '-o', 'json']);
    expect(a.stderr).toBe('');
    expect(a.code).toBe(0);
    expect(current(host.root, '0000:41:00.6')).toBe('1152');
    const list = (await cli(['--root', host.root, 'list', '--all', '-o', 'json'])).json();
    expect(list.devices.filter((d: any) => d.active && d.defined && d.autostart)).toHaveLength(5);
    const again = (await cli(['--root', host.root, '--simulate', 'apply', '-f', plan, '-o', 'json'])).json();
    expect(again.changed).toBe(false);

    // Reboot: VFs empty, definitions kept; apply recreates the same VFs.
    const fresh = await hostFrom('mixed-mdev-vfio');
    for (const rel of ['etc/vgpuctl/vendor-vgpus.json']) {
      const dst = path.join(fresh.root, rel);
      (await import('node:fs')).mkdirSync(path.dirname(dst), { recursive: true });
      writeFileSync(dst, readFileSync(path.join(host.root, rel)));
    }
    const after = await cli(['--root', fresh.root, '--simulate', 'apply', '-f', plan, '-o', 'json']);
    expect(after.code).toBe(0);
    expect(after.json().devices.filter((d: any) => d.entry === 1).map((d: any) => [d.parent, d.needs])).toEqual([
      ['0000:41:00.4', ['start']], ['0000:41:00.5', ['start']], ['0000:41:00.6', ['start']],
    ]);
    expect(current(fresh.root, '0000:41:00.5')).toBe('1152');
  });

  it('a plan the vendor GPU cannot meet is refused whole, nothing written', async () => {
    const host = await hostFrom('mixed-mdev-vfio');
    const plan = planFile(MIXED.replace('count: 3', 'count: 7'));
    const r = await cli(['--root', host.root, '--simulate', 'apply', '-f', plan]);
    expect(r.code).toBe(2); // a plan the host cannot carry is bad input
    expect(r.stderr).toMatch(/gpus\[1\] \(L40S-8Q\): 0000:41:00.0 has room for 6 more L40S-8Q/);
    expect(current(host.root, '0000:41:00.4')).toBe('0');
  });
});

describe('health and cleanup on a vendor-VFIO host', () => {
  it('health reports and cleanup runs with the same JSON shape', async () => {
    const host = await hostFrom('l40s-vfio');
    await cli(['--root', host.root, '--simulate', 'create', '--profile', 'L40S-24Q', '--count', '2', '--define']);
    const h = await cli(['--root', host.root, 'health', '-o', 'json'], { VGPUCTL_NVIDIA_SMI: '/bin/false' });
    const hj = h.json();
    expect(hj.checks.length).toBeGreaterThan(0);
    expect(hj.capacity.find((c: any) => c.profile === 'L40S-24Q')).toEqual({ parent: '0000:41:00.0', type: 'nvidia-1155', profile: 'L40S-24Q', available: 0, active: 2 });
    const c = await cli(['--root', host.root, 'cleanup', '--dry-run', '-o', 'json'], { VGPUCTL_NVIDIA_SMI: '/bin/false' });
    expect(c.code).toBeLessThanOrEqual(1);
    expect(c.json()).toMatchObject({ dry_run: true });
    expect(c.json().findings.filter((f: any) => f.kind === 'undefined-active-mdev')).toEqual([]);
  });
});

import { novaCheck, skipWithoutNova } from '../nova/nova-python.js';

describe.skipIf(skipWithoutNova())('nova-config on a vendor-VFIO host (checked with nova\'s parser)', () => {
  it('device_spec by VF address, managed no, resource_class per profile, and the alias', async () => {
    const host = await hostFrom('l40s-vfio');
    await cli(['--root', host.root, '--simulate', 'create', '--profile', 'L40S-8Q', '--count', '2', '--define', '--auto']);
    const r = await cli(['--root', host.root, 'nova-config', '--release', '2024.1', '-o', 'json']);
    expect(r.stderr).toBe('');
    const out = r.json();
    expect(out.vendor_vfio.device_specs).toEqual(['0000:41:00.4', '0000:41:00.5'].map((a) => ({ vendor_id: '10de', product_id: '26b9', address: a, managed: 'no', resource_class: 'CUSTOM_NVIDIA_L40S_8Q' })));
    expect(out.vendor_vfio.aliases).toEqual([{ name: 'L40S-8Q', device_type: 'type-VF', resource_class: 'CUSTOM_NVIDIA_L40S_8Q' }]);
    const file = path.join(tempDir(), 'nova.conf');
    writeFileSync(file, out.text);
    const [res] = await novaCheck([{ file, devices: [{ address: '0000:41:00.4', vendor_id: '10de', product_id: '26b9', parent_addr: '0000:41:00.0' }, { address: '0000:41:00.6', vendor_id: '10de', product_id: '26b9', parent_addr: '0000:41:00.0' }] }]);
    expect(res!.parse_error).toBeUndefined();
    expect(res!.whitelist_error).toBeUndefined();
    expect(res!.whitelist_specs).toBe(2);
    expect(res!.assignable).toEqual({ '0000:41:00.4': true, '0000:41:00.6': false });
    const old = await cli(['--root', host.root, 'nova-config', '--release', 'zed']);
    expect(old.code).toBe(1);
    expect(old.stderr).toMatch(/from 2023.1 on/);
  });
});
