/**
 * Small file-system helpers for building and changing a host tree in the kernel's layout. Links are
 * relative, as sysfs makes them, so a tree works both under --root and inside a chroot.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { HostRoot } from '../host/host-root.js';

export class TreeWriter {
  constructor(readonly host: HostRoot) {}

  async mkdir(hostPath: string): Promise<void> {
    await fs.mkdir(this.host.path(hostPath), { recursive: true });
  }

  async file(hostPath: string, content: string, mode = 0o644): Promise<void> {
    const real = this.host.path(hostPath);
    await fs.mkdir(path.dirname(real), { recursive: true });
    await fs.writeFile(real, content, { mode });
  }

  /** A link at `linkHostPath` pointing to `targetHostPath`, written relative like the kernel does. */
  async link(linkHostPath: string, targetHostPath: string): Promise<void> {
    const real = this.host.path(linkHostPath);
    await fs.mkdir(path.dirname(real), { recursive: true });
    const rel = path.posix.relative(path.posix.dirname(linkHostPath), targetHostPath);
    await fs.rm(real, { force: true });
    await fs.symlink(rel, real);
  }

  /** A link with the target exactly as given (absolute /etc/... links in unit directories). */
  async rawLink(linkHostPath: string, target: string): Promise<void> {
    const real = this.host.path(linkHostPath);
    await fs.mkdir(path.dirname(real), { recursive: true });
    await fs.rm(real, { force: true });
    await fs.symlink(target, real);
  }

  async remove(hostPath: string): Promise<void> {
    await fs.rm(this.host.path(hostPath), { recursive: true, force: true });
  }
}
