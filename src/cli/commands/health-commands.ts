/** cleanup and health: leftovers, prerequisites, drift; cron- and monitoring-ready output. */
import type { Command } from 'commander';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as z from 'zod/mini';
import '../../validation/mini.js';
import { cleanup } from '../../cleanup/cleanup.js';
import { VgpuctlError } from '../../errors/vgpuctl-error.js';
import { defaultToolPaths } from '../../host/external-command.js';
import { writeFileAtomic } from '../../lifecycle/actions.js';
import { runHealth, STATUS_CODE } from '../../health/checks.js';
import { formatNagios, formatPrometheus, formatText, healthSummary } from '../../health/formats.js';
import { BACKENDS } from '../../lifecycle/backends.js';
import { lifecycleContextOf, parseInput } from '../context.js';
import { printJson, renderTable } from '../output.js';
import type { CommandSetup } from '../command-setup.js';

// zod/mini (src/validation/mini.ts): health runs from cron every minute, so its start-up counts.
const nonEmpty = z.string().check(z.minLength(1));
const seconds = (max: number) => z.coerce.number().check(z.positive(), z.lte(max));

export function registerHealthCommands(program: Command, setup: CommandSetup): void {
  const io = setup.io;
  program
    .command('cleanup')
    .description('find and remove state that outlived its devices: orphan definitions, stale boot units, leftover vGPUs in the driver')
    .option('--dry-run', 'report what would be done, change nothing')
    .option('--orphans', 'also remove definitions whose parent or type is gone (vendor-VFIO: whose VF is gone), and active mdevs nobody defined or uses')
    .option('--restart-vgpu-mgr', 'restart nvidia-vgpu-mgr to clear leftover vGPUs, only when no running VM uses a vGPU')
    .option('--nvidia-smi <path>', 'nvidia-smi to ask (env VGPUCTL_NVIDIA_SMI)')
    .option('--systemctl <path>', 'systemctl to use (env VGPUCTL_SYSTEMCTL)')
    .option('--timeout <seconds>', 'time limit of each external command', '10')
    .option('--backend <backend>', 'sysfs or mdevctl', 'sysfs')
    .option('--lock-timeout <seconds>', 'how long to wait for another vgpuctl run', '10')
    .addHelpText('after', '\nIt never writes a GPU\'s reset attribute (seed 004: the GPU vanished from nvidia-smi).')
    .action(
      setup.action(async (ctx, raw, _args, _g) => {
        const o = parseInput(
          z.object({
            dryRun: z._default(z.boolean(), false),
            orphans: z._default(z.boolean(), false),
            restartVgpuMgr: z._default(z.boolean(), false),
            nvidiaSmi: z.optional(nonEmpty),
            systemctl: z.optional(nonEmpty),
            timeout: z._default(seconds(600), 10),
            backend: z._default(z.enum(BACKENDS), 'sysfs'),
            lockTimeout: z._default(seconds(3600), 10),
          }),
          raw,
          'option',
        );
        const tools = defaultToolPaths(setup.env);
        const r = await cleanup(
          lifecycleContextOf(ctx, io, o),
          { orphans: o.orphans, restartVgpuMgr: o.restartVgpuMgr, tools: { nvidiaSmi: o.nvidiaSmi ?? tools.nvidiaSmi, systemctl: o.systemctl ?? tools.systemctl }, timeoutMs: o.timeout * 1000 },
        );
        if (ctx.output === 'json') printJson(io, r);
        else {
          io.out(r.findings.length === 0 ? 'Nothing to clean up.' : await renderTable(['FINDING', 'SUBJECT', 'RESOLUTION', 'DETAIL'], r.findings.map((f) => [f.kind, f.subject, r.dry_run && f.resolution === 'removed' ? 'would remove' : f.resolution, f.detail])));
          if (r.vgpu_mgr.restart === 'refused') io.err(`vgpuctl: nvidia-vgpu-mgr not restarted: running VMs use vGPUs (${r.vgpu_mgr.blocking_vms.join(', ')}); stop them first, then run cleanup --restart-vgpu-mgr again`);
          if (r.vgpu_mgr.restart === 'not-requested') io.err('vgpuctl: leftover vGPUs stay until nvidia-vgpu-mgr restarts: run cleanup --restart-vgpu-mgr once no VM uses a vGPU');
          if (r.vgpu_mgr.restart === 'done') io.out('Restarted nvidia-vgpu-mgr.service.');
        }
        if (r.vgpu_mgr.restart === 'refused') setup.fail(1);
      }),
    );

  program
    .command('health')
    .description('check prerequisites and vGPU state; Nagios exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, also for a bad flag or value)')
    .option('--plan <file>', 'also report drift from this plan')
    .option('--textfile <dir>', 'write a node_exporter textfile DIR/vgpuctl.prom (atomically)')
    .option('--check-timeout <seconds>', 'time limit of each check', '5')
    .option('--nvidia-smi <path>', 'nvidia-smi to ask (env VGPUCTL_NVIDIA_SMI)')
    .option('--systemctl <path>', 'systemctl to use (env VGPUCTL_SYSTEMCTL)')
    .addHelpText('after', '\nCron:\n  * * * * * root vgpuctl health --textfile /var/lib/prometheus/node-exporter -o nagios >/dev/null')
    .action(
      setup.action(async (ctx, raw, _args, globals) => {
        const o = parseInput(
          z.object({
            plan: z.optional(nonEmpty),
            textfile: z.optional(nonEmpty),
            checkTimeout: z._default(seconds(120), 5),
            nvidiaSmi: z.optional(nonEmpty),
            systemctl: z.optional(nonEmpty),
          }),
          raw,
          'option',
        );
        const format = globals.rawOutput ?? 'text';
        const tools = defaultToolPaths(setup.env);
        const report = await runHealth(ctx.host, {
          // The plan reader (classic zod) loads only when a plan is given: health runs every minute.
          plan: o.plan === undefined ? undefined : (await import('../../plan/plan-file.js')).loadPlanFile(o.plan),
          tools: { nvidiaSmi: o.nvidiaSmi ?? tools.nvidiaSmi, systemctl: o.systemctl ?? tools.systemctl },
          checkTimeoutMs: o.checkTimeout * 1000,
          catalogue: ctx.catalogue,
        });
        if (o.textfile !== undefined) {
          const stat = await fs.stat(o.textfile).catch(() => null);
          if (!stat?.isDirectory()) throw new VgpuctlError('invalid-input', `--textfile ${o.textfile} is not a directory (node_exporter's --collector.textfile.directory)`);
          await writeFileAtomic(path.join(o.textfile, 'vgpuctl.prom'), formatPrometheus(report));
        }
        if (format === 'json') printJson(io, { status: report.status, summary: healthSummary(report), counts: report.counts, checks: report.checks, capacity: report.capacity });
        else if (format === 'nagios') io.out(formatNagios(report));
        else if (format === 'prometheus') io.out(formatPrometheus(report).trimEnd());
        else io.out(formatText(report));
        setup.fail(STATUS_CODE[report.status]);
      }, { formats: ['text', 'table', 'json', 'nagios', 'prometheus'] }),
    );
}
