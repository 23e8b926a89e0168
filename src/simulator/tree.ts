/**
 * Small file-system helpers for building and changing a host tree in the kernel's layout. Links are
 * relative, as sysfs makes them, so a tree works both under --root and inside a chroot.
 *
 * The calls are synchronous behind async signatures: a create in the simulated kernel makes a dozen
 * entries, and a thread-pool round trip for each (fs.promises) costs more than the work itself.
 */
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { HostRoot } from '../host/host-root.js';

export class TreeWriter {
  constructor(readonly host: HostRoot) {}

  async mkdir(hostPath: string): Promise<void> {
    mkdirSync(this.host.path(hostPath), { recursive: true });
  }

  async file(hostPath: string, content: string, mode = 0o644): Promise<void> {
    const real = this.host.path(hostPath);
    mkdirSync(path.dirname(real), { recursive: true });
    writeFileSync(real, content, { mode });
  }

  /** A link at `linkHostPath` pointing to `targetHostPath`, written relative like the kernel does. */
  async link(linkHostPath: string, targetHostPath: string): Promise<void> {
    const real = this.host.path(linkHostPath);
    mkdirSync(path.dirname(real), { recursive: true });
    const rel = path.posix.relative(path.posix.dirname(linkHostPath), targetHostPath);
    rmSync(real, { force: true });
    symlinkSync(rel, real);
  }

  /** A link with the target exactly as given (absolute /etc/... links in unit directories). */
  async rawLink(linkHostPath: string, target: string): Promise<void> {
    const real = this.host.path(linkHostPath);
    mkdirSync(path.dirname(real), { recursive: true });
    rmSync(real, { force: true });
    symlinkSync(target, real);
  }

  async remove(hostPath: string): Promise<void> {
    rmSync(this.host.path(hostPath), { recursive: true, force: true });
  }
}
