/**
 * Where the files shipped beside the code are (profiles/, fixtures/, the compiled chroot runner). The code
 * runs from src/ (tests), from tsc's dist/<dir>/ and from the bundle dist/vgpuctl.mjs, each at a different
 * depth below the package root, so the root is found by walking up from the running file, not by a fixed
 * number of `..`.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * `relative` (e.g. `profiles`, `dist/host/chroot-runner.js`) in the nearest directory at or above the file
 * `moduleUrl` (an import.meta.url) that has it; `fallback` (relative to that file) when none has it, so
 * that the caller's "missing" error names the place it was expected.
 */
export function packageFile(moduleUrl: string, relative: string, fallback = path.join('../..', relative)): string {
  const start = path.dirname(fileURLToPath(moduleUrl));
  for (let dir = start; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, relative);
    if (existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) return path.resolve(start, fallback);
  }
}
