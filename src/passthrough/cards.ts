/**
 * Whole-card passthrough (seed 000's `gpupci`): NVIDIA cards with stable logical names gpupci1..N in PCI
 * address order, all their functions (video .0, audio .1, USB/UCSI where present), the IOMMU group each
 * sits in and whatever else shares it. The one description of a card: `pci` commands, nova's [pci] options
 * (src/nova/pci-config.ts) and libvirt's hostdevs use these functions.
 */
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import type { HostRoot } from '../host/host-root.js';
import { discoverActiveMdevs } from '../host/mdev.js';
import { discoverPci, isDisplayClass, isNvidiaGpu, type PciFunction } from '../host/pci.js';

export type FunctionRole = 'video' | 'audio' | 'usb' | 'ucsi' | 'other';

export interface CardFunction {
  address: string;
  role: FunctionRole;
  vendorId: string;
  deviceId: string;
  classCode: string;
  driver: string | null;
  driverOverride: string | null;
  iommuGroup: number | null;
}

export interface Card {
  name: string;
  address: string;
  functions: CardFunction[];
  /** IOMMU groups of the card's functions. */
  iommuGroups: number[];
  /** Devices that share those groups but are not functions of the card (bridges, other cards). */
  foreignInGroup: Array<{ address: string; classCode: string | null; driver: string | null }>;
  /** Active mdevs on the card or its VFs. */
  mdevs: string[];
}

/** What a function of a card is, from its PCI class. */
export function roleOf(classCode: string): FunctionRole {
  const c = classCode.toLowerCase();
  if (isDisplayClass(c)) return 'video';
  if (c.startsWith('0x0403')) return 'audio';
  if (c.startsWith('0x0c03')) return 'usb';
  if (c.startsWith('0x0c80')) return 'ucsi';
  return 'other';
}

const slotOf = (address: string): string => address.slice(0, address.lastIndexOf('.'));
const byAddress = (a: PciFunction, b: PciFunction): number => (a.address < b.address ? -1 : 1);

/** The functions of `gpu`'s card: the physical functions of its slot from the same vendor (not its VFs), in address order. */
export function cardFunctionsOf(all: readonly PciFunction[], gpu: PciFunction): PciFunction[] {
  return all.filter((f) => slotOf(f.address) === slotOf(gpu.address) && f.physfn === null && f.vendorId === gpu.vendorId).sort(byAddress);
}

/** The devices in `groups` that are not one of `functions`: a VM needs the whole group. */
export function groupPeersOf(all: readonly PciFunction[], groups: readonly number[], functions: readonly PciFunction[]): PciFunction[] {
  const mine = new Set(functions.map((f) => f.address));
  return all.filter((f) => f.iommuGroup !== null && groups.includes(f.iommuGroup) && !mine.has(f.address));
}

export async function discoverCards(host: HostRoot): Promise<Card[]> {
  const [pci, active] = await Promise.all([discoverPci(host), discoverActiveMdevs(host)]);
  const all = [...pci.values()];
  const gpus = all.filter((f) => isNvidiaGpu(f) && f.physfn === null && f.address.endsWith('.0')).sort(byAddress);
  return gpus.map((gpu, i): Card => {
    const own = cardFunctionsOf(all, gpu);
    const functions = own.map(toFunction);
    const groups = [...new Set(functions.map((f) => f.iommuGroup).filter((g): g is number => g !== null))];
    const foreign = groupPeersOf(all, groups, own).map((f) => ({ address: f.address, classCode: f.classCode, driver: f.driver }));
    const owned = new Set([gpu.address, ...gpu.virtfns]);
    return {
      name: `gpupci${i + 1}`,
      address: gpu.address,
      functions,
      iommuGroups: groups,
      foreignInGroup: foreign,
      mdevs: active.filter((d) => owned.has(d.parent)).map((d) => d.uuid),
    };
  });
}

function toFunction(f: PciFunction): CardFunction {
  return {
    address: f.address,
    role: roleOf(f.classCode),
    vendorId: f.vendorId,
    deviceId: f.deviceId,
    classCode: f.classCode,
    driver: f.driver,
    driverOverride: f.driverOverride,
    iommuGroup: f.iommuGroup,
  };
}

/** `gpupci2`, `0000:03:00.0`, `03:00.0`, or `all`. Exit 2 for what cannot be a card name. */
export function selectCards(cards: Card[], which: string): Card[] {
  if (which === 'all') return cards;
  if (/^gpupci\d+$/.test(which)) {
    const c = cards.find((x) => x.name === which);
    if (!c) throw new VgpuctlError('not-found', `no card ${which}; this host has ${cards.map((x) => x.name).join(', ') || 'no NVIDIA cards'}`);
    return [c];
  }
  const lower = which.toLowerCase();
  const full = /^[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/.test(lower) ? `0000:${lower}` : lower;
  if (!/^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/.test(full)) {
    throw new VgpuctlError('invalid-input', `${JSON.stringify(which)} is neither a card name (gpupci1), a PCI address (0000:18:00.0) nor "all"`);
  }
  const c = cards.find((x) => x.functions.some((f) => f.address === full));
  if (!c) throw new VgpuctlError('not-found', `${full} is not a function of an NVIDIA card on this host; see 'vgpuctl pci list'`);
  return [c];
}
