/**
 * A host-wide lock under the root's /run, so that two vgpuctl runs never change the same host at once.
 * The lock file holds the owner's pid; a lock whose owner is dead (killed -9, a crash) is taken over with
 * a warning; a live owner makes us wait a bounded time and then fail with its pid.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { VgpuctlError, errnoOf } from '../errors/vgpuctl-error.js';
import type { HostRoot } from '../host/host-root.js';

export const LOCK_PATH = '/run/vgpuctl/lock';

export interface HostLock {
  release(): Promise<void>;
  /** Set when a stale lock of a dead process was taken over. */
  tookOverFrom: number | null;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoOf(e) === 'EPERM'; // exists, just not ours
  }
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function acquireHostLock(host: HostRoot, options: { timeoutMs?: number; command?: string } = {}): Promise<HostLock> {
  const file = host.path(LOCK_PATH);
  await fs.mkdir(path.dirname(file), { recursive: true });
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  let tookOverFrom: number | null = null;
  for (;;) {
    try {
      const handle = await fs.open(file, 'wx', 0o644);
      await handle.writeFile(`${process.pid}\n${options.command ?? 'vgpuctl'}\n`);
      await handle.close();
      return {
        tookOverFrom,
        release: async () => {
          // Remove the lock only while it is still ours.
          const text = await fs.readFile(file, 'utf8').catch(() => '');
          if (text.split('\n')[0] === String(process.pid)) await fs.rm(file, { force: true });
          // Leave no trace of a run: drop the lock directory when it is empty (a refused command then
          // leaves the host byte for byte as it was). A contender that loses its directory this way
          // sees ENOENT below and makes it again.
          await fs.rmdir(path.dirname(file)).catch(() => undefined);
        },
      };
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') {
        // The directory was removed by a run that just released the lock: make it again and retry.
        await fs.mkdir(path.dirname(file), { recursive: true });
        continue;
      }
      if (errnoOf(e) !== 'EEXIST') throw new VgpuctlError('refused', `cannot create the lock ${host.hostPathOf(file)}: ${errnoOf(e) ?? e}`);
    }
    const text = await fs.readFile(file, 'utf8').catch(() => null);
    if (text === null) continue; // released meanwhile
    const [pidText, command] = text.split('\n');
    const pid = Number(pidText);
    if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) {
      // Stale: move it aside atomically (only one contender wins the rename), then retry the O_EXCL create.
      const aside = `${file}.stale.${process.pid}`;
      try {
        await fs.rename(file, aside);
        const moved = await fs.readFile(aside, 'utf8').catch(() => '');
        if (moved !== text) {
          // Someone else took over between our read and rename: give their lock back.
          await fs.link(aside, file).catch(() => undefined);
        } else {
          tookOverFrom = Number.isInteger(pid) ? pid : -1;
        }
        await fs.rm(aside, { force: true });
      } catch {
        /* another contender moved it first */
      }
      continue;
    }
    if (Date.now() >= deadline) {
      throw new VgpuctlError(
        'refused',
        `another vgpuctl (pid ${pid}${command ? `, ${command}` : ''}) is changing this host; try again when it has finished (lock ${host.hostPathOf(file)})`,
      );
    }
    await sleep(100);
  }
}

export async function withHostLock<T>(
  host: HostRoot,
  options: { timeoutMs?: number; command?: string; onTakeover?: (pid: number) => void },
  fn: () => Promise<T>,
): Promise<T> {
  const lock = await acquireHostLock(host, options);
  if (lock.tookOverFrom !== null) options.onTakeover?.(lock.tookOverFrom);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
