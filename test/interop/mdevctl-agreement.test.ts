/**
 * vgpuctl and the real mdevctl read the same tree and must agree: parents, types, available instances,
 * names, descriptions, devices and start modes, on every bundled fixture.
 */
import { describe, expect, it } from 'vitest';
import { listBundledFixtures } from '../../src/simulator/layout.js';
import { cli } from '../helpers/cli.js';
import { hostFrom } from '../helpers/hosts.js';
import { canRunMdevctlOracle } from '../helpers/tools.js';
import { flattenDump, mdevctl, mdevctlJson } from '../helpers/mdevctl.js';

const skip = !canRunMdevctlOracle();
// vendor-VFIO fixtures (issue 9) have VF types mdevctl cannot see by design; their mdev side is covered in test/vendor-vfio.
const fixtures = listBundledFixtures().filter((f) => !f.endsWith('-vfio'));

function typesFromVgpuctl(json: any): Record<string, Record<string, any>> {
  const out: Record<string, Record<string, any>> = {};
  for (const t of json.types) {
    out[t.parent] ??= {};
    const entry: Record<string, unknown> = { available_instances: t.available_instances, device_api: t.device_api };
    if (t.name) entry['name'] = t.name;
    if (t.description) entry['description'] = t.description;
    out[t.parent]![t.type] = entry;
  }
  return out;
}

function devicesFromVgpuctl(json: any): Record<string, Record<string, any>> {
  const out: Record<string, Record<string, any>> = {};
  for (const d of json.devices) {
    out[d.parent] ??= {};
    out[d.parent]![d.uuid] = { mdev_type: d.type, start: d.autostart ? 'auto' : 'manual', attrs: d.attrs };
  }
  return out;
}

describe.skipIf(skip)('agreement with mdevctl on every fixture', () => {
  it('there are fixtures to compare', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(5);
  });

  describe.each(fixtures)('%s', (fixture) => {
    it('types', async () => {
      const host = await hostFrom(fixture);
      const ours = await cli(['--root', host.root, 'types', '-o', 'json']);
      expect(ours.code).toBe(0);
      const theirs = flattenDump(await mdevctlJson(host.root, 'types', '--dumpjson'));
      expect(typesFromVgpuctl(ours.json())).toEqual(theirs);
      // and the parent order and type order are the same as mdevctl's
      expect(ours.json().types.map((t: any) => `${t.parent} ${t.type}`)).toEqual(
        Object.entries(theirs).flatMap(([p, ts]) => Object.keys(ts).map((t) => `${p} ${t}`)),
      );
    });

    it('list (active) and list --defined', async () => {
      const host = await hostFrom(fixture);
      for (const flags of [[], ['--defined']]) {
        const ours = await cli(['--root', host.root, 'list', ...flags, '-o', 'json']);
        expect(ours.code).toBe(0);
        const theirs = flattenDump(await mdevctlJson(host.root, 'list', ...flags, '--dumpjson'));
        expect(devicesFromVgpuctl(ours.json())).toEqual(theirs);
      }
    });
  });
});

describe.skipIf(skip)('sim settle applies what mdevctl wrote', () => {
  it('a device mdevctl start created in the chroot is listed by both tools, and mdevctl stop removes it', async () => {
    const host = await hostFrom('p40-seed004');
    const uuid = '334855e2-079b-11ee-9fc9-83e0dccb6713';
    const start = await mdevctl(host.root, 'start', '-u', uuid, '-p', '0000:82:00.0', '-t', 'nvidia-286');
    expect(start.code).toBe(0);
    const settled = await cli(['--root', host.root, 'sim', 'settle', '-o', 'json']);
    expect(settled.json()).toMatchObject({ created: [{ uuid, type: 'nvidia-286' }], refused: [] });

    const ours = (await cli(['--root', host.root, 'list', '-o', 'json'])).json().devices;
    expect(ours).toEqual([expect.objectContaining({ uuid, parent: '0000:82:00.0', type: 'nvidia-286', profile: 'P40-12C', active: true })]);
    expect(flattenDump(await mdevctlJson(host.root, 'list', '--dumpjson'))).toEqual({
      '0000:82:00.0': { [uuid]: { mdev_type: 'nvidia-286', start: 'manual', attrs: [] } },
    });
    const types = (await cli(['--root', host.root, 'types', '-p', '0000:82:00.0', '--available', '-o', 'json'])).json().types;
    expect(types).toEqual([expect.objectContaining({ type: 'nvidia-286', available_instances: 1 })]);

    expect((await mdevctl(host.root, 'stop', '-u', uuid)).code).toBe(0);
    expect((await cli(['--root', host.root, 'sim', 'settle', '-o', 'json'])).json().removed).toEqual([uuid]);
    expect((await cli(['--root', host.root, 'list', '-o', 'json'])).json().devices).toEqual([]);
    expect(await mdevctlJson(host.root, 'list', '--dumpjson')).toEqual([]);
  });
});
