/**
 * A stuck driver in the simulator: an attribute whose read never answers. The attribute becomes a FIFO
 * that nobody writes, so opening it for reading waits forever, as a read of a wedged GPU's attribute
 * does (for vgpuctl the same: a system call that does not return). Removing the FIFO and writing the
 * file back (restoreAttribute) ends the fault.
 */
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { HostRoot } from '../host/host-root.js';

/** Replaces the attribute at hostPath (links followed) with a FIFO that never answers; returns its host path. */
export async function plantHungAttribute(host: HostRoot, hostPath: string): Promise<string> {
  const real = path.join(await host.realpath(host.path(path.posix.dirname(hostPath))), path.posix.basename(hostPath));
  rmSync(real, { force: true });
  // node has no mkfifo(); the coreutils tool, as an argument array.
  const { execa } = await import('execa');
  await execa('mkfifo', ['-m', '0644', '--', real]);
  return host.hostPathOf(real);
}

/** The attribute as a plain file again, holding `content`. */
export function restoreAttribute(host: HostRoot, realHostPath: string, content: string): void {
  const real = host.path(realHostPath);
  rmSync(real, { force: true });
  writeFileSync(real, content);
}
