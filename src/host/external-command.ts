/**
 * External tools vgpuctl asks (nvidia-smi, systemctl): argument arrays only, a time limit on every call,
 * and paths that can be overridden (flags or env) so tests use fake scripts printing real-format output.
 */

export interface ToolPaths {
  nvidiaSmi: string;
  systemctl: string;
}

export const defaultToolPaths = (env: NodeJS.ProcessEnv = process.env): ToolPaths => ({
  nvidiaSmi: env['VGPUCTL_NVIDIA_SMI'] || 'nvidia-smi',
  systemctl: env['VGPUCTL_SYSTEMCTL'] || 'systemctl',
});

export interface ToolResult {
  ok: boolean;
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** Why it did not run to completion: not installed, timed out, killed. */
  failure: 'not-found' | 'timeout' | 'error' | null;
  command: string[];
}

/**
 * Runs a tool so that its time limit really bounds the call: execa's own timeout kills only the direct
 * child, and a wrapper script's hung grandchild would keep the output pipe open. The tool runs in its own
 * process group and the whole group is killed at the limit.
 */
export async function runTool(binary: string, args: string[], timeoutMs: number): Promise<ToolResult> {
  const command = [binary, ...args];
  // execa is loaded when a tool first runs: most commands never run one.
  const { execa } = await import('execa');
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
