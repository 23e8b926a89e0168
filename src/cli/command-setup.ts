/**
 * Glue between commander and the commands: builds the context from the global options and turns every
 * failure into one sentence on stderr and an exit code. Commands never call process.exit.
 */
import type { Command } from 'commander';
import type { Catalogue } from '../catalogue/catalogue.js';
import { bundledCatalogue } from '../catalogue/catalogue.js';
import { globalOptionsFrom, makeContext, type Context, type GlobalOptions, type OutputFormat } from './context.js';
import type { Io } from './output.js';
import { VgpuctlError } from '../errors/vgpuctl-error.js';

type Raw = Record<string, unknown>;

export interface CommandSetup {
  io: Io;
  /** The environment `run` was given (tests pass their own). */
  env: NodeJS.ProcessEnv;
  /** A command that reads (or changes) the host under --root. */
  action(
    fn: (ctx: Context, opts: Raw, args: unknown[], globals: GlobalOptions) => Promise<void>,
    options?: { formats?: string[] },
  ): (...a: unknown[]) => Promise<void>;
  /** A command that needs no host tree (catalogue, fixtures). */
  offlineAction(
    fn: (catalogue: Catalogue, output: OutputFormat, opts: Raw, args: unknown[], globals: GlobalOptions) => Promise<void>,
  ): (...a: unknown[]) => Promise<void>;
  /** Sets the exit code for a command that printed its own report (health uses 3 for UNKNOWN). */
  fail(code: number): void;
  exitCode(): number;
}

/** commander calls an action with (...arguments, options, command). */
function split(a: unknown[]): { args: unknown[]; opts: Raw; command: Command } {
  const command = a[a.length - 1] as Command;
  const opts = (a[a.length - 2] ?? {}) as Raw;
  return { args: a.slice(0, -2), opts, command };
}

/** -o takes table or json everywhere; a command may allow more (health: text, nagios, prometheus). */
function checkFormat(globals: GlobalOptions, formats: string[] | undefined): void {
  const allowed = formats ?? ['table', 'json'];
  if (globals.rawOutput !== undefined && !allowed.includes(globals.rawOutput)) {
    throw new VgpuctlError('usage', `-o ${globals.rawOutput} is not an output format of this command; use ${allowed.join(' or ')}`);
  }
}

/** snapshotReads: the command only reads the host; its parts share one read of it (HostRoot.snapshotReads). */
export function makeCommandSetup(io: Io, env: NodeJS.ProcessEnv, setupOptions: { snapshotReads?: boolean; noReadDeadline?: boolean } = {}): CommandSetup {
  let code = 0;
  return {
    io,
    env,
    action: (fn, options) => async (...a) => {
      const { args, opts, command } = split(a);
      const globals = globalOptionsFrom(command.optsWithGlobals(), env);
      checkFormat(globals, options?.formats);
      const ctx = await makeContext(globals, env, setupOptions);
      await fn(ctx, opts, args, globals);
    },
    offlineAction: (fn) => async (...a) => {
      const { args, opts, command } = split(a);
      const globals = globalOptionsFrom(command.optsWithGlobals(), env);
      checkFormat(globals, undefined);
      await fn(bundledCatalogue(), globals.output, opts, args, globals);
    },
    fail: (c) => {
      code = Math.max(code, c);
    },
    exitCode: () => code,
  };
}
