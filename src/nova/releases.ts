/**
 * OpenStack releases as nova-compute sees them: the release name an operator types (zed, 2024.1, caracal)
 * and the nova major version it shipped, and from that the option names and rules that apply.
 *
 * Facts, each from nova's own history (openstack/nova, tags N.0.0):
 * - 17 (Queens): vGPUs, `[devices] enabled_vgpu_types`; only the first type is used.
 * - 21 (Ussuri): several types, one `[vgpu_<type>] device_addresses` group per type (5b5cbc64f9).
 * - 24 (Xena): renamed to `enabled_mdev_types` and `[mdev_<type>]` (old names still read), `mdev_class`.
 * - 26 (Zed): `[pci] passthrough_whitelist` renamed `device_spec` (14e68ac6e9).
 * - 29 (2024.1): a single enabled type honours its group (c28494fd27; before, device_addresses and
 *   mdev_class were ignored and the class was VGPU), `max_instances` (60851e4464), groups may omit
 *   device_addresses (d445eaf9dd).
 * - 30 (2024.2): mdevs nova creates are persisted (before, they vanished at host reboot).
 * - 33 (2026.1): a flavor may ask for several vGPUs with granular groups (resources1:..., resources2:...).
 */
import { VgpuctlError } from '../errors/vgpuctl-error.js';

export interface NovaRelease {
  /** The name as OpenStack writes it: `zed`, `2024.1`. */
  name: string;
  /** Code name (`caracal` for 2024.1; the name itself before 2023.1). */
  codename: string;
  /** nova's major version (29 for 2024.1). */
  nova: number;
}

const TABLE: Array<[nova: number, name: string, codename: string]> = [
  [17, 'queens', 'queens'],
  [18, 'rocky', 'rocky'],
  [19, 'stein', 'stein'],
  [20, 'train', 'train'],
  [21, 'ussuri', 'ussuri'],
  [22, 'victoria', 'victoria'],
  [23, 'wallaby', 'wallaby'],
  [24, 'xena', 'xena'],
  [25, 'yoga', 'yoga'],
  [26, 'zed', 'zed'],
  [27, '2023.1', 'antelope'],
  [28, '2023.2', 'bobcat'],
  [29, '2024.1', 'caracal'],
  [30, '2024.2', 'dalmatian'],
  [31, '2025.1', 'epoxy'],
  [32, '2025.2', 'flamingo'],
  [33, '2026.1', 'gazpacho'],
];

export const RELEASES: NovaRelease[] = TABLE.map(([nova, name, codename]) => ({ nova, name, codename }));

/** The newest release whose rules this version of vgpuctl knows; the default of --release. */
export const DEFAULT_RELEASE = '2025.1';

export const releaseNames = (): string[] => RELEASES.map((r) => r.name);

/** `zed`, `Zed`, `2024.1`, `caracal`, or nova's own version (`29`, `29.0.1`). */
export function parseRelease(input: string): NovaRelease {
  const s = input.trim().toLowerCase();
  const byName = RELEASES.find((r) => r.name === s || r.codename === s);
  if (byName) return byName;
  const version = /^(\d{2})(?:\.\d+){0,2}$/.exec(s);
  if (version && !/^\d{4}\./.test(s)) {
    const byVersion = RELEASES.find((r) => r.nova === Number(version[1]));
    if (byVersion) return byVersion;
  }
  throw new VgpuctlError(
    'invalid-input',
    `unknown OpenStack release ${JSON.stringify(input)}; give one of ${RELEASES.map((r) => r.name).join(', ')} (code names such as caracal and nova versions such as 29 work too)`,
  );
}

export const label = (r: NovaRelease): string => (r.name === r.codename ? `${r.name} (nova ${r.nova})` : `${r.name} ${r.codename} (nova ${r.nova})`);

/** What a release supports, as booleans the generators test. */
export interface ReleaseRules {
  /** `enabled_mdev_types` / `[mdev_<type>]` (else `enabled_vgpu_types` / `[vgpu_<type>]`). */
  mdevOptionNames: boolean;
  /** Per-type groups with device_addresses (else only the first enabled type is used, everywhere). */
  perTypeGroups: boolean;
  /** `mdev_class` in the type group. */
  mdevClass: boolean;
  /** A single enabled type honours its group (device_addresses, mdev_class). */
  singleTypeHonoursGroup: boolean;
  /** `max_instances` in the type group. */
  maxInstances: boolean;
  /** `[pci] device_spec` (else `passthrough_whitelist`). */
  deviceSpec: boolean;
  /** The mdevs nova creates survive a host reboot. */
  persistentMdevs: boolean;
  /** A flavor may ask for several vGPUs (granular resource groups). */
  multipleVgpusPerInstance: boolean;
}

export function rulesOf(r: NovaRelease): ReleaseRules {
  return {
    mdevOptionNames: r.nova >= 24,
    perTypeGroups: r.nova >= 21,
    mdevClass: r.nova >= 24,
    singleTypeHonoursGroup: r.nova >= 29,
    maxInstances: r.nova >= 29,
    deviceSpec: r.nova >= 26,
    persistentMdevs: r.nova >= 30,
    multipleVgpusPerInstance: r.nova >= 33,
  };
}
