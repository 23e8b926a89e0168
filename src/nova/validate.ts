/**
 * nova's own rules for the vGPU and PCI passthrough options, checked on a parsed nova.conf before nova
 * sees it. Each rule is the check nova-compute (or nova-api) makes, with nova's wording where it has one:
 *
 * - oslo.config parse errors: the service does not start;
 * - `[mdev_<type>] mdev_class` must match `^(VGPU|CUSTOM_[A-Z0-9_]+)$`, at most 255 characters
 *   (nova/conf/devices.py), `max_instances` an integer >= 1;
 * - every `device_addresses` entry must be a PCI address (nova.pci.utils.parse_address) and an address
 *   may appear in only one group: InvalidLibvirtMdevConfig "incorrect PCI address: …" /
 *   "duplicate types for PCI ID …" (nova/virt/libvirt/driver.py _get_supported_vgpu_types);
 * - `[pci] device_spec` entries are JSON objects (or lists of them) with hex ids <= ffff
 *   (nova/pci/whitelist.py, devspec.py); `[pci] alias` entries are JSON objects of a fixed schema, and
 *   one alias name keeps one device_type and one numa_policy (nova/pci/request.py).
 *
 * Problems are errors (nova refuses the file) or warnings (nova starts but does not do what the file seems
 * to say, for example a group it ignores).
 */
import { parseList, type IniAssignment, type IniDocument, valuesOf, lastValue } from './ini.js';
import { rulesOf, type NovaRelease } from './releases.js';

export interface NovaProblem {
  severity: 'error' | 'warning';
  code: string;
  message: string;
  line: number | null;
}

export const MDEV_CLASS_RE = /^(VGPU|CUSTOM_[A-Z0-9_]+)$/;
/** nova.pci.utils._PCI_ADDRESS_PATTERN, with the dot meant literally (nova's regex lets any character pass there). */
export const NOVA_PCI_ADDRESS_RE = /^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$/;
const VENDOR_RE = /^[0-9a-fA-F]{4}$/;
const DEVICE_TYPES = ['type-PCI', 'type-PF', 'type-VF'];
const NUMA_POLICIES = ['required', 'legacy', 'preferred', 'socket'];

/** Why a class name is not one nova takes, or null. */
export function mdevClassProblem(name: string): string | null {
  if (name.length > 255) return `${name.slice(0, 40)}… is ${name.length} characters long; nova takes at most 255`;
  if (!MDEV_CLASS_RE.test(name)) {
    return `${JSON.stringify(name)} is not a resource class nova accepts: it must be VGPU or CUSTOM_ followed by upper-case letters, digits and _ (nova's regex ^(VGPU|CUSTOM_[A-Z0-9_]+)$)`;
  }
  return null;
}

export function pciAddressProblem(address: string): string | null {
  return NOVA_PCI_ADDRESS_RE.test(address)
    ? null
    : `${JSON.stringify(address)} is not a PCI address (nova wants domain:bus:slot.function, e.g. 0000:82:00.0; nova-compute stops with "incorrect PCI address: ${address}")`;
}

const lineOf = (a: IniAssignment | undefined): number | null => (a ? a.first + 1 : null);

function hexId(v: unknown, max: number): boolean {
  if (v === '*') return true;
  if (typeof v !== 'string') return false;
  const s = v.trim().replace(/^0x/i, '');
  return /^[0-9a-fA-F]+$/.test(s) && Number.parseInt(s, 16) <= max;
}

const GLOB_PART = (digits: number) => `(?:[0-9a-fA-F]{1,${digits}}|\\*)?`;
const GLOB_ADDRESS_RE = new RegExp(`^(?:${GLOB_PART(4)}:)?${GLOB_PART(2)}:${GLOB_PART(2)}(?:\\.(?:[0-7]|\\*)?)?$`);

function deviceSpecProblems(a: IniAssignment, option: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(a.value);
  } catch {
    return [`${option} = ${a.value}: not JSON (nova: "Invalid entry")`];
  }
  const list = Array.isArray(parsed) ? parsed : [parsed];
  if (!Array.isArray(parsed) && (typeof parsed !== 'object' || parsed === null)) return [`${option} = ${a.value}: expecting a JSON object or a list of them`];
  const out: string[] = [];
  for (const spec of list) {
    if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
      out.push(`${option} = ${a.value}: every entry must be a JSON object`);
      continue;
    }
    const s = spec as Record<string, unknown>;
    if ('vendor_id' in s && !hexId(s['vendor_id'], 0xffff)) out.push(`${option}: vendor_id ${JSON.stringify(s['vendor_id'])} is not a hex id up to ffff`);
    if ('product_id' in s && !hexId(s['product_id'], 0xffff)) out.push(`${option}: product_id ${JSON.stringify(s['product_id'])} is not a hex id up to ffff`);
    if ('address' in s && 'devname' in s) out.push(`${option}: give address or devname, not both`);
    if (typeof s['address'] === 'string' && !GLOB_ADDRESS_RE.test(s['address'])) out.push(`${option}: address ${JSON.stringify(s['address'])} is not a PCI address or glob`);
    if ('address' in s && typeof s['address'] !== 'string' && (typeof s['address'] !== 'object' || s['address'] === null)) {
      out.push(`${option}: address must be a string or an object of regular expressions`);
    }
  }
  return out;
}

