/** plan, apply, assert: declarative host plans. */
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { z } from 'zod';
import { VgpuctlError } from '../../errors/vgpuctl-error.js';
import { BACKENDS } from '../../lifecycle/backends.js';
import { readHostState } from '../../lifecycle/host-state.js';
import { applyPlan, assertPlan, planChanges, waitForParents, type PlanReport } from '../../plan/apply.js';
import { migrateUnits, planToYaml } from '../../plan/migrate-units.js';
import { writeFileAtomic } from '../../lifecycle/actions.js';
import { fromStackhpc, fromVgpuDeviceManager, importFormatSchema } from '../../plan/imports.js';
import { loadPlanFile, planSchema, type Plan } from '../../plan/plan-file.js';
import { lifecycleContextOf, parseInput, type Context } from '../context.js';
import { printJson, renderTable, type Io } from '../output.js';
import type { CommandSetup } from '../command-setup.js';

const planOptions = z.object({
  file: z.string().min(1),
  from: importFormatSchema.default('native'),
  config: z.string().optional(),
  prune: z.boolean().default(false),
  dryRun: z.boolean().default(false),
  backend: z.enum(BACKENDS).default('sysfs'),
  lockTimeout: z.coerce.number().positive().max(3600).default(10),
  waitForParents: z.coerce.number().min(0).max(3600).default(0),
});
type PlanOptions = z.infer<typeof planOptions>;

