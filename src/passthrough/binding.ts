/**
 * pci detach / attach: move every function of a card's IOMMU group to vfio-pci (driver_override, unbind,
 * drivers_probe) or back to the host drivers, refusing what would break: a card that carries mdevs, a
 * group shared with a device that is not part of the card, a card a running VM uses. Each step carries its
 * undo, so a failure halfway rebinds what was moved.
 */
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import { HOST_PATHS, type HostRoot } from '../host/host-root.js';
import { listProcesses } from '../host/processes.js';
import { runActions, type Action } from '../lifecycle/actions.js';
import type { SysfsWriter } from '../host/sysfs-writer.js';
import { scanDomains } from '../libvirt/domain-scan.js';
import { withHostLock } from '../lifecycle/lock.js';
import { discoverCards, selectCards, type Card, type CardFunction } from './cards.js';

export interface BindingStep {
  card: string;
  role: string;
  address: string;
  outcome: 'detached' | 'already-detached' | 'attached' | 'already-attached';
  driver_before: string | null;
}

const PROBE = '/sys/bus/pci/drivers_probe';
const write = (path: string, data: string, summary: string, undo?: Action | Action[]): Action => ({
  kind: 'sysfs-write',
  path,
  data,
  summary,
  ctx: { action: 'write', path },
  ...(undo ? { undo } : {}),
});

function detachActions(f: CardFunction): Action[] {
  const override = `${HOST_PATHS.pciDevices}/${f.address}/driver_override`;
  const restore = write(override, f.driverOverride ?? '\n', `restore driver_override of ${f.address}`);
  // Undo: a probe with the override naming the original driver binds exactly that one (pci-stub as well
  // as nvidia; a probe without it would pick the native driver); a function that had no driver stays
  // without one.
  const undo = f.driver === null ? [restore] : [write(override, f.driver, `point driver_override of ${f.address} at ${f.driver}`), write(PROBE, f.address, `give ${f.address} back to ${f.driver}`), restore];
  const actions: Action[] = [write(override, 'vfio-pci', `set driver_override of ${f.address} to vfio-pci`, undo)];
  if (f.driver) actions.push(write(`${HOST_PATHS.pciDrivers}/${f.driver}/unbind`, f.address, `unbind ${f.address} from ${f.driver}`));
  actions.push(write(PROBE, f.address, `bind ${f.address} to vfio-pci`, write(`${HOST_PATHS.pciDrivers}/vfio-pci/unbind`, f.address, `unbind ${f.address} from vfio-pci`)));
  return actions;
}

function attachActions(f: CardFunction): Action[] {
  const device = `${HOST_PATHS.pciDevices}/${f.address}`;
  const override = `${device}/driver_override`;
  // Undo: probe with the override at vfio-pci (the host has no other way to pick vfio-pci), then put the
  // override back as it was — "(null)" for a card that vfio-pci.ids gave to vfio-pci at boot.
  const undoOverride = [
    write(override, 'vfio-pci', `set driver_override of ${f.address} back to vfio-pci`),
    write(PROBE, f.address, `rebind ${f.address} to vfio-pci`),
    ...(f.driverOverride === 'vfio-pci' ? [] : [write(override, f.driverOverride ?? '\n', `restore driver_override of ${f.address}`)]),
  ];
  return [
    write(override, '\n', `clear driver_override of ${f.address}`, undoOverride),
    ...(f.driver === 'vfio-pci' ? [write(`${HOST_PATHS.pciDrivers}/vfio-pci/unbind`, f.address, `unbind ${f.address} from vfio-pci`)] : []),
    // Which host driver takes it (nvidia, nouveau, snd_hda_intel) is the kernel's choice: undo through the
    // device's own driver link.
    write(PROBE, f.address, `let the host driver take ${f.address}`, write(`${device}/driver/unbind`, f.address, `unbind ${f.address} from the host driver`)),
  ];
}