function aliasProblems(entries: IniAssignment[], release: NovaRelease): Array<{ message: string; at: IniAssignment }> {
  const found: Array<{ message: string; at: IniAssignment }> = [];
  const allowed = new Set(['name', 'capability_type', 'product_id', 'vendor_id', 'device_type', 'numa_policy']);
  // Placement-tracked PCI devices (2023.1 and later) added these.
  if (release.nova >= 27) for (const k of ['resource_class', 'traits']) allowed.add(k);
  if (release.nova >= 31) allowed.add('live_migratable');
  const seen = new Map<string, { deviceType: string | undefined; numa: string }>();
  for (const a of entries) {
    const out = { push: (message: string) => found.push({ message, at: a }) };
    let spec: unknown;
    try {
      spec = JSON.parse(a.value);
    } catch {
      out.push(`alias = ${a.value}: not JSON`);
      continue;
    }
    if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
      out.push(`alias = ${a.value}: must be one JSON object`);
      continue;
    }
    const s = spec as Record<string, unknown>;
    for (const k of Object.keys(s)) if (!allowed.has(k)) out.push(`alias ${JSON.stringify(s['name'] ?? '')}: unknown key ${JSON.stringify(k)} (nova's schema allows ${[...allowed].join(', ')})`);
    if (typeof s['name'] !== 'string' || s['name'].length < 1 || s['name'].length > 256) {
      out.push(`alias = ${a.value}: "name" is required, 1 to 256 characters`);
      continue;
    }
    for (const k of ['vendor_id', 'product_id']) if (k in s && (typeof s[k] !== 'string' || !VENDOR_RE.test(s[k] as string))) out.push(`alias ${s['name']}: ${k} must be 4 hex digits`);
    if ('device_type' in s && !DEVICE_TYPES.includes(s['device_type'] as string)) out.push(`alias ${s['name']}: device_type must be one of ${DEVICE_TYPES.join(', ')}`);
    if ('numa_policy' in s && !NUMA_POLICIES.includes(s['numa_policy'] as string)) out.push(`alias ${s['name']}: numa_policy must be one of ${NUMA_POLICIES.join(', ')}`);
    if ('capability_type' in s && s['capability_type'] !== 'pci') out.push(`alias ${s['name']}: capability_type must be "pci"`);
    const name = s['name'].trim();
    const numa = typeof s['numa_policy'] === 'string' && s['numa_policy'] ? s['numa_policy'] : 'legacy';
    const deviceType = typeof s['device_type'] === 'string' ? s['device_type'] : undefined;
    const before = seen.get(name);
    if (before) {
      if (before.numa !== numa) out.push(`alias ${name}: NUMA policy mismatch for alias '${name}'`);
      if (before.deviceType !== deviceType) out.push(`alias ${name}: Device type mismatch for alias '${name}'`);
    } else seen.set(name, { deviceType, numa });
  }
  return found;
}

