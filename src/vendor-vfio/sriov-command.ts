/** `vgpuctl sriov enable [PF|all]`, `vgpuctl sriov status`. */
import type { Command } from 'commander';
import { z } from 'zod';
import type { CommandSetup } from '../cli/command-setup.js';
import { registerListing } from '../cli/listing-command.js';
import { parseInput } from '../cli/context.js';
import { printJson } from '../cli/output.js';
import { normalizeParent } from '../host/identifiers.js';
import { chooseSriovMethod, isProgram, sriovEnable, sriovStatus } from './sriov.js';

export function registerSriovCommands(program: Command, setup: CommandSetup): void {
  const sriov = program.command('sriov').description("SR-IOV virtual functions of NVIDIA GPUs (vendor-VFIO vGPUs live on them)");
  registerListing(sriov, setup, {
    name: 'status',
    description: 'per SR-IOV GPU: total, enabled and ready virtual functions',
    read: (ctx) => sriovStatus(ctx.host),
    key: 'sriov',
    empty: 'No SR-IOV capable NVIDIA GPUs.',
    columns: ['PF', 'TOTALVFS', 'NUMVFS', 'READY'],
    cells: (x) => [x.pf, x.totalvfs, x.numvfs, x.ready],
  });
  sriov
    .command('enable [pf]')
    .description('run sriov-manage -e PF|ALL (or write sriov_numvfs), then wait until every VF is ready')
    .option('--sriov-manage <path>', 'path of sriov-manage (env VGPUCTL_SRIOV_MANAGE; default /usr/lib/nvidia/sriov-manage)')
    .option('--write-numvfs', 'write sriov_numvfs instead of running sriov-manage (always so with --simulate)')
    .option('--timeout <seconds>', 'time limit of sriov-manage', '120')
    .option('--wait <seconds>', 'how long to wait for the VFs to be ready', '60')
    .action(
      setup.action(async (ctx, raw, args) => {
        const o = parseInput(
          z.object({ sriovManage: z.string().min(1).optional(), writeNumvfs: z.boolean().default(false), timeout: z.coerce.number().positive().max(3600), wait: z.coerce.number().min(0).max(3600) }),
          raw,
          'option',
        );
        const pf = (args[0] as string | undefined) ?? 'all';
        const target = pf.toLowerCase() === 'all' ? 'all' : normalizeParent(pf);
        const how = chooseSriovMethod({ simulated: ctx.writer.simulated, writeNumvfs: o.writeNumvfs, flagPath: o.sriovManage, env: setup.env, isSystemRoot: ctx.host.isSystemRoot, isProgram });
        const r = await sriovEnable(ctx.host, { target, writer: ctx.writer, sriovManage: how.kind === 'numvfs' ? null : how.path, commandTimeoutMs: o.timeout * 1000, waitMs: o.wait * 1000 });
        if (ctx.output === 'json') return printJson(setup.io, r);
        for (const s of r.enabled) setup.io.out(`${s.pf}: ${s.ready} of ${s.numvfs} VFs ready`);
      }),
    );
}
