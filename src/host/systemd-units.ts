/**
 * Per-device systemd units that start mdevs at boot (StackHPC's `nvidia-mdev@<uuid>.service`, and any
 * `<name>@<uuid>.service`): the unit files in /etc/systemd/system and their links in *.wants/.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { HOST_PATHS, type HostRoot } from './host-root.js';

export interface DeviceUnit {
  uuid: string;
  unit: string;
  /** Host path of the link or file. */
  path: string;
  kind: 'wants-link' | 'unit-file';
  /** Where a link points (as written), for restoring it. */
  target: string | null;
  /** Content of a unit file, for restoring it. */
  content: string | null;
}

const UNIT_RE = /^[A-Za-z0-9_.:-]+@([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.service$/i;

export async function findDeviceUnits(host: HostRoot): Promise<DeviceUnit[]> {
  const base = host.path(HOST_PATHS.systemdSystem);
  const out: DeviceUnit[] = [];
  for (const entry of await host.list(base)) {
    const full = path.join(base, entry);
    const m = UNIT_RE.exec(entry);
    const stat = await fs.lstat(full).catch(() => null);
    if (!stat) continue;
    if (m && stat.isFile()) {
      out.push({ uuid: m[1]!.toLowerCase(), unit: entry, path: host.hostPathOf(full), kind: 'unit-file', target: null, content: await fs.readFile(full, 'utf8') });
    }
    if (entry.endsWith('.wants') && stat.isDirectory()) {
      for (const w of await host.list(full)) {
        const wm = UNIT_RE.exec(w);
        if (!wm) continue;
        const wl = path.join(full, w);
        const target = await fs.readlink(wl).catch(() => null);
        out.push({ uuid: wm[1]!.toLowerCase(), unit: w, path: host.hostPathOf(wl), kind: 'wants-link', target, content: null });
      }
    }
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : 1));
}