/** nova's checks of the vGPU and PCI options of one nova.conf, for one release. */
export function validateNovaConf(doc: IniDocument, release: NovaRelease): NovaProblem[] {
  const r = rulesOf(release);
  const problems: NovaProblem[] = doc.problems.map((p) => ({
    severity: 'error' as const,
    code: 'parse',
    message: `line ${p.line}: ${p.message}: ${JSON.stringify(p.text)} (oslo.config cannot parse the file)`,
    line: p.line,
  }));
  const err = (code: string, message: string, line: number | null) => problems.push({ severity: 'error', code, message, line });
  const warn = (code: string, message: string, line: number | null) => problems.push({ severity: 'warning', code, message, line });

  // [devices]: the enabled types, under the name this release reads.
  const newName = lastValue(doc, 'devices', 'enabled_mdev_types');
  const oldName = lastValue(doc, 'devices', 'enabled_vgpu_types');
  if (newName && !r.mdevOptionNames) warn('unknown-option', `[devices] enabled_mdev_types is not an option of nova ${release.name}: it reads enabled_vgpu_types`, lineOf(newName));
  const typesOpt = r.mdevOptionNames ? newName ?? oldName : oldName;
  const types = typesOpt ? parseList(typesOpt.value) : [];
  if (types.some((t) => t === '')) err('empty-type', '[devices] has an empty mdev type in its list', lineOf(typesOpt));
  const groupName = (t: string) => (r.mdevOptionNames ? `mdev_${t}` : `vgpu_${t}`);
  // nova reads [vgpu_<type>] as a deprecated group of [mdev_<type>].
  const groupValue = (t: string, key: string): IniAssignment | undefined =>
    lastValue(doc, `mdev_${t}`.toLowerCase(), key) ?? (key === 'device_addresses' ? lastValue(doc, `vgpu_${t}`.toLowerCase(), key) : undefined);

  if (types.length > 1 && !r.perTypeGroups) {
    warn('only-first-type', `nova ${release.name} uses only the first enabled type (${types[0]}) on every GPU; ${types.slice(1).join(', ')} would be ignored`, lineOf(typesOpt));
  }
  const seenAddress = new Map<string, string>();
  const withoutAddresses: string[] = [];
  for (const t of types.filter((x) => x !== '')) {
    const grp = groupName(t);
    const addressesOpt = r.mdevOptionNames ? groupValue(t, 'device_addresses') : lastValue(doc, `vgpu_${t}`.toLowerCase(), 'device_addresses');
    const classOpt = r.mdevOptionNames ? groupValue(t, 'mdev_class') : undefined;
    const maxOpt = groupValue(t, 'max_instances');
    if (classOpt) {
      if (!r.mdevClass) warn('unknown-option', `[${grp}] mdev_class is not read by nova ${release.name}`, lineOf(classOpt));
      const why = mdevClassProblem(classOpt.value);
      if (why) err('bad-mdev-class', `[${grp}] mdev_class: ${why}`, lineOf(classOpt));
    }
    if (maxOpt) {
      if (!r.maxInstances) warn('unknown-option', `[${grp}] max_instances is read from 2024.1 on; nova ${release.name} ignores it`, lineOf(maxOpt));
      else if (!/^\s*[+-]?\d+\s*$/.test(maxOpt.value) || Number(maxOpt.value) < 1) err('bad-max-instances', `[${grp}] max_instances = ${maxOpt.value}: must be an integer of at least 1`, lineOf(maxOpt));
    }
    const addresses = addressesOpt ? parseList(addressesOpt.value) : [];
    if (addresses.length === 0) withoutAddresses.push(t);
    for (const a of addresses) {
      const why = pciAddressProblem(a);
      if (why) {
        err('bad-address', `[${grp}] device_addresses: ${why}`, lineOf(addressesOpt));
        continue;
      }
      const other = seenAddress.get(a);
      if (other !== undefined) {
        err(
          'duplicate-address',
          other === t
            ? `[${grp}] device_addresses names ${a} twice (nova-compute stops with "duplicate types for PCI ID ${a}")`
            : `${a} is in [${groupName(other)}] and [${grp}]: a GPU offers one type to nova (nova-compute stops with "duplicate types for PCI ID ${a}")`,
          lineOf(addressesOpt),
        );
        continue;
      }
      seenAddress.set(a, t);
    }
  }
  if (types.length === 1 && !r.singleTypeHonoursGroup && r.perTypeGroups) {
    const t = types[0]!;
    const ignored = [groupValue(t, 'device_addresses'), r.mdevClass ? groupValue(t, 'mdev_class') : undefined].filter((x) => x !== undefined);
    if (ignored.length > 0) {
      warn(
        'single-type-ignores-group',
        `nova ${release.name} ignores [${groupName(t)}] ${ignored.map((x) => x!.key).join(' and ')} when only one type is enabled: it offers ${t} on every GPU that has it, as resource class VGPU (fixed in 2024.1)`,
        lineOf(ignored[0]),
      );
    }
  }
  if (types.length > 1 && r.perTypeGroups && withoutAddresses.length > 0) {
    if (!r.singleTypeHonoursGroup) {
      warn('only-first-type', `[${groupName(withoutAddresses[0]!)}] has no device_addresses: nova ${release.name} then uses only the first type (${types[0]}) everywhere`, lineOf(typesOpt));
    } else if (withoutAddresses.length > 1) {
      warn('default-type-taken', `${withoutAddresses.join(', ')} have no device_addresses: nova uses only the first of them (${withoutAddresses[0]}) for the GPUs not listed elsewhere`, lineOf(typesOpt));
    }
  }

  // [pci]: device specs under every name nova reads, aliases.
  const specNames: Array<[string, string]> = [
    ['pci', 'device_spec'],
    ['pci', 'passthrough_whitelist'],
    ['DEFAULT', 'pci_passthrough_whitelist'],
  ];
  for (const [group, key] of specNames) {
    const entries = valuesOf(doc, group, key);
    if (entries.length === 0) continue;
    if (key === 'device_spec' && !r.deviceSpec) warn('unknown-option', `[pci] device_spec is read from Zed on; nova ${release.name} reads passthrough_whitelist`, lineOf(entries[0]));
    for (const a of entries) for (const m of deviceSpecProblems(a, `[${group}] ${key}`)) err('bad-device-spec', m, lineOf(a));
  }
  const aliases = [...valuesOf(doc, 'pci', 'alias'), ...valuesOf(doc, 'DEFAULT', 'pci_alias')];
  for (const m of aliasProblems(aliases, release)) err('bad-alias', m.message, lineOf(m.at));
  return problems;
}

export const errorsOf = (ps: NovaProblem[]): NovaProblem[] => ps.filter((p) => p.severity === 'error');
