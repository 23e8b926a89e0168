/**
 * The simulator's SysfsWriter: the same writes the real path makes, with the kernel's reaction applied
 * to the tree at once (see kernel.ts). Used when --simulate is given.
 */
import path from 'node:path';
import { promises as fs, constants as fsc } from 'node:fs';
import type { HostRoot } from '../host/host-root.js';
import type { KnownTypes } from '../host/mdev.js';
import type { SysfsWriter } from '../host/sysfs-writer.js';
import { errnoError } from '../host/sysfs-writer.js';
import type { CrashPoint, Fault } from './faults.js';
import { simulateCreate, simulateRemove } from './kernel.js';
import { simulatePciWrite } from './pci-binding.js';
import { simulateSriovNumvfs, simulateVendorWrite } from './vendor-vfio.js';

export class SimulatedSysfsWriter implements SysfsWriter {
  readonly simulated = true;

  private readonly counts = { create: 0, remove: 0, any: 0, steps: 0 };
  /** The types this writer's simulated kernel read and wrote: read once per command, not at every create (see KnownTypes). */
  private readonly known: KnownTypes = new Map();

  constructor(
    private readonly host: HostRoot,
    private readonly faults: Fault[] = [],
    /** Crash tests: SIGKILL this process right after the n-th write or step (VGPUCTL_SIM_CRASH_AFTER). */
    private readonly crashAfter: CrashPoint | null = null,
  ) {}

  private maybeCrash(): void {
    if (this.crashAfter?.after === 'write' && this.counts.any === this.crashAfter.n) process.kill(process.pid, 'SIGKILL');
  }

  step(): void {
    this.counts.steps++;
    if (this.crashAfter?.after === 'step' && this.counts.steps === this.crashAfter.n) process.kill(process.pid, 'SIGKILL');
  }

  private injectFault(name: string): void {
    this.counts.any++;
    if (name === 'create' || name === 'remove') this.counts[name]++;
    for (const f of this.faults) {
      if ((f.target === 'any' || f.target === name) && this.counts[f.target] === f.nth) {
        throw errnoError(f.errno, `injected fault: write #${f.nth} to ${f.target}`);
      }
    }
  }

  async write(realPath: string, data: string): Promise<void> {
    const hostPath = this.host.hostPathOf(realPath);
    const name = path.posix.basename(hostPath);
    const dir = path.posix.dirname(hostPath);
    this.injectFault(name);
    if (name === 'create' && path.posix.basename(path.posix.dirname(dir)) === 'mdev_supported_types') {
      await simulateCreate(this.host, dir, data, this.known);
      return this.maybeCrash();
    }
    if (name === 'remove' && (await this.host.exists(path.join(this.host.path(dir), 'mdev_type')))) {
      await simulateRemove(this.host, dir, data, this.known);
      return this.maybeCrash();
    }
    if (await simulatePciWrite(this.host, hostPath, data)) return this.maybeCrash();
    // vendor-VFIO (no mdev): nvidia/current_vgpu_type on a VF, sriov_numvfs on a PF.
    if ((await simulateVendorWrite(this.host, hostPath, data)) || (await simulateSriovNumvfs(this.host, hostPath, data))) return this.maybeCrash();
    // Any other attribute: it must exist (sysfs has no O_CREAT); its content becomes what was written.
    const handle = await fs.open(realPath, fsc.O_WRONLY | fsc.O_TRUNC);
    try {
      await handle.write(data);
    } finally {
      await handle.close();
    }
    this.maybeCrash();
  }
}
