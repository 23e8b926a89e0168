/**
 * Runs the real mdevctl: directly on a real host (root /), or inside the tree of a simulated root through
 * a private mount namespace and chroot (see chroot-runner.ts). Argument arrays only, with a time limit.
 */
import { existsSync } from 'node:fs';
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
