/** create, define, start, stop, modify, undefine, destroy: the commands that change a host. */
import type { Command } from 'commander';
import { z } from 'zod';
import { VgpuctlError } from '../../errors/vgpuctl-error.js';
import { normalizeParent, normalizeUuid, validateProfileName, validateTypeId } from '../../host/identifiers.js';
import { BACKENDS } from '../../lifecycle/backends.js';
import { createDevices } from '../../lifecycle/create.js';
import { defineDevice } from '../../lifecycle/define.js';
import { destroyDevice } from '../../lifecycle/destroy.js';
import { modifyStart, undefineDevice } from '../../lifecycle/modify-undefine.js';
import type { OperationOutcome } from '../../lifecycle/operation.js';
import { startAutostart, startDevice, stopDevice } from '../../lifecycle/start-stop.js';
import type { TypeSelector } from '../../rules/type-resolution.js';
import { lifecycleContextOf, parseInput } from '../context.js';
import { printJson, type Io } from '../output.js';
import { normalizeDeviceRef } from '../../vendor-vfio/definitions.js';
import type { CommandSetup } from '../command-setup.js';

const common = {
  dryRun: z.boolean().default(false),
  backend: z.enum(BACKENDS).default('sysfs'),
  lockTimeout: z.coerce.number({ error: 'must be a number of seconds' }).positive().max(3600).default(10),
};

const lifecycleContext = lifecycleContextOf;

function withCommonOptions(cmd: Command): Command {
  return cmd
    .option('--dry-run', 'print the exact sysfs writes, files and commands, change nothing')
    .option('--backend <backend>', 'sysfs (write sysfs and /etc/mdevctl.d) or mdevctl (run mdevctl)', 'sysfs')
    .option('--lock-timeout <seconds>', 'how long to wait for another vgpuctl run to finish', '10');
}

function selectorFrom(type: string | undefined, profile: string | undefined, required: boolean): TypeSelector | undefined {
  if (type !== undefined && profile !== undefined) throw new VgpuctlError('usage', 'give either -t TYPE or --profile PROFILE, not both');
  if (type !== undefined) return { kind: 'type', type: validateTypeId(type) };
  if (profile !== undefined) return { kind: 'profile', profile: validateProfileName(profile) };
  if (required) throw new VgpuctlError('usage', 'say what to create: -t TYPE (e.g. nvidia-286) or --profile PROFILE (e.g. P40-12C)');
  return undefined;
}

function startMode(auto: boolean, manual: boolean): 'auto' | 'manual' {
  if (auto && manual) throw new VgpuctlError('usage', '--auto and --manual exclude each other');
  return auto ? 'auto' : 'manual';
}

/** Prints an outcome: JSON as is; text as the dry-run plan or the lines the command chose. */
function report<R>(io: Io, output: 'table' | 'json', outcome: OperationOutcome<R>, lines: (r: R) => string[]): void {
  if (output === 'json') return printJson(io, { ...outcome.result, dry_run: outcome.dry_run, actions: outcome.actions, notes: outcome.notes });
  if (outcome.dry_run) {
    io.out(outcome.actions.length === 0 ? 'Dry run: nothing to do.' : ['Dry run: would do, in order:', ...outcome.actions.map((a) => `  ${a['summary']}: ${a['line']}`)].join('\n'));
  } else {
    const ls = lines(outcome.result);
    if (ls.length > 0) io.out(ls.join('\n'));
  }
  for (const n of outcome.notes) io.err(`vgpuctl: ${n}`);
}