async function readPlan(ctx: Context, o: PlanOptions): Promise<Plan> {
  if (o.from === 'native') {
    if (o.config !== undefined) throw new VgpuctlError('usage', '-c/--config chooses a label of a vgpu-device-manager file; use it with --from nvidia-vgpu-dm');
    return loadPlanFile(o.file);
  }
  let text: string;
  try {
    text = readFileSync(o.file, 'utf8');
  } catch (e) {
    throw new VgpuctlError('invalid-input', `cannot read ${o.file}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  const plan = o.from === 'stackhpc' ? fromStackhpc(text, o.file) : fromVgpuDeviceManager(text, o.file, o.config, await readHostState(ctx.host), ctx.catalogue);
  return planSchema.parse(plan);
}

const lc = lifecycleContextOf;

async function printReport(io: Io, r: PlanReport, verb: string): Promise<void> {
  if (r.changes.length === 0) io.out(`No changes: the host already matches the plan (${r.devices.length} vGPU(s)).`);
  else {
    io.out(`${r.dry_run ? 'Would make' : 'Made'} ${r.changes.length} change(s):`);
    io.out(await renderTable(['ACTION', 'UUID', 'PARENT', 'TYPE'], r.changes.map((c) => [c.action, c.uuid, c.parent, c.type])));
  }
  const left = r.unplanned.filter((u) => !u.pruned);
  if (left.length > 0) {
    io.out(`\nNot in the plan, left alone${verb === 'apply' ? ' (use --prune to remove what no VM uses)' : ''}:`);
    io.out(await renderTable(['UUID', 'PARENT', 'TYPE', 'STATE', 'IN USE BY'], left.map((u) => [u.uuid, u.parent, u.type, [u.active ? 'active' : null, u.defined ? 'defined' : null].filter(Boolean).join('+'), u.in_use.join(', ') || null])));
  }
  if (r.capacity.length > 0) {
    io.out('\nCapacity after the plan:');
    io.out(await renderTable(['GPU', 'TYPE', 'PROFILE', 'FREE'], r.capacity.map((c) => [c.parent, c.type, c.profile, c.available_after])));
  }
}

function withPlanOptions(cmd: Command, changing: boolean): Command {
  cmd
    .requiredOption('-f, --file <file>', 'the plan (YAML or JSON)')
    .option('--from <format>', 'plan format: native, nvidia-vgpu-dm (vgpu-configs) or stackhpc (vgpu_definitions)', 'native')
    .option('-c, --config <label>', 'with --from nvidia-vgpu-dm: the configuration label to use');
  if (changing) {
    cmd
      .option('--prune', 'also remove vGPUs (mdevs and vendor-VFIO) the plan does not hold (never one in use)')
      .option('--dry-run', 'print the changes and the exact writes, change nothing')
      .option('--backend <backend>', 'sysfs or mdevctl', 'sysfs')
      .option('--lock-timeout <seconds>', 'how long to wait for another vgpuctl run', '10')
      .option('--wait-for-parents <seconds>', "at boot: wait up to this long for the plan's GPUs and VFs to appear", '0');
  }
  return cmd;
}

export function registerPlanCommands(program: Command, setup: CommandSetup): void {
  const io = setup.io;
  withPlanOptions(program.command('plan').description('show the changes that would make the host match a plan, and the capacity left'), false)
    .option('--prune', 'include the removal of mdevs the plan does not hold')
    .addHelpText('after', '\nExample plan:\n  version: 1\n  defaults: { autostart: true }\n  gpus:\n    - select: { address: "0000:82:00.0" }\n      profile: P40-12C\n      count: 2')
    .action(
      setup.action(async (ctx, raw) => {
        const o = parseInput(planOptions, raw, 'option');
        const r = await planChanges(lc(ctx, io, o), await readPlan(ctx, o), o.prune);
        if (ctx.output === 'json') printJson(io, r);
        else await printReport(io, r, 'plan');
      }),
    );

  withPlanOptions(program.command('apply').description('make the host match a plan (idempotent; safe to re-run after a crash)'), true)
    .addHelpText('after', '\nExamples:\n  vgpuctl apply -f /etc/vgpuctl/plan.yaml --dry-run\n  vgpuctl apply -f vgpu-configs.yaml --from nvidia-vgpu-dm -c T4-8Q')
    .action(
      setup.action(async (ctx, raw) => {
        const o = parseInput(planOptions, raw, 'option');
        const plan = await readPlan(ctx, o);
        const l = lc(ctx, io, o);
        if (o.waitForParents > 0) await waitForParents(l, plan, o.waitForParents);
        const r = await applyPlan(l, plan, o.prune);
        if (ctx.output === 'json') printJson(io, r);
        else await printReport(io, r, 'apply');
      }),
    );

  withPlanOptions(program.command('assert').description('exit 0 when the host matches the plan, 1 with the differences'), false).action(
    setup.action(async (ctx, raw) => {
      const o = parseInput(planOptions, raw, 'option');
      const r = await assertPlan(lc(ctx, io, o), await readPlan(ctx, o));
      if (ctx.output === 'json') printJson(io, r);
      else if (r.matches) io.out('The host matches the plan.');
      else {
        io.out('The host does not match the plan:');
        io.out(await renderTable(['NEEDS', 'UUID', 'PARENT', 'TYPE'], r.differences.map((d) => [d.action, d.uuid || null, d.parent || null, d.type])));
      }
      if (!r.matches) setup.fail(1);
    }),
  );

  program
    .command('migrate-units')
    .description('turn mdevctl definitions and nvidia-mdev@UUID.service units into a plan that keeps every device and UUID')
    .option('--write <file>', 'write the plan to this file (refuses to overwrite)')
    .addHelpText('after', '\nThen: vgpuctl apply -f FILE --dry-run, enable contrib/vgpuctl-apply.service, and remove the old units.')
    .action(
      setup.action(async (ctx, raw) => {
        const o = parseInput(z.object({ write: z.string().min(1).optional() }), raw, 'option');
        const m = await migrateUnits(ctx.host);
        if (m.plan.gpus.length === 0) throw new VgpuctlError('not-found', 'nothing to migrate: no defined devices and no nvidia-mdev@UUID.service units on this host');
        for (const l of m.left_out) io.err(`vgpuctl: warning: ${l.uuid} (${l.type} on ${l.parent}) left out: ${l.reason}`);
        if (o.write !== undefined) {
          if (existsSync(o.write)) throw new VgpuctlError('refused', `${o.write} exists; choose another file or remove it first`);
          await writeFileAtomic(o.write, planToYaml(m.plan));
        }
        if (ctx.output === 'json') printJson(io, m);
        else if (o.write === undefined) io.out(planToYaml(m.plan).trimEnd());
        else io.out(`wrote ${o.write} (${m.plan.gpus.length} entries); the units it replaces: ${m.units.join(', ') || 'none'}`);
      }),
    );
}
