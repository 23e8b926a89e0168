/**
 * The vgpuctl command line: parses, calls the logic below, prints. Importable without side effects;
 * `run` returns the exit code (0 ok, 1 failed or refused, 2 bad usage or input; health: Nagios codes, 3 for bad usage).
 *
 * Start-up is most of the time of a small command (cron runs `health` every minute), so only what the
 * command needs is loaded: a plain `--version` loads nothing else, not even commander; `vgpuctl types`
 * only the inventory commands; help, a bare `vgpuctl` and anything unrecognised load every command module
 * (in their registration order, so help and "did you mean" are exactly as before).
 */
import type { Command } from 'commander';
import { isVgpuctlError } from '../errors/vgpuctl-error.js';
import type { CommandSetup } from './command-setup.js';
import type { Io } from './output.js';
import { VERSION } from '../version.js';

type Register = (program: Command, setup: CommandSetup) => void;

/**
 * Every command module, in registration order, with the top-level commands it registers. A command
 * missing here still works: an unknown name loads every module.
 */
export const COMMAND_MODULES: Array<{ commands: string[]; load: () => Promise<Register> }> = [
  { commands: ['gpus', 'types', 'profiles', 'list'], load: async () => (await import('./commands/inventory-commands.js')).registerInventoryCommands },
  {
    commands: ['create', 'define', 'start', 'stop', 'modify', 'undefine', 'destroy'],
    load: async () => (await import('./commands/lifecycle-commands.js')).registerLifecycleCommands,
  },
  { commands: ['plan', 'apply', 'assert', 'migrate-units'], load: async () => (await import('./commands/plan-commands.js')).registerPlanCommands },
  { commands: ['nova-config', 'flavor', 'libvirt-xml', 'vm-check'], load: async () => (await import('./commands/openstack-commands.js')).registerOpenstackCommands },
  { commands: ['cleanup', 'health'], load: async () => (await import('./commands/health-commands.js')).registerHealthCommands },
  { commands: ['pci', 'prepare'], load: async () => (await import('./commands/pci-commands.js')).registerPciCommands },
  { commands: ['sim'], load: async () => (await import('./commands/sim-commands.js')).registerSimCommands },
  { commands: ['sriov'], load: async () => (await import('../vendor-vfio/sriov-command.js')).registerSriovCommands },
];

/**
 * Commands that only read the host: their parts share one read of it (HostRoot.snapshotReads). Not the
 * commands that write, nor apply, which waits for parents to appear.
 */
const READ_ONLY_COMMANDS = new Set(['gpus', 'types', 'list', 'health', 'plan', 'assert']);

/** Global options that take a value (the next argument), as declared in buildProgram. */
const GLOBAL_OPTIONS_WITH_VALUE = new Set(['--root', '-o', '--output']);

/**
 * Which command modules argv needs: the module of its command, none for a plain --version, all of them
 * otherwise (help, no command, an unknown command, `--` before the command).
 */
export function modulesFor(argv: string[]): { modules: typeof COMMAND_MODULES; command: string | null } {
  let version = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (GLOBAL_OPTIONS_WITH_VALUE.has(a)) {
      i++;
      continue;
    }
    if (a === '-h' || a === '--help') return { modules: COMMAND_MODULES, command: null };
    if (a === '-V' || a === '--version') {
      version = true;
      continue;
    }
    if (a.startsWith('-')) continue;
    const m = COMMAND_MODULES.find((x) => x.commands.includes(a));
    return m ? { modules: [m], command: a } : { modules: COMMAND_MODULES, command: null };
  }
  return { modules: version ? [] : COMMAND_MODULES, command: null };
}

