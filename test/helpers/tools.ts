/**
 * Tests that need a system tool (mdevctl, unshare, virt-xml-validate): in CI a missing tool is a loud
 * failure, never a silent skip; on a developer machine the test is skipped with the reason printed.
 */
import { execaSync } from 'execa';

const inCi = (): boolean => process.env['CI'] === 'true' || process.env['CI'] === '1';

export function hasTool(name: string): boolean {
  try {
    execaSync('sh', ['-c', 'command -v "$1"', 'sh', name]);
    return true;
  } catch {
    return false;
  }
}

/** True when the tests that need `tools` should be skipped (only ever outside CI). */
export function skipWithout(...tools: string[]): boolean {
  const missing = tools.filter((t) => !hasTool(t));
  if (missing.length === 0) return false;
  if (inCi()) {
    throw new Error(`CI needs ${missing.join(', ')} for these tests; scripts/install-test-deps.sh should have installed it`);
  }
  process.stderr.write(`[skip] ${missing.join(', ')} not installed: run scripts/install-test-deps.sh\n`);
  return true;
}

/** mdevctl in a chroot needs root for unshare --mount. */
export function canRunMdevctlOracle(): boolean {
  if (process.getuid?.() !== 0) {
    if (inCi()) throw new Error('CI runs as root; the mdevctl oracle tests need it for unshare --mount');
    process.stderr.write('[skip] not root: the mdevctl oracle needs unshare --mount\n');
    return false;
  }
  return !skipWithout('mdevctl', 'unshare', 'chroot');
}