/** Running VMs that use any function of the card (libvirt PCI hostdev, or qemu host=ADDR). */
async function runningUsers(host: HostRoot, card: Card): Promise<string[]> {
  const addrs = new Set(card.functions.map((f) => f.address));
  const users = new Set<string>();
  for (const d of await scanDomains(host)) if (d.running && d.pciAddresses.some((a) => addrs.has(a))) users.add(`domain ${d.name}`);
  for (const p of await listProcesses(host)) {
    const cmd = p.argv.join(' ');
    for (const a of addrs) if (cmd.includes(`host=${a}`) || cmd.includes(`host=${a.replace(/^0000:/, '')}`) || cmd.includes(`/sys/bus/pci/devices/${a}`)) users.add(`pid ${p.pid}`);
  }
  return [...users];
}

export interface BindingResult {
  steps: BindingStep[];
  dry_run: boolean;
  actions: Array<Record<string, unknown>>;
}

export async function changeBinding(
  host: HostRoot,
  writer: SysfsWriter,
  which: string,
  direction: 'detach' | 'attach',
  options: { dryRun: boolean; lockTimeoutMs?: number; warn?: (message: string) => void },
): Promise<BindingResult> {
  const work = async (): Promise<BindingResult> => {
    const cards = selectCards(await discoverCards(host), which);
    const steps: BindingStep[] = [];
    const actions: Action[] = [];
    for (const card of cards) {
      if (direction === 'detach') {
        if (card.mdevs.length > 0) throw new VgpuctlError('refused', `will not detach ${card.name} (${card.address}): it carries ${card.mdevs.length} mdev(s) (${card.mdevs.slice(0, 3).join(', ')}); destroy them first`);
        if (card.foreignInGroup.length > 0) {
          throw new VgpuctlError(
            'refused',
            `will not detach ${card.name} (${card.address}): IOMMU group ${card.iommuGroups.join(', ')} also holds ${card.foreignInGroup.map((f) => `${f.address}${f.driver ? ` (${f.driver})` : ''}`).join(', ')}, which is not part of the card; a VM needs the whole group`,
          );
        }
        if (!(await host.exists(host.path(`${HOST_PATHS.pciDrivers}/vfio-pci`)))) throw new VgpuctlError('refused', 'vfio-pci is not loaded: run modprobe vfio-pci (vgpuctl prepare writes the configuration that loads it at boot)');
        for (const f of card.functions) {
          if (f.driver === 'vfio-pci') {
            steps.push({ card: card.name, role: f.role, address: f.address, outcome: 'already-detached', driver_before: f.driver });
            continue;
          }
          actions.push(...detachActions(f));
          steps.push({ card: card.name, role: f.role, address: f.address, outcome: 'detached', driver_before: f.driver });
        }
      } else {
        const users = await runningUsers(host, card);
        if (users.length > 0) throw new VgpuctlError('refused', `will not attach ${card.name} (${card.address}) to the host: a running VM uses it (${users.join(', ')}); shut it down first`);
        for (const f of card.functions) {
          if (f.driver !== 'vfio-pci' && (f.driverOverride === null || f.driverOverride !== 'vfio-pci')) {
            steps.push({ card: card.name, role: f.role, address: f.address, outcome: 'already-attached', driver_before: f.driver });
            continue;
          }
          actions.push(...attachActions(f));
          steps.push({ card: card.name, role: f.role, address: f.address, outcome: 'attached', driver_before: f.driver });
        }
      }
    }
    const described = actions.map((a) => ({ kind: a.kind, path: (a as { path: string }).path, data: (a as { data?: string }).data, summary: a.summary }));
    if (!options.dryRun) {
      await runActions({ host, writer }, actions);
      if (direction === 'detach') {
        // The kernel answers drivers_probe without an error even when nothing binds: look.
        const after = await discoverCards(host);
        const stray = after.flatMap((c) => c.functions).filter((f) => steps.some((s) => s.address === f.address && s.outcome === 'detached') && f.driver !== 'vfio-pci');
        if (stray.length > 0) throw new VgpuctlError('kernel', `${stray.map((f) => f.address).join(', ')} did not bind to vfio-pci (now ${stray.map((f) => f.driver ?? 'no driver').join(', ')}); check dmesg`);
      }
    }
    return { steps, dry_run: options.dryRun, actions: described };
  };
  if (options.dryRun) return work();
  return withHostLock(
    host,
    { timeoutMs: options.lockTimeoutMs, command: `pci ${direction}`, onTakeover: (pid) => options.warn?.(`took over the lock of vgpuctl pid ${pid}, which is no longer running`) },
    work,
  );
}
