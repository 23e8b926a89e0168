/**
 * Is a device in use? Running: a qemu process whose command line names the UUID, or a libvirt domain in
 * /run/libvirt/qemu naming it. Named only by an inactive domain (/etc/libvirt/qemu): refused unless
 * --force, with the domain named.
 */
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import type { DeviceUsers } from '../host/inventory.js';

export interface Usage {
  running: string[];
  inactiveDomains: string[];
}

export function usageOf(users: DeviceUsers, uuid: string): Usage {
  const domains = users.domains.get(uuid) ?? [];
  const running = new Set<string>();
  for (const d of domains.filter((x) => x.running)) running.add(`domain ${d.name}`);
  for (const q of users.qemu.get(uuid) ?? []) running.add(q.name ? `qemu ${q.name} (pid ${q.pid})` : `qemu pid ${q.pid}`);
  const runningNames = new Set(domains.filter((x) => x.running).map((x) => x.name));
  const inactiveDomains = [...new Set(domains.filter((x) => !x.running && !runningNames.has(x.name)).map((x) => x.name))];
  return { running: [...running], inactiveDomains };
}

/** Refuses to take a device away from a VM. `verb` is what we were asked to do ("stop", "destroy"). */
export function checkNotInUse(users: DeviceUsers, uuid: string, verb: string, force: boolean): void {
  const u = usageOf(users, uuid);
  if (u.running.length > 0) {
    throw new VgpuctlError('refused', `will not ${verb} ${uuid}: it is in use by ${u.running.join(', ')}; shut the VM down first (--force does not override this)`);
  }
  if (u.inactiveDomains.length > 0 && !force) {
    throw new VgpuctlError(
      'refused',
      `will not ${verb} ${uuid}: libvirt domain ${u.inactiveDomains.join(', ')} is defined with it and would fail to start; remove it from the domain first, or use --force`,
    );
  }
}
