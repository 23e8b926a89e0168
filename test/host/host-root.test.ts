import { promises as fs } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { discoverActiveMdevs, discoverParents } from '../../src/host/mdev.js';
import { hostFrom } from '../helpers/hosts.js';
import { miniP40 } from '../helpers/mini-fixtures.js';

describe('HostRoot', () => {
  it('resolves absolute links inside the root, never on the machine running vgpuctl', async () => {
    const uuid = '334852fe-079b-11ee-9fc7-77463608f467';
    const host = await hostFrom({ ...miniP40, mdevs: [{ uuid, parent: '0000:82:00.0', type: 'nvidia-286' }] });
    // A tree copied from a host with absolute links (cp -rP of /sys by a tool that rewrote them).
    const dev = '/sys/devices/pci0000:80/0000:80:02.0/0000:82:00.0';
    for (const [link, target] of [
      ['/sys/class/mdev_bus/0000:82:00.0', dev],
      [`/sys/bus/mdev/devices/${uuid}`, `${dev}/${uuid}`],
      [`${dev}/${uuid}/mdev_type`, `${dev}/mdev_supported_types/nvidia-286`],
    ] as const) {
      await fs.rm(host.path(link));
      await fs.symlink(target, host.path(link));
    }
    const [parent] = await discoverParents(host);
    expect(parent?.sysfsPath).toBe(dev);
    expect(parent?.types.map((t) => t.id)).toEqual(['nvidia-286', 'nvidia-287', 'nvidia-50']);
    expect(await discoverActiveMdevs(host)).toEqual([expect.objectContaining({ uuid, parent: '0000:82:00.0', type: 'nvidia-286' })]);
  });

  it('maps paths both ways', async () => {
    const host = await hostFrom(miniP40);
    expect(host.hostPathOf(host.path('/sys/bus/mdev'))).toBe('/sys/bus/mdev');
    expect(() => host.path('relative')).toThrow();
  });
});
