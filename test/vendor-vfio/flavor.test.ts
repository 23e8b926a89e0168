/** flavor --profile for vendor-VFIO vGPUs: the PCI alias nova-config writes for them. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, tempDir } from '../helpers/hosts.js';

describe('flavor on vendor-VFIO and mixed hosts', () => {
  it('asks for the alias of the profile (by profile or type id); several per instance as the board allows, old releases refused', async () => {
    const host = await hostFrom('mixed-mdev-vfio');
    await cli(['--root', host.root, '--simulate', 'create', '--profile', 'L40S-8Q', '--define']);
    await cli(['--root', host.root, '--simulate', 'create', '--profile', 'P40-12C', '--define']);
    const nova = (await cli(['--root', host.root, 'nova-config', '--release', '2024.1', '-o', 'json'])).json();
    const r = await cli(['--root', host.root, 'flavor', '--profile', 'L40S-8Q', '--release', '2024.1', '-o', 'json']);
    expect(r.stderr).toBe('');
    expect(r.json()).toMatchObject({ extra_specs: { 'pci_passthrough:alias': 'L40S-8Q:1' }, command: 'openstack flavor set FLAVOR --property "pci_passthrough:alias=L40S-8Q:1"', warnings: [] });
    // The alias named is the one nova-config wrote.
    expect(nova.vendor_vfio.aliases.map((a: any) => a.name)).toEqual(['L40S-8Q']);
    expect((await cli(['--root', host.root, 'flavor', '--profile', 'nvidia-1152', '--release', '2024.1', '-o', 'json'])).json().extra_specs).toEqual({ 'pci_passthrough:alias': 'L40S-8Q:1' });
    // The mdev vGPU of the same host keeps its resource class; an old release still works for it.
    expect((await cli(['--root', host.root, 'flavor', '--profile', 'P40-12C', '--release', 'zed', '-o', 'json'])).json().extra_specs).toEqual({ 'resources:VGPU': '1' });
    // Several per instance: as many VFs as configured (one here), and only profiles the board lets share a VM.
    const two = await cli(['--root', host.root, 'flavor', '--profile', 'L40S-8Q', '-n', '2', '--release', '2024.1']);
    expect(two.code).toBe(1);
    expect(two.stderr).toMatch(/2 x L40S-8Q in one instance needs 2 virtual functions carrying it; this host has 1/);
    await cli(['--root', host.root, '--simulate', 'create', '--profile', 'L40S-8Q', '--define']);
    expect((await cli(['--root', host.root, 'flavor', '--profile', 'L40S-8Q', '-n', '2', '--release', '2024.1', '-o', 'json'])).json().extra_specs).toEqual({ 'pci_passthrough:alias': 'L40S-8Q:2' });
    const b = await hostFrom('l40s-vfio');
    await cli(['--root', b.root, '--simulate', 'create', '--profile', 'L40S-1B', '--count', '2', '--define']);
    const bb = await cli(['--root', b.root, 'flavor', '--profile', 'L40S-1B', '-n', '2', '--release', '2024.1']);
    expect(bb.code).toBe(1);
    expect(bb.stderr).toMatch(/2 x L40S-1B in one instance: multiple vGPUs in a VM not supported/);
    const old = await cli(['--root', host.root, 'flavor', '--profile', 'L40S-8Q', '--release', 'zed']);
    expect(old.code).toBe(1);
    expect(old.stderr).toMatch(/which nova reads from 2023.1 on; zed cannot use them/);
  });

  it('--from-plan: the alias of the plan\'s vendor vGPUs before any exists', async () => {
    const host = await hostFrom('l40s-vfio');
    const plan = path.join(tempDir(), 'plan.yaml');
    writeFileSync(plan, 'version: 1\ngpus:\n  - select: { all: true }\n    profile: L40S-24Q\n    count: 2\n');
    const r = await cli(['--root', host.root, 'flavor', '--profile', 'L40S-24Q', '--from-plan', plan, '--release', '2024.1', '-o', 'json']);
    expect(r.stderr).toBe('');
    expect(r.json().extra_specs).toEqual({ 'pci_passthrough:alias': 'L40S-24Q:1' });
    const none = await cli(['--root', host.root, 'flavor', '--profile', 'L40S-24Q', '--release', '2024.1']);
    expect(none.code).toBe(1);
  });
});
