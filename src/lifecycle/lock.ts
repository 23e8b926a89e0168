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

/**
 * Creates the lock file (O_EXCL) and writes the pid into it. Returns false when a lock file exists. The
 * lock directory may vanish under us (a run that releases the last lock removes it): then make it again.
 */
async function createLockFile(host: HostRoot, file: string, content: string): Promise<boolean> {
  const fail = (e: unknown) => new VgpuctlError('refused', `cannot create the lock ${host.hostPathOf(file)}: ${errnoOf(e) ?? e}`, { cause: e });
  for (let attempt = 0; ; attempt++) {
    try {
      await fs.mkdir(path.dirname(file), { recursive: true });
    } catch (e) {
      if (errnoOf(e) === 'ENOENT' && attempt < 100) continue;
      throw fail(e);
    }
    let handle;
    try {
      handle = await fs.open(file, 'wx', 0o644);
    } catch (e) {
      if (errnoOf(e) === 'EEXIST') return false;
      if (errnoOf(e) === 'ENOENT' && attempt < 100) continue;
      throw fail(e);
    }
    try {
      await handle.writeFile(content);
    } finally {
      await handle.close();
    }
    return true;
  }
}

/**
 * A lock file is created empty and gets its pid a moment later. A contender that reads it in between must
 * not take it for a stale lock (two runs would then hold the lock): a lock without a complete pid line is
 * "being written" until it is this old; only then is it garbage, to be taken over.
 */
const UNWRITTEN_GRACE_MS = 2_000;

/**
 * The lock and its directory are vgpuctl's own: a symbolic link planted there is refused, never followed
 * (O_EXCL would not create through it, but reading the "holder" or taking it over would go through it).
 */
async function refuseLinkedLock(host: HostRoot, file: string): Promise<void> {
  for (const p of [path.dirname(file), file]) {
    const st = await fs.lstat(p).catch(() => null);
    if (!st?.isSymbolicLink()) continue;
    const target = await fs.readlink(p).catch(() => '?');
    throw new VgpuctlError(
      'refused',
      `${host.hostPathOf(p)} is a symbolic link (to ${target}); vgpuctl does not follow links for its lock: remove it (rm ${host.hostPathOf(p)}) and run again`,
    );
  }
}

export async function acquireHostLock(host: HostRoot, options: { timeoutMs?: number; command?: string } = {}): Promise<HostLock> {
  const file = host.path(LOCK_PATH);
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  let tookOverFrom: number | null = null;
  for (;;) {
    await refuseLinkedLock(host, file);
    if (await createLockFile(host, file, `${process.pid}\n${options.command ?? 'vgpuctl'}\n`)) {
      return {
        tookOverFrom,
        release: async () => {
          // Remove the lock only while it is still ours.
          const text = await fs.readFile(file, 'utf8').catch(() => '');
          if (text.split('\n')[0] === String(process.pid)) await fs.rm(file, { force: true });
          // Leave no trace of a run: drop the lock directory when it is empty (a refused command then
          // leaves the host byte for byte as it was). It is not empty while anyone else holds the lock;
          // createLockFile makes it again when needed.
          await fs.rmdir(path.dirname(file)).catch(() => undefined);
        },
      };
    }
    const text = await fs.readFile(file, 'utf8').catch(() => null);
    if (text === null) continue; // released meanwhile
    if (!/^\d+\n/.test(text)) {
      const stat = await fs.stat(file).catch(() => null);
      if (stat === null) continue; // released meanwhile
      if (Date.now() - stat.mtimeMs < UNWRITTEN_GRACE_MS) {
        await sleep(10); // its writer is about to put its pid in
        continue;
      }
    }
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
