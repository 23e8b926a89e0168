/** Runs the CLI in-process (no spawn) and captures what it prints. */
import { run } from '../../src/cli/main.js';
import type { HostRoot } from '../../src/host/host-root.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  json: () => any;
}

export async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await run(args, { out: (t) => (stdout += t.endsWith('\n') ? t : `${t}\n`), err: (t) => (stderr += t.endsWith('\n') ? t : `${t}\n`) }, env);
  return { code, stdout, stderr, json: () => JSON.parse(stdout) };
}

/** `vgpuctl --root R --simulate ARGS` in-process. */
export const sim = (host: HostRoot, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> => cli(['--root', host.root, '--simulate', ...args], env);
