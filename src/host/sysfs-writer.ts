/**
 * The one place where vgpuctl writes kernel attributes (mdev `create`/`remove`, driver binding). The
 * real host and the simulator differ only in which SysfsWriter is used; everything above it is shared.
 */
import { promises as fs, constants as fsc } from 'node:fs';

export interface SysfsWriter {
  readonly simulated: boolean;
  /** Writes `data` to an existing kernel attribute; rejects with a Node errno error (code EEXIST, …). */
  write(realPath: string, data: string): Promise<void>;
  /** Called between the steps of a changing command (intent record written, each action done): the simulator's crash tests kill the process there. */
  step?(): void;
}

/** Writes straight to sysfs: open without O_CREAT (a missing attribute is ENOENT, as in the kernel). */
export class KernelSysfsWriter implements SysfsWriter {
  readonly simulated = false;

  async write(realPath: string, data: string): Promise<void> {
    const handle = await fs.open(realPath, fsc.O_WRONLY);
    try {
      await handle.write(data);
    } finally {
      await handle.close();
    }
  }
}

/** An Error shaped like Node's fs errors, for refusals the simulator makes as the kernel would. */
export function errnoError(code: string, message: string): NodeJS.ErrnoException {
  const err = new Error(`${code}: ${message}`) as NodeJS.ErrnoException;
  err.code = code;
  return err;
}
