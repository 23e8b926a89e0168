/**
 * A host-wide lock under the root's /run, so that two vgpuctl runs never change the same host at once.
 * The lock file holds the owner's pid; a lock whose owner is dead (killed -9, a crash) is taken over with
 * a warning; a live owner makes us wait a bounded time and then fail with its pid.
 */
import { randomBytes } from 'node:crypto';
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

/**
 * Puts the lock file in place with its content in one step: the pid is written to a private file that is
 * then hard-linked to the lock path (link fails with EEXIST while a lock exists). A contender therefore
 * never reads a lock file without its pid, which it would take for a stale lock and take over. The lock
 * directory may vanish under us (a run that releases the last lock removes it): then make it again.
 * Returns false when another lock is in place.
 */
async function createLockFile(host: HostRoot, file: string, content: string): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    const own = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.new`;
    try {
      await fs.mkdir(path.dirname(file), { recursive: true });
      await fs.writeFile(own, content, { flag: 'wx', mode: 0o644 });
      try {
        await fs.link(own, file);
        return true;
      } catch (e) {
        if (errnoOf(e) === 'EEXIST') return false;
        throw e;
      } finally {
        await fs.rm(own, { force: true });
      }
    } catch (e) {
      if (errnoOf(e) === 'ENOENT' && attempt < 100) continue;
      throw new VgpuctlError('refused', `cannot create the lock ${host.hostPathOf(file)}: ${errnoOf(e) ?? e}`, { cause: e });
    }
  }
}

export async function acquireHostLock(host: HostRoot, options: { timeoutMs?: number; command?: string } = {}): Promise<HostLock> {
  const file = host.path(LOCK_PATH);
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  let tookOverFrom: number | null = null;
  for (;;) {
    if (await createLockFile(host, file, `${process.pid}\n${options.command ?? 'vgpuctl'}\n`)) {
      return {
        tookOverFrom,
        release: async () => {
          // Remove the lock only while it is still ours.
          const text = await fs.readFile(file, 'utf8').catch(() => '');
          if (text.split('\n')[0] === String(process.pid)) await fs.rm(file, { force: true });
          // Leave no trace of a run: drop the lock directory when it is empty (a refused command then
          // leaves the host byte for byte as it was). It is not empty while anyone else holds or is
          // taking the lock; createLockFile makes it again when needed.
          await fs.rmdir(path.dirname(file)).catch(() => undefined);
        },
      };
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
