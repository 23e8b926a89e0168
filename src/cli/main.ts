/**
 * The vgpuctl command line: parses, calls the logic below, prints. Importable without side effects;
 * `run` returns the exit code (0 ok, 1 failed or refused, 2 bad usage or input).
 */
import { Command, CommanderError } from 'commander';
import { isVgpuctlError } from '../errors/vgpuctl-error.js';
import { registerInventoryCommands } from './commands/inventory-commands.js';
import { registerSimCommands } from './commands/sim-commands.js';
import { registerLifecycleCommands } from './commands/lifecycle-commands.js';
import { registerPlanCommands } from './commands/plan-commands.js';
import { registerOpenstackCommands } from './commands/openstack-commands.js';
import { registerHealthCommands } from './commands/health-commands.js';
import { registerPciCommands } from './commands/pci-commands.js';
import { makeCommandSetup } from './command-setup.js';
import { processIo, type Io } from './output.js';
import { VERSION } from '../version.js';

export function buildProgram(io: Io, env: NodeJS.ProcessEnv) {
  const setup = makeCommandSetup(io, env);
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
  registerInventoryCommands(program, setup);
  registerLifecycleCommands(program, setup);
  registerPlanCommands(program, setup);
  registerOpenstackCommands(program, setup);
  registerHealthCommands(program, setup);
  registerPciCommands(program, setup);
  registerSimCommands(program, setup);
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

export async function run(argv: string[], io: Io = processIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { program, setup } = buildProgram(io, env);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return setup.exitCode();
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      if (e.code === 'commander.executeSubCommandAsync') return 0;
      return 2; // commander already printed the usage error
    }
    if (isVgpuctlError(e)) {
      io.err(`vgpuctl: error: ${e.message}`);
      return e.exitCode;
    }
    const err = e as Error;
    io.err(`vgpuctl: internal error: ${err?.message ?? String(e)} (please report this with the command you ran)`);
    if (env['VGPUCTL_DEBUG']) io.err(err?.stack ?? '');
    return 1;
  }
}
