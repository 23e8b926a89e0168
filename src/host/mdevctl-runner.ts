/**
 * Runs the real mdevctl: directly on a real host (root /), or inside the tree of a simulated root through
 * a private mount namespace and chroot (see chroot-runner.ts). Argument arrays only, with a time limit.
 */
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import type { HostRoot } from './host-root.js';
import { packageFile } from './package-files.js';

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  command: string[];
}

// The runner is a separate script (it must start inside the new namespace): beside this module in tsc's
// dist/host/; from the bundle (dist/vgpuctl.mjs and its dist/chunks/), the runner bundled on its own as
// dist/chroot-runner.mjs; from src/ (tests run the TypeScript), the build's copy in dist/host/.
const here = path.dirname(fileURLToPath(import.meta.url));
const CHROOT_RUNNER =
  [path.join(here, 'chroot-runner.js'), path.join(here, 'chroot-runner.mjs'), path.join(here, '../chroot-runner.mjs')].find((f) => existsSync(f)) ??
  packageFile(import.meta.url, 'dist/host/chroot-runner.js');

export interface MdevctlOptions {
  /** mdevctl binary inside the root; env VGPUCTL_MDEVCTL overrides. */
  binary?: string;
  timeoutMs?: number;
}

export async function runMdevctl(host: HostRoot, args: string[], options: MdevctlOptions = {}): Promise<CommandResult> {
  const binary = options.binary ?? process.env['VGPUCTL_MDEVCTL'] ?? 'mdevctl';
  const command = host.isSystemRoot
    ? [binary, ...args]
    : ['unshare', '--mount', '--propagation', 'private', process.execPath, CHROOT_RUNNER, host.root, binary, ...args];
  // execa is loaded when mdevctl first runs: the sysfs backend never needs it.
  const { execa } = await import('execa');
  try {
    const r = await execa(command[0]!, command.slice(1), {
      reject: false,
      timeout: options.timeoutMs ?? 30_000,
      stdin: 'ignore',
      stripFinalNewline: false,
    });
    if (r.failed && r.exitCode === undefined) {
      const why = r.timedOut ? `timed out after ${options.timeoutMs ?? 30_000} ms` : r.shortMessage;
      throw new VgpuctlError('command', `could not run mdevctl (${why}); is the mdevctl package installed?`);
    }
    return { exitCode: r.exitCode ?? 1, stdout: String(r.stdout), stderr: String(r.stderr), command };
  } catch (e) {
    if (e instanceof VgpuctlError) throw e;
    throw new VgpuctlError('command', `could not run mdevctl: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * mdevctl runs of a vgpuctl killed with kill -9 go on (the kernel kills no child with its parent): the run
 * that takes over from it waits for them, so the two never write the same definition at once. Looks in this
 * machine's process table (not the root's /proc: these are our own processes): on a real host every
 * mdevctl, under a simulated root a chroot runner started for that root (by any vgpuctl build). Bounded by mdevctl's own time limit.
 */
export async function waitForOrphanedMdevctl(host: HostRoot, timeoutMs = 30_000): Promise<number> {
  const mine = async (): Promise<number> => {
    let n = 0;
    for (const pid of await fs.readdir('/proc').catch(() => [] as string[])) {
      if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
      const argv = (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
      const ours = host.isSystemRoot ? path.basename(argv[0] ?? '') === 'mdevctl' : argv.some((a) => /chroot-runner\.m?js$/.test(a)) && argv.includes(host.root);
      if (ours) n++;
    }
    return n;
  };
  const deadline = Date.now() + timeoutMs;
  let waited = 0;
  while ((await mine()) > 0 && Date.now() < deadline) {
    waited++;
    await new Promise((r) => setTimeout(r, 50));
  }
  return waited;
}
