/**
 * main.ts loads only the command module a command needs. Its table must name every top-level command each
 * module registers (a missing name still works, by loading every module, but pays for all of them).
 */
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { makeCommandSetup } from '../../src/cli/command-setup.js';
import { COMMAND_MODULES, modulesFor } from '../../src/cli/main.js';
import { cli } from '../helpers/cli.js';

describe('lazily loaded command modules', () => {
  it.each(COMMAND_MODULES.map((m) => [m.commands.join(' '), m] as const))('the table names what the module registers: %s', async (_name, m) => {
    const program = new Command('vgpuctl');
    (await m.load())(program, makeCommandSetup({ out: () => {}, err: () => {} }, {}));
    expect(program.commands.map((c) => c.name()).sort()).toEqual([...m.commands].sort());
  });

  it('picks the module of the command after the global options, none for --version, all for help', () => {
    expect(modulesFor(['--root', '/x', '-o', 'json', 'types']).modules.map((m) => m.commands[0])).toEqual(['gpus']);
    expect(modulesFor(['--simulate', 'apply', '-f', 'p.yaml']).command).toBe('apply');
    expect(modulesFor(['--version']).modules).toEqual([]);
    expect(modulesFor(['--help']).modules).toBe(COMMAND_MODULES);
    expect(modulesFor([]).modules).toBe(COMMAND_MODULES);
    expect(modulesFor(['no-such-command']).modules).toBe(COMMAND_MODULES);
  });

  it('--version alone prints the version without commander; with other options through it', async () => {
    const plain = await cli(['--version']);
    const withRoot = await cli(['--root', '/nonexistent', '-V']);
    expect(plain).toMatchObject({ code: 0, stdout: withRoot.stdout });
    expect(withRoot.code).toBe(0);
    expect(plain.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });
});
