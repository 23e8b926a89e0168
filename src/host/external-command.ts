/**
 * External tools vgpuctl asks (nvidia-smi, systemctl): argument arrays only, a time limit on every call,
 * and paths that can be overridden (flags or env) so tests use fake scripts printing real-format output.
 */
import { execa } from 'execa';

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

export async function runTool(binary: string, args: string[], timeoutMs: number): Promise<ToolResult> {
  const command = [binary, ...args];
  const r = await execa(binary, args, { reject: false, timeout: timeoutMs, stdin: 'ignore', killSignal: 'SIGKILL' });
  const failure = r.timedOut ? 'timeout' : (r as { code?: string }).code === 'ENOENT' ? 'not-found' : r.exitCode === undefined ? 'error' : null;
  return { ok: !r.failed, exitCode: r.exitCode ?? null, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), failure, command };
}
