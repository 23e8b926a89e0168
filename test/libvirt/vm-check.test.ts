/**
 * vm-check reproduces seed 004: on a Tesla P40 carrying four P40-6Q, a VM with all four is refused with
 * the driver's reason ("multiple vGPUs in a VM not supported"), two VMs with one P40-6Q each start, and
 * the full-card P40-24Q is fine. The domains are built from `vgpuctl libvirt-xml` output, and libvirt's
 * schema accepts them: what fails is the driver, which is why vm-check exists.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, tempDir } from '../helpers/hosts.js';
import { hasTool } from '../helpers/tools.js';
import { loadFixture } from '../../src/simulator/layout.js';
import type { FixtureSpec } from '../../src/simulator/fixture-spec.js';
import { minimalDomain, virtXmlValidate } from './domain.js';

// Every test lays out host trees and runs the CLI many times; slow machines need the room.
vi.setConfig({ testTimeout: 180_000 });

// Seed 004's four P40-6Q (mdevctl start -u ... -t nvidia-50 on 0000:82:00.0).
const SIX_Q = ['334852fe-079b-11ee-9fc7-77463608f467', '3348556a-079b-11ee-9fc8-7fb0c612aedd', '334855e2-079b-11ee-9fc9-83e0dccb6713', '33485650-079b-11ee-9fca-8f6415d2734c'];
const P40 = loadFixture('p40-seed004');

function p40Host(mdevs: FixtureSpec['mdevs'], extraGpu = false): Partial<FixtureSpec> {
  const second = { ...P40.pci[0]!, address: '0000:03:00.0', path: ['pci0000:00', '0000:00:02.0'], iommu_group: 12, numa_node: 0 };
  return { ...P40, pci: extraGpu ? [...P40.pci, second] : P40.pci, mdevs };
}

async function domainFile(root: string, dir: string, name: string, uuids: string[]): Promise<string> {
  const r = await cli(['--root', root, 'libvirt-xml', ...uuids.flatMap((u) => ['-u', u])]);
  expect(r.code, r.stderr).toBe(0);
  const file = path.join(dir, `${name}.xml`);
  writeFileSync(file, minimalDomain(r.stdout, name));
  if (hasTool('virt-xml-validate')) expect((await virtXmlValidate(dir, `${name}.check.xml`, minimalDomain(r.stdout, name))).ok).toBe(true);
  return file;
}

describe('vm-check: seed 004 on the P40', () => {
  it('four P40-6Q in one VM: refused with the driver reason, exit 1', async () => {
    const host = await hostFrom(p40Host(SIX_Q.map((uuid) => ({ uuid, parent: '0000:82:00.0', type: 'nvidia-50' }))));
    const dir = tempDir();
    const file = await domainFile(host.root, dir, 'y-k8s-n-1', SIX_Q);
    const r = await cli(['--root', host.root, 'vm-check', '--domain', file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^VM y-k8s-n-1 \(.*y-k8s-n-1.xml\): would fail to start$/m);
    expect(r.stdout).toMatch(/error: multiple vGPUs in a VM not supported: the NVIDIA vGPU manager refuses a VM with several vGPUs when one is P40-6Q; on P40 \(Pascal\) only P40-24Q, P40-24C can be combined in one VM/);
    expect(r.stdout).toMatch(/error: .* are all on the physical GPU 0000:82:00.0: on Pascal boards the driver gives a VM at most one vGPU of each physical GPU/);
    const json = (await cli(['--root', host.root, 'vm-check', '--domain', file, '-o', 'json'])).json();
    expect(json.verdict).toBe('would-fail');
    expect(json.vms[0].reasons.map((x: { code: string }) => x.code)).toEqual(['multi-vgpu-unsupported', 'same-gpu']);
    expect(json.vms[0].vgpus.map((v: { profile: string }) => v.profile)).toEqual(['P40-6Q', 'P40-6Q', 'P40-6Q', 'P40-6Q']);
    // Same verdict from the UUIDs alone.
    const byUuid = await cli(['--root', host.root, 'vm-check', ...SIX_Q.flatMap((u) => ['-u', u])]);
    expect(byUuid.code).toBe(1);
    expect(byUuid.stdout).toMatch(/multiple vGPUs in a VM not supported/);
  });

  it('two P40-6Q in two VMs: both would start, exit 0 (domains by name from /etc/libvirt/qemu)', async () => {
    const host = await hostFrom(p40Host(SIX_Q.slice(0, 2).map((uuid) => ({ uuid, parent: '0000:82:00.0', type: 'nvidia-50' }))));
    const qemu = path.join(host.root, 'etc', 'libvirt', 'qemu');
    mkdirSync(qemu, { recursive: true });
    await domainFile(host.root, qemu, 'y-k8s-n-1', [SIX_Q[0]!]);
    await domainFile(host.root, qemu, 'y-k8s-n-2', [SIX_Q[1]!]);
    const r = await cli(['--root', host.root, 'vm-check', '--domain', 'y-k8s-n-1', '--domain', 'y-k8s-n-2']);
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/^VM y-k8s-n-1 \(.*\/etc\/libvirt\/qemu\/y-k8s-n-1.xml\): would start$/m);
    expect(r.stdout).toMatch(/^VM y-k8s-n-2 .*: would start$/m);
    expect(r.stdout).not.toMatch(/error/);
  });

  it('one P40-24Q in a VM would start; two, on two P40s, too; a 24Q with a 24C would not', async () => {
    const one = await hostFrom(p40Host([{ uuid: SIX_Q[0]!, parent: '0000:82:00.0', type: 'nvidia-53' }]));
    const r1 = await cli(['--root', one.root, 'vm-check', '-u', SIX_Q[0]!, '-o', 'json']);
    expect(r1.code).toBe(0);
    expect(r1.json().vms[0]).toMatchObject({ verdict: 'would-start', reasons: [] });
    expect(r1.json().vms[0].vgpus[0]).toMatchObject({ profile: 'P40-24Q', board: 'P40', series: 'Q', multi_vgpu_per_vm: true, active: true });

    const two = await hostFrom(
      p40Host(
        [
          { uuid: SIX_Q[0]!, parent: '0000:82:00.0', type: 'nvidia-53' },
          { uuid: SIX_Q[1]!, parent: '0000:03:00.0', type: 'nvidia-53' },
        ],
        true,
      ),
    );
    const r2 = await cli(['--root', two.root, 'vm-check', '-u', SIX_Q[0]!, '-u', SIX_Q[1]!]);
    expect(r2.code, r2.stdout).toBe(0);
    const tooMany = await cli(['--root', two.root, 'vm-check', '-u', SIX_Q[0]!, '-u', SIX_Q[1]!, '--max-per-vm', '1']);
    expect(tooMany.code).toBe(1);
    expect(tooMany.stdout).toMatch(/2 vGPUs in one VM: at most 1 per VM/);

    const mixed = await hostFrom(
      p40Host(
        [
          { uuid: SIX_Q[0]!, parent: '0000:82:00.0', type: 'nvidia-53' },
          { uuid: SIX_Q[1]!, parent: '0000:03:00.0', type: 'nvidia-287' },
        ],
        true,
      ),
    );
    const r3 = await cli(['--root', mixed.root, 'vm-check', '-u', SIX_Q[0]!, '-u', SIX_Q[1]!]);
    expect(r3.code).toBe(1);
    expect(r3.stdout).toMatch(/different series \(Q, C\)/);
  });
});

describe('vm-check: other reasons a VM would not start', () => {
  it('leftovers: a defined but inactive vGPU, one held by a running VM, one that does not exist', async () => {
    const host = await hostFrom('leftovers');
    const off = await cli(['--root', host.root, 'vm-check', '--domain', 'y-k8s-n-2']);
    expect(off.code).toBe(1);
    expect(off.stdout).toMatch(/33485650-079b-11ee-9fca-8f6415d2734c \(P40-6Q on 0000:82:00.0\) is defined but not active: .*vgpuctl start -u 33485650-079b-11ee-9fca-8f6415d2734c/);
    const running = await cli(['--root', host.root, 'vm-check', '--domain', 'y-k8s-n-1']);
    expect(running.code, running.stdout).toBe(0); // its own vGPU, held by itself
    const taken = await cli(['--root', host.root, 'vm-check', '-u', '334855e2-079b-11ee-9fc9-83e0dccb6713']);
    expect(taken.code).toBe(1);
    expect(taken.stdout).toMatch(/in use by domain y-k8s-n-1/);
    const ghost = await cli(['--root', host.root, 'vm-check', '-u', '00000000-0000-4000-8000-000000000000']);
    expect(ghost.code).toBe(1);
    expect(ghost.stdout).toMatch(/not an mdev on this host .*mediated device '00000000-0000-4000-8000-000000000000' not found/);
  });

  it('a100d: two MIG-backed A100D-2-20C from one GPU (two VFs) in one VM would start; with an A100D-1-10C too', async () => {
    const host = await hostFrom('a100d-sriov-seed002');
    const r = await cli(['--root', host.root, 'vm-check', '-u', '5c630867-a673-5d75-aa31-a499e6c7cb19', '-u', 'eaa6e018-308e-58e2-b351-aadbcf01f5a8', '-u', 'e14355f9-33b9-590e-b65a-876490a15407', '-o', 'json']);
    expect(r.code, r.stdout).toBe(0);
    expect(r.json().vms[0].vgpus.map((v: { gpu: string }) => v.gpu)).toEqual(['0000:21:00.0', '0000:21:00.0', '0000:21:00.0']);
  });

  it('the same vGPU in two domains is flagged; bad input exits 2', async () => {
    const host = await hostFrom('leftovers');
    const dir = tempDir();
    const copy = await domainFile(host.root, dir, 'copy-of-n1', ['334855e2-079b-11ee-9fc9-83e0dccb6713']);
    const r = await cli(['--root', host.root, 'vm-check', '--domain', copy, '--domain', 'y-k8s-n-1', '-o', 'json']);
    expect(r.json().vms[1].reasons.map((x: { code: string }) => x.code)).toContain('shared-between-vms');
    expect(r.code).toBe(1); // copy-of-n1 cannot start while y-k8s-n-1 runs with it
    for (const [args, msg] of [
      [['vm-check'], /give the VM/],
      [['vm-check', '-u', 'x'], /invalid --uuid/],
      [['vm-check', '--domain', 'y-k8s-n-1', '-u', '334855e2-079b-11ee-9fc9-83e0dccb6713'], /not both/],
      [['vm-check', '-u', '334855e2-079b-11ee-9fc9-83e0dccb6713', '--max-per-vm', '0'], /invalid --max-per-vm/],
      [['vm-check', '--domain', 'bad name!'], /neither a file nor a libvirt domain name/],
    ] as const) {
      const x = await cli(['--root', host.root, ...args]);
      expect(x.code, args.join(' ')).toBe(2);
      expect(x.stderr, args.join(' ')).toMatch(msg);
    }
    const missing = await cli(['--root', host.root, 'vm-check', '--domain', 'no-such-vm']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no libvirt domain no-such-vm on this host/);
    writeFileSync(path.join(dir, 'not-a-domain.xml'), '<network><name>x</name></network>');
    const notDomain = await cli(['--root', host.root, 'vm-check', '--domain', path.join(dir, 'not-a-domain.xml')]);
    expect(notDomain.code).toBe(2);
    expect(notDomain.stderr).toMatch(/is not a libvirt domain/);
  });
});
