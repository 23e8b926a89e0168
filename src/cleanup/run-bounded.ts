/**
 * Runs an external tool (nvidia-smi, systemctl) so that its time limit really bounds the call.
 *
 * execa's own `timeout` kills only the direct child. When that child is a wrapper (a shell script, a
 * vendor wrapper around nvidia-smi) whose own child hangs, the grandchild keeps the stdout pipe open and
 * the call only returns when the grandchild exits — `cleanup --timeout 1` waited the full 30 s of a
 * `sleep 30`. Here the tool runs in its own process group and the whole group is killed at the limit.
 */
import { execa } from 'execa';
import type { ToolResult } from '../host/external-command.js';

export async function runBounded(binary: string, args: string[], timeoutMs: number): Promise<ToolResult> {
  const command = [binary, ...args];
  const sub = execa(binary, args, { reject: false, stdin: 'ignore', detached: true, killSignal: 'SIGKILL' });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    const pid = sub.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, 'SIGKILL'); // the tool and everything it started
    } catch {
      sub.kill('SIGKILL');
    }
  }, timeoutMs);
  try {
    const r = await sub;
    const failure = timedOut ? 'timeout' : (r as { code?: string }).code === 'ENOENT' ? 'not-found' : r.exitCode === undefined ? 'error' : null;
    return { ok: !timedOut && !r.failed, exitCode: r.exitCode ?? null, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), failure, command };
  } finally {
    clearTimeout(timer);
  }
}
