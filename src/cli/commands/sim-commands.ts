/** `sim init`, `sim settle`, `sim fixtures`: the simulator's own commands. */
import type { Command } from 'commander';
import { z } from 'zod';
import { VgpuctlError } from '../../errors/vgpuctl-error.js';
import { openHostRoot } from '../../host/host-root.js';
import { settle } from '../../simulator/kernel.js';
import { captureHost } from '../../simulator/capture.js';
import { layOutFixture, listBundledFixtures, loadFixture } from '../../simulator/layout.js';
import { parseInput } from '../context.js';
import { printJson, renderTable } from '../output.js';
import type { CommandSetup } from '../command-setup.js';

export function registerSimCommands(program: Command, setup: CommandSetup): void {
  const sim = program
    .command('sim')
    .description('the simulator: lay out a bundled host tree, apply writes other programs made in it');

  sim
    .command('fixtures')
    .description('list the bundled fixture hosts')
    .action(
      setup.offlineAction(async (_catalogue, output) => {
        const fixtures = listBundledFixtures().map((name) => ({ name, summary: loadFixture(name).summary }));
        if (output === 'json') return printJson(setup.io, { fixtures });
        setup.io.out(await renderTable(['FIXTURE', 'SUMMARY'], fixtures.map((f) => [f.name, f.summary])));
      }),
    );

  sim
    .command('init')
    .description('lay out a bundled fixture host (or a fixture JSON file) as a host tree in DIR')
    .argument('<fixture>', "fixture name (see 'vgpuctl sim fixtures') or path to a fixture .json")
    .argument('<dir>', 'new or empty directory; use it afterwards with --root DIR --simulate')
    .addHelpText('after', '\nExample:\n  vgpuctl sim init p40-seed004 /tmp/p40 && vgpuctl --root /tmp/p40 types')
    .action(
      setup.offlineAction(async (_catalogue, output, _raw, args) => {
        const [fixture, dir] = parseInput(z.tuple([z.string().min(1), z.string().min(1)]), args, 'argument');
        const spec = loadFixture(fixture);
        const host = await layOutFixture(spec, dir);
        if (output === 'json') return printJson(setup.io, { fixture: spec.name, root: host.root });
        setup.io.out(`Laid out ${spec.name} in ${host.root}: ${spec.summary}`);
      }),
    );

  sim
    .command('capture')
    .description('copy what vgpuctl reads of the --root host (mdev parents, types, devices, GPUs, definitions) into DIR, for the simulator')
    .argument('<dir>', 'new or empty directory')
    .addHelpText('after', '\nExample (on a real hypervisor, for a bug report):\n  vgpuctl sim capture /tmp/host-capture && tar czf host-capture.tgz -C /tmp host-capture')
    .action(
      setup.offlineAction(async (_catalogue, output, _raw, args, globals) => {
        const [dir] = parseInput(z.tuple([z.string().min(1)]), args, 'argument');
        const r = await captureHost(await openHostRoot(globals.root), dir);
        if (output === 'json') return printJson(setup.io, r);
        setup.io.out(`Captured ${r.parents} parent(s), ${r.types} type(s), ${r.devices} device(s), ${r.pci_functions} PCI function(s) into ${r.root}`);
      }),
    );

  sim
    .command('settle')
    .description('apply writes another program made in the --root tree (a UUID in create, 1 in remove)')
    .action(
      setup.offlineAction(async (_catalogue, output, _raw, _args, globals) => {
        const host = await openHostRoot(globals.root);
        if (host.isSystemRoot) throw new VgpuctlError('usage', "'sim settle' works on a simulated tree only; give --root DIR");
        const result = await settle(host);
        if (output === 'json') return printJson(setup.io, result);
        for (const c of result.created) setup.io.out(`created ${c.uuid} (${c.type})`);
        for (const r of result.removed) setup.io.out(`removed ${r}`);
        for (const r of result.refused) setup.io.err(`vgpuctl: refused: ${r.file} <- ${JSON.stringify(r.written)}: ${r.errno} (${r.message})`);
        if (result.created.length + result.removed.length + result.refused.length === 0) setup.io.out('Nothing to settle.');
        if (result.refused.length > 0) setup.fail(1);
      }),
    );
}
