/** vm-check with vendor-VFIO vGPUs: a domain's VF hostdevs are vGPUs, judged by the multi-vGPU rules. */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom } from '../helpers/hosts.js';
import type { HostRoot } from '../../src/host/host-root.js';
import { vfHandle } from '../../src/vendor-vfio/discovery.js';

function domain(host: HostRoot, name: string, vfs: string[], mdevs: string[] = [], running = false): void {
  const pci = vfs.map((vf) => {
    const [, bus, sf] = vf.split(':');
    const [slot, fn] = sf!.split('.');
    return `<hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' bus='0x${bus}' slot='0x${slot}' function='0x${fn}'/></source></hostdev>`;
  });
  const md = mdevs.map((u) => `<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='${u}'/></source></hostdev>`);
  const dir = path.join(host.root, running ? 'run/libvirt/qemu' : 'etc/libvirt/qemu');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, `${name}.xml`), `<domain type='kvm'><name>${name}</name><devices>${[...pci, ...md].join('')}</devices></domain>`);
}

const check = async (host: HostRoot, ...args: string[]) => {
  const r = await cli(['--root', host.root, 'vm-check', ...args, '-o', 'json']);
  return { code: r.code, json: r.json(), stderr: r.stderr };
};

describe('vm-check with vendor-VFIO vGPUs', () => {
  it('two VFs of one L40S with a Q profile would start; a VF without its vGPU, a B profile pair, or a VF another VM runs would not', async () => {
    const host = await hostFrom('l40s-vfio');
    await cli(['--root', host.root, '--simulate', 'create', '--profile', 'L40S-8Q', '--count', '2', '--define']);
    await cli(['--root', host.root, '--simulate', 'define', '-u', '0000:41:00.6', '-t', 'nvidia-1152']);
    domain(host, 'two', ['0000:41:00.4', '0000:41:00.5']);
    const two = await check(host, '--domain', 'two');
    expect(two.code).toBe(0);
    expect(two.json.vms[0]).toMatchObject({ verdict: 'would-start', reasons: [] });
    expect(two.json.vms[0].vgpus.map((v: any) => [v.uuid, v.parent, v.gpu, v.profile, v.board, v.series, v.active])).toEqual([
      [vfHandle('0000:41:00.4'), '0000:41:00.4', '0000:41:00.0', 'L40S-8Q', 'L40S', 'Q', true],
      [vfHandle('0000:41:00.5'), '0000:41:00.5', '0000:41:00.0', 'L40S-8Q', 'L40S', 'Q', true],
    ]);

    domain(host, 'stopped', ['0000:41:00.6']);
    const stopped = await check(host, '--domain', 'stopped');
    expect(stopped.code).toBe(1);
    expect(stopped.json.vms[0].reasons).toEqual([{ severity: 'error', code: 'not-active', message: '0000:41:00.6 carries no vGPU (defined as L40S-8Q): start it (vgpuctl start -u 0000:41:00.6) before the VM', uuids: [vfHandle('0000:41:00.6')] }]);

    // -u takes VFs and handles; a VF a running VM holds belongs to that VM.
    domain(host, 'owner', ['0000:41:00.5'], [], true);
    const taken = await check(host, '-u', '41:00.4', '-u', vfHandle('0000:41:00.5'));
    expect(taken.code).toBe(1);
    expect(taken.json.vms[0].reasons.map((r: any) => r.code)).toEqual(['in-use']);
    expect(taken.json.vms[0].reasons[0].message).toMatch(/0000:41:00.5 .* is in use by domain owner/);
    expect((await cli(['--root', host.root, 'vm-check', '-u', '0000:41:01.0'])).code).toBe(1);
  });

  it('the board rule: two L40S-1B (not allowed to share a VM) would fail with the driver\'s reason', async () => {
    const host = await hostFrom('l40s-vfio');
    await cli(['--root', host.root, '--simulate', 'create', '--profile', 'L40S-1B', '--count', '2']);
    domain(host, 'b', ['0000:41:00.4', '0000:41:00.5']);
    const r = await check(host, '--domain', 'b');
    expect(r.code).toBe(1);
    expect(r.json.vms[0].reasons.map((x: any) => x.code)).toEqual(['multi-vgpu-unsupported']);
    expect(r.json.vms[0].reasons[0].message).toMatch(/^multiple vGPUs in a VM not supported/);
  });

  it('a mixed host: a P40 mdev and an L40S VF in one VM are of different boards and series', async () => {
    const host = await hostFrom('mixed-mdev-vfio');
    await cli(['--root', host.root, '--simulate', 'create', '--profile', 'L40S-8Q']);
    const mdev = (await cli(['--root', host.root, '--simulate', 'create', '--profile', 'P40-24Q', '-o', 'json'])).json().created[0].uuid;
    domain(host, 'mix', ['0000:41:00.4'], [mdev]);
    const r = await check(host, '--domain', 'mix');
    expect(r.code).toBe(1);
    expect(r.json.vms[0].reasons.map((x: any) => x.code)).toEqual(['mixed-boards']);
    expect(r.json.vms[0].reasons.some((x: any) => x.code === 'passthrough-and-vgpu')).toBe(false);
  });
});
