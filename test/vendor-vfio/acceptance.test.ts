/**
 * Issue 9 acceptance, on each vendor-VFIO fixture: types, create, list, plan/apply, assert, nova-config
 * (nova's parser), health, cleanup, destroy, with the JSON contract of mdev hosts (the same keys as on the
 * P40 host; vendor records add `vf`).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, tempDir } from '../helpers/hosts.js';
import { novaCheck, skipWithoutNova } from '../nova/nova-python.js';
import { vfHandle } from '../../src/vendor-vfio/discovery.js';

const NO_SMI = { VGPUCTL_NVIDIA_SMI: '/bin/false' };
const keys = (o: object) => Object.keys(o).sort();

/** The key sets of an mdev host's records, the contract the vendor records must keep. */
async function mdevContract() {
  const p40 = await hostFrom('p40-seed004');
  await cli(['--root', p40.root, '--simulate', 'create', '--profile', 'P40-12C', '--define']);
  const type = (await cli(['--root', p40.root, 'types', '-o', 'json'])).json().types[0];
  const device = (await cli(['--root', p40.root, 'list', '--all', '-o', 'json'])).json().devices[0];
  const h = (await cli(['--root', p40.root, 'health', '-o', 'json'], NO_SMI)).json();
  const c = (await cli(['--root', p40.root, 'cleanup', '--dry-run', '-o', 'json'], NO_SMI)).json();
  return { type: keys(type), device: keys(device), capacity: keys(h.capacity[0]), health: keys(h), cleanup: keys(c) };
}

const cases = [
  { fixture: 'l40s-vfio', pf: '0000:41:00.0', product: '26b9', profile: 'L40S-12Q', id: 1153, count: 4, totalVfs: 32, vfs: ['0000:41:00.4', '0000:41:00.5', '0000:41:00.6', '0000:41:00.7'] },
  { fixture: 'h100-vfio', pf: '0000:c1:00.0', product: '2331', profile: 'H100-20C', id: 1306, count: 4, totalVfs: 20, vfs: ['0000:c1:00.4', '0000:c1:00.5', '0000:c1:00.6', '0000:c1:00.7'] },
];

describe.each(cases)('$fixture: the whole life of vendor vGPUs with the mdev JSON contract', (c) => {
  it('types, plan/apply, list, assert, nova-config, health, cleanup, destroy', async () => {
    const contract = await mdevContract();
    const host = await hostFrom(c.fixture);
    const sim = (...a: string[]) => cli(['--root', host.root, '--simulate', ...a], NO_SMI);
    const read = async (...a: string[]) => {
      const r = await cli(['--root', host.root, ...a, '-o', 'json'], NO_SMI);
      expect(r.stderr).toBe('');
      return r.json();
    };

    const types = (await read('types', '--profile', c.profile)).types;
    expect(types).toHaveLength(c.totalVfs); // every VF offers it on an empty GPU
    expect(keys(types[0])).toEqual(contract.type);
    expect(types[0]).toMatchObject({ type: `nvidia-${c.id}`, profile: c.profile, available_instances: 1 });

    const plan = path.join(tempDir(), 'plan.yaml');
    writeFileSync(plan, `version: 1\ndefaults: { autostart: true }\ngpus:\n  - select: { pf: "${c.pf}" }\n    profile: ${c.profile}\n    count: ${c.count}\n`);
    const applied = await sim('apply', '-f', plan, '-o', 'json');
    expect(applied.stderr).toBe('');
    expect(applied.code).toBe(0);
    expect(applied.json().devices.map((d: any) => d.parent)).toEqual(c.vfs);
    // The GPU is full now (H100: 4 x 20C of 80 GB): every table is the header only; the definitions still name the type.
    expect((await sim('assert', '-f', plan)).code).toBe(0);
    expect((await sim('apply', '-f', plan, '-o', 'json')).json().changed).toBe(false);

    const devices = (await read('list', '--all')).devices;
    expect(devices.map((d: any) => d.uuid)).toEqual(c.vfs.map(vfHandle));
    expect(keys(devices[0])).toEqual([...contract.device, 'vf'].sort());
    expect(devices.every((d: any) => d.active && d.defined && d.autostart && d.type === `nvidia-${c.id}`)).toBe(true);

    const h = await read('health');
    expect(keys(h)).toEqual(contract.health);
    const cap = h.capacity.find((x: any) => x.type === `nvidia-${c.id}`);
    expect(keys(cap)).toEqual(contract.capacity);
    expect(cap).toMatchObject({ parent: c.pf, active: c.count });

    const cleanup = await read('cleanup', '--dry-run');
    expect(keys(cleanup)).toEqual(contract.cleanup);
    expect(cleanup.findings.filter((f: any) => f.kind === 'orphan-definition')).toEqual([]);

    if (!skipWithoutNova()) {
      const nova = await read('nova-config', '--release', '2024.1');
      const file = path.join(tempDir(), 'nova.conf');
      writeFileSync(file, nova.text);
      const [res] = await novaCheck([{ file, devices: [...c.vfs, c.pf.replace(/0\.0$/, '2.0')].map((a) => ({ address: a, vendor_id: '10de', product_id: c.product, parent_addr: c.pf })) }]);
      expect(res!.parse_error).toBeUndefined();
      expect(res!.whitelist_error).toBeUndefined();
      expect(Object.values(res!.assignable!)).toEqual([true, true, true, true, false]);
    }

    const d = await sim('destroy', '-u', c.vfs[3]!, '-o', 'json');
    expect(d.code).toBe(0);
    expect(d.json().destroyed).toMatchObject({ uuid: vfHandle(c.vfs[3]!), vf: c.vfs[3], stopped: true, undefined: [c.vfs[3]] });
    const after = await sim('assert', '-f', plan, '-o', 'json');
    expect(after.code).toBe(1);
    expect(after.json().differences.map((x: any) => x.action)).toEqual(['create', 'define']);
  });
});
