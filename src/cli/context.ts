/**
 * What every command gets: the host root, the writer for kernel attributes (real or simulated), the
 * catalogue, and the output format. Built once from the global options, validated with zod.
 */
import * as z from 'zod/mini';
import '../validation/mini.js';
import { bundledCatalogue, type Catalogue } from '../catalogue/catalogue.js';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import { openHostRoot, type HostRoot } from '../host/host-root.js';
import { KernelSysfsWriter, type SysfsWriter } from '../host/sysfs-writer.js';

export const outputFormatSchema = z.enum(['table', 'json']);
export type OutputFormat = z.infer<typeof outputFormatSchema>;

/** `health` adds its own formats; every other command prints a table or JSON. */
export const anyOutputSchema = z.enum(['table', 'json', 'text', 'nagios', 'prometheus'], {
  error: (iss) => `${JSON.stringify(iss.input)} is not an output format; use table or json (health also takes text, nagios, prometheus)`,
});

export const globalOptionsSchema = z.object({
  root: z._default(z.string().check(z.minLength(1)), '/'),
  simulate: z._default(z.boolean(), false),
  output: z.pipe(
    z._default(anyOutputSchema, 'table'),
    z.transform((o): OutputFormat => (o === 'json' ? 'json' : 'table')),
  ),
  rawOutput: z.optional(anyOutputSchema),
});
export type GlobalOptions = z.infer<typeof globalOptionsSchema>;

export interface Context {
  host: HostRoot;
  writer: SysfsWriter;
  catalogue: Catalogue;
  output: OutputFormat;
}

/** What parseInput needs of a schema: classic and mini zod schemas both have it. */
interface SafeParser<T> {
  safeParse(value: unknown): { success: true; data: T } | { success: false; error: { issues: Array<{ path: PropertyKey[]; message: string }> } };
}

/** Turns a zod failure on user input into a usage error that names the flag. */
export function parseInput<T>(schema: SafeParser<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  // Options reach us camelCased by commander (lockTimeout); name them as the operator typed them.
  const where = issue.path.length > 0 ? `--${String(issue.path[0]).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : what;
  throw new VgpuctlError('usage', `invalid ${where}: ${issue.message}`);
}

export function globalOptionsFrom(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): GlobalOptions {
  const simulateEnv = env['VGPUCTL_SIMULATE'];
  return parseInput(
    globalOptionsSchema,
    {
      root: raw['root'] ?? (env['VGPUCTL_ROOT'] || undefined),
      simulate: raw['simulate'] === true || simulateEnv === '1' || simulateEnv === 'true',
      output: raw['output'],
      rawOutput: raw['output'],
    },
    'option',
  );
}

/**
 * snapshotReads: see HostRoot.snapshotReads. noReadDeadline: the command reads no attribute a driver
 * answers, or arms the deadline itself before it does (`list`: type names only, see read-watchdog.ts).
 */
export async function makeContext(opts: GlobalOptions, env: NodeJS.ProcessEnv, options: { snapshotReads?: boolean; noReadDeadline?: boolean } = {}): Promise<Context> {
  const host = await openHostRoot(opts.root);
  if (options.snapshotReads) host.snapshotReads();
  if (!options.noReadDeadline) await host.armReadDeadline(env);
  if (opts.simulate && host.isSystemRoot) {
    throw new VgpuctlError(
      'usage',
      '--simulate needs --root pointing at a simulated host tree (see vgpuctl sim init); it never runs against /',
    );
  }
  return {
    host,
    writer: opts.simulate ? await simulatedWriter(host, env) : new KernelSysfsWriter(),
    catalogue: bundledCatalogue(),
    output: opts.output,
  };
}

/** The simulator is loaded only with --simulate (a real host never needs it). */
async function simulatedWriter(host: HostRoot, env: NodeJS.ProcessEnv): Promise<SysfsWriter> {
  const [{ SimulatedSysfsWriter }, { parseCrashAfter, parseFaults }] = await Promise.all([import('../simulator/sim-writer.js'), import('../simulator/faults.js')]);
  return new SimulatedSysfsWriter(host, parseFaults(env['VGPUCTL_SIM_FAULTS']), parseCrashAfter(env['VGPUCTL_SIM_CRASH_AFTER']));
}

/** The context every changing command hands to src/lifecycle, src/plan and src/cleanup. */
export function lifecycleContextOf(
  ctx: Context,
  io: { err: (text: string) => void },
  opts: { dryRun: boolean; backend: 'sysfs' | 'mdevctl'; lockTimeout: number },
): import('../lifecycle/operation.js').LifecycleContext {
  return {
    host: ctx.host,
    writer: ctx.writer,
    catalogue: ctx.catalogue,
    backend: opts.backend,
    dryRun: opts.dryRun,
    lockTimeoutMs: opts.lockTimeout * 1000,
    warn: (m) => io.err(`vgpuctl: warning: ${m}`),
  };
}