export async function buildProgram(io: Io, env: NodeJS.ProcessEnv, argv?: string[]): Promise<{ program: Command; setup: CommandSetup | null }> {
  const { Command } = await import('commander');
  const program = new Command('vgpuctl')
    .description('Manage NVIDIA vGPU mediated devices and passthrough GPUs on KVM hypervisors')
    .version(VERSION, '-V, --version')
    .option('--root <dir>', 'host root holding sys/, etc/, proc/, run/ (env VGPUCTL_ROOT)', undefined)
    .option('--simulate', 'apply the kernel semantics to writes under --root (env VGPUCTL_SIMULATE=1)')
    .option('-o, --output <format>', 'output format: table or json (health also: text, nagios, prometheus)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s.replace(/\n$/, '')),
      writeErr: (s) => io.err(s.replace(/\n$/, '')),
      outputError: (s, write) => write(`vgpuctl: ${s.replace(/^error: /, 'error: ')}`),
    });
  program.configureHelp({ showGlobalOptions: true });
  const { modules, command } = argv === undefined ? { modules: COMMAND_MODULES, command: null } : modulesFor(argv);
  if (modules.length === 0) return { program, setup: null };
  const [{ makeCommandSetup }, ...registers] = await Promise.all([import('./command-setup.js'), ...modules.map((m) => m.load())]);
  // `list` reads type names (answered by the kernel itself) and arms the read deadline only for vendor-VFIO state.
  const setup = makeCommandSetup(io, env, { snapshotReads: command !== null && READ_ONLY_COMMANDS.has(command), noReadDeadline: command === 'list' });
  for (const register of registers) register(program, setup);
  for (const c of program.commands) inherit(c, io);
  return { program, setup };
}

/** Sub-commands report usage errors the same way as the program. */
function inherit(cmd: Command, io: Io): void {
  cmd.exitOverride().configureOutput({
    writeOut: (s) => io.out(s.replace(/\n$/, '')),
    writeErr: (s) => io.err(s.replace(/\n$/, '')),
    outputError: (s, write) => write(`vgpuctl: ${s}`),
  });
  cmd.showHelpAfterError('(run with --help for usage)');
  for (const c of cmd.commands) inherit(c, io);
}

/** stdout and stderr, one line per call (the same as output.ts's processIo, without loading the table code). */
const processIo: Io = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
};

/** The -o/--output value argv asks for, if any (read before commander, for errors commander itself raises). */
function outputIn(argv: string[]): string | undefined {
  let found: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if ((a === '-o' || a === '--output') && i + 1 < argv.length) found = argv[++i];
    else if (a.startsWith('--output=')) found = a.slice('--output='.length);
    else if (/^-o[^-]/.test(a)) found = a.slice(2);
  }
  return found;
}

/**
 * health is a monitoring plugin in every output format (cron, Nagios, the systemd timer read its exit code as
 * 0 OK, 1 WARNING, 2 CRITICAL): whatever keeps it from checking — a bad flag or value, a plan file it cannot
 * read — is 3 UNKNOWN, as the Nagios plugin guidelines want for invalid arguments, never 2. With -o nagios the
 * status line goes to stdout too, where the monitoring system reads it.
 */
const HEALTH_UNKNOWN = 3;

function failedRun(argv: string[], io: Io, code: number, message: string): number {
  if (modulesFor(argv).command !== 'health') return code;
  if (outputIn(argv) === 'nagios') io.out(`VGPUCTL UNKNOWN - ${message.replace(/\|/g, '/').replace(/\s*\n\s*/g, ' ')}`);
  return HEALTH_UNKNOWN;
}

/** A bare `vgpuctl --version` (or -V): answered without loading anything. */
export const isPlainVersion = (argv: string[]): boolean => argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V');

export async function run(argv: string[], io: Io = processIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  // What commander would print for these, without loading it.
  if (isPlainVersion(argv)) {
    io.out(VERSION);
    return 0;
  }
  try {
    const { program, setup } = await buildProgram(io, env, argv);
    await program.parseAsync(argv, { from: 'user' });
    return setup?.exitCode() ?? 0;
  } catch (e) {
    if (e instanceof (await import('commander')).CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      if (e.code === 'commander.executeSubCommandAsync') return 0;
      return failedRun(argv, io, 2, e.message.replace(/^error: /, '')); // commander already printed the usage error
    }
    if (isVgpuctlError(e)) {
      io.err(`vgpuctl: error: ${e.message}`);
      return failedRun(argv, io, e.exitCode, e.message);
    }
    const err = e as Error;
    io.err(`vgpuctl: internal error: ${err?.message ?? String(e)} (please report this with the command you ran)`);
    if (env['VGPUCTL_DEBUG']) io.err(err?.stack ?? '');
    return failedRun(argv, io, 1, `internal error: ${err?.message ?? String(e)}`);
  }
}