export function registerLifecycleCommands(program: Command, setup: CommandSetup): void {
  const io = setup.io;

  withCommonOptions(
    program
      .command('create')
      .description('create active mdevs of a type or profile; placed on the GPUs by the rules unless -p is given')
      .option('-t, --type <type>', 'mdev type id, e.g. nvidia-286')
      .option('--profile <profile>', 'vGPU profile, resolved to the type id on each GPU, e.g. P40-12C')
      .option('-p, --parent <parent>', 'parent device (PCI address); default: place automatically')
      .option('-n, --count <n>', 'how many devices', undefined)
      .option('-u, --uuid <uuid...>', 'UUIDs to use (one per device); default: generated')
      .option('--spread', 'use empty GPUs first and spread the devices across GPUs')
      .option('--define', 'also persist the devices in /etc/mdevctl.d')
      .option('-a, --auto', 'with --define: start at boot')
      .option('--manual', 'with --define: do not start at boot (default)'),
  )
    .addHelpText('after', '\nExamples:\n  vgpuctl create --profile P40-12C --count 2 --define --auto\n  vgpuctl create -t nvidia-286 -p 0000:82:00.0 --dry-run')
    .action(
      setup.action(async (ctx, raw) => {
        const o = parseInput(
          z.object({
            ...common,
            type: z.string().optional(),
            profile: z.string().optional(),
            parent: z.string().optional(),
            count: z.coerce.number({ error: 'must be a whole number' }).int('must be a whole number').min(1, 'must be at least 1').max(1024, 'must be at most 1024').optional(),
            uuid: z.array(z.string()).optional(),
            spread: z.boolean().default(false),
            define: z.boolean().default(false),
            auto: z.boolean().default(false),
            manual: z.boolean().default(false),
          }),
          raw,
          'option',
        );
        const selector = selectorFrom(o.type, o.profile, true)!;
        if ((o.auto || o.manual) && !o.define) throw new VgpuctlError('usage', '--auto and --manual go with --define');
        const outcome = await createDevices(lifecycleContext(ctx, io, o), {
          selector,
          parent: o.parent === undefined ? undefined : normalizeParent(o.parent),
          count: o.count,
          uuids: o.uuid?.map(normalizeUuid),
          spread: o.spread,
          define: o.define ? { start: startMode(o.auto, o.manual) } : undefined,
        });
        report(io, ctx.output, outcome, (r) => r.created.map((d) => d.uuid));
      }),
    );

  withCommonOptions(
    program
      .command('define')
      .description('persist a device in /etc/mdevctl.d (as mdevctl writes it); with only -u, an active device as it is')
      .requiredOption('-u, --uuid <uuid>', 'the device (a vendor-VFIO vGPU: its VF address or handle)')
      .option('-p, --parent <parent>', 'parent device (PCI address)')
      .option('-t, --type <type>', 'mdev type id')
      .option('--profile <profile>', 'vGPU profile, resolved on the parent')
      .option('-a, --auto', 'start at boot')
      .option('--manual', 'do not start at boot (default)')
      .option('--force', 'replace an existing definition'),
  )
    .addHelpText('after', '\nExamples:\n  vgpuctl define -u 334852fe-079b-11ee-9fc7-77463608f467 --auto\n  vgpuctl define -u $(uuidgen) -p 0000:82:00.0 --profile P40-6Q')
    .action(
      setup.action(async (ctx, raw) => {
        const o = parseInput(
          z.object({ ...common, uuid: z.string(), parent: z.string().optional(), type: z.string().optional(), profile: z.string().optional(), auto: z.boolean().default(false), manual: z.boolean().default(false), force: z.boolean().default(false) }),
          raw,
          'option',
        );
        const outcome = await defineDevice(lifecycleContext(ctx, io, o), {
          uuid: normalizeDeviceRef(o.uuid),
          parent: o.parent === undefined ? undefined : normalizeParent(o.parent),
          selector: selectorFrom(o.type, o.profile, false),
          start: startMode(o.auto, o.manual),
          force: o.force,
        });
        report(io, ctx.output, outcome, (r) => [`defined ${r.defined.uuid} (${r.defined.profile ?? r.defined.type} on ${r.defined.parent}, start ${r.defined.start})${r.defined.replaced ? ', replacing the previous definition' : ''}`]);
      }),
    );

  withCommonOptions(
    program
      .command('start')
      .description('start a defined device, or (--autostart) every start-auto definition whose parent exists')
      .option('-u, --uuid <uuid>', 'the defined device')
      .option('-p, --parent <parent>', 'the parent, when the UUID is defined under several')
      .option('--autostart', 'the boot-time job: start every definition with start auto'),
  )
    .action(
      setup.action(async (ctx, raw) => {
        const o = parseInput(z.object({ ...common, uuid: z.string().optional(), parent: z.string().optional(), autostart: z.boolean().default(false) }), raw, 'option');
        const lc = lifecycleContext(ctx, io, o);
        if (o.autostart) {
          if (o.uuid !== undefined) throw new VgpuctlError('usage', '--autostart starts every auto definition; leave out -u');
          if (o.dryRun) throw new VgpuctlError('usage', "--autostart has no --dry-run; see what it would start with 'vgpuctl list --defined'");
          const r = await startAutostart(lc);
          if (ctx.output === 'json') printJson(io, r);
          else {
            for (const s of r.started) io.out(`started ${s.uuid} (${s.profile ?? s.type} on ${s.parent})`);
            for (const s of r.skipped) io.err(`vgpuctl: skipped ${s.uuid} on ${s.parent}: ${s.reason}`);
            for (const f of r.failed) io.err(`vgpuctl: error: ${f.uuid} on ${f.parent}: ${f.error}`);
          }
          if (r.failed.length > 0) setup.fail(1);
          return;
        }
        if (o.uuid === undefined) throw new VgpuctlError('usage', 'say which device: -u UUID, or --autostart for every auto definition');
        const outcome = await startDevice(lc, normalizeDeviceRef(o.uuid), o.parent === undefined ? undefined : normalizeParent(o.parent));
        report(io, ctx.output, outcome, (r) => r.started.map((s) => `started ${s.uuid} (${s.profile ?? s.type} on ${s.parent})`));
      }),
    );

  withCommonOptions(
    program
      .command('stop')
      .description('remove an active device (its definition stays); refused while a VM uses it')
      .requiredOption('-u, --uuid <uuid>', 'the device (a vendor-VFIO vGPU: its VF address or handle)')
      .option('--force', 'also stop a device that an inactive libvirt domain names'),
  ).action(
    setup.action(async (ctx, raw) => {
      const o = parseInput(z.object({ ...common, uuid: z.string(), force: z.boolean().default(false) }), raw, 'option');
      const outcome = await stopDevice(lifecycleContext(ctx, io, o), normalizeDeviceRef(o.uuid), o.force);
      report(io, ctx.output, outcome, (r) => r.stopped.map((s) => `stopped ${s.uuid}`));
    }),
  );

  withCommonOptions(
    program
      .command('modify')
      .description('change whether a defined device starts at boot')
      .requiredOption('-u, --uuid <uuid>', 'the device (a vendor-VFIO vGPU: its VF address or handle)')
      .option('-p, --parent <parent>', 'the parent, when the UUID is defined under several')
      .option('-a, --auto', 'start at boot')
      .option('--manual', 'do not start at boot'),
  ).action(
    setup.action(async (ctx, raw) => {
      const o = parseInput(z.object({ ...common, uuid: z.string(), parent: z.string().optional(), auto: z.boolean().default(false), manual: z.boolean().default(false) }), raw, 'option');
      if (!o.auto && !o.manual) throw new VgpuctlError('usage', 'say how it should start: --auto or --manual');
      const outcome = await modifyStart(lifecycleContext(ctx, io, o), normalizeDeviceRef(o.uuid), startMode(o.auto, o.manual), o.parent === undefined ? undefined : normalizeParent(o.parent));
      report(io, ctx.output, outcome, (r) => r.modified.map((m) => `${m.uuid} now starts ${m.start}`));
    }),
  );

  withCommonOptions(
    program
      .command('undefine')
      .description('remove the definition of a device (an active device keeps running)')
      .requiredOption('-u, --uuid <uuid>', 'the device (a vendor-VFIO vGPU: its VF address or handle)')
      .option('-p, --parent <parent>', 'only the definition under this parent'),
  ).action(
    setup.action(async (ctx, raw) => {
      const o = parseInput(z.object({ ...common, uuid: z.string(), parent: z.string().optional() }), raw, 'option');
      const outcome = await undefineDevice(lifecycleContext(ctx, io, o), normalizeDeviceRef(o.uuid), o.parent === undefined ? undefined : normalizeParent(o.parent));
      report(io, ctx.output, outcome, (r) => r.undefined.map((u) => `undefined ${u.uuid} (${u.type} on ${u.parent})`));
    }),
  );

  withCommonOptions(
    program
      .command('destroy')
      .description('stop and undefine a device and remove its nvidia-mdev@UUID.service boot unit')
      .requiredOption('-u, --uuid <uuid>', 'the device (a vendor-VFIO vGPU: its VF address or handle)')
      .option('--keep-definition', 'stop it but keep its definition')
      .option('--force', 'also destroy a device that an inactive libvirt domain names'),
  )
    .addHelpText('after', '\nExample:\n  vgpuctl destroy -u 0a47ffd1-392e-5373-8428-707a4e0ce31a --dry-run')
    .action(
      setup.action(async (ctx, raw) => {
        const o = parseInput(z.object({ ...common, uuid: z.string(), keepDefinition: z.boolean().default(false), force: z.boolean().default(false) }), raw, 'option');
        const outcome = await destroyDevice(lifecycleContext(ctx, io, o), { uuid: normalizeDeviceRef(o.uuid), keepDefinition: o.keepDefinition, force: o.force });
        report(io, ctx.output, outcome, (r) => [
          `destroyed ${r.destroyed.uuid}${r.destroyed.stopped ? '' : ' (was not active)'}${r.destroyed.undefined.length > 0 ? ', undefined' : ''}${r.destroyed.units_removed.length > 0 ? `, removed ${r.destroyed.units_removed.length} boot unit file(s)/link(s)` : ''}`,
        ]);
      }),
    );
}
