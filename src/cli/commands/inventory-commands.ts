/** `gpus`, `types`, `profiles`, `list`: the read-only commands. */
import type { Command } from 'commander';
import * as z from 'zod/mini';
import { VgpuctlError } from '../../errors/vgpuctl-error.js';
import { normalizeDeviceRef, normalizeParent } from '../../host/identifiers.js';
import { listDevices, listGpus, listTypes } from '../../host/inventory.js';
import { parseInput } from '../context.js';
import { printJson, printWarnings, renderTable } from '../output.js';
import type { CommandSetup } from '../command-setup.js';

export function registerInventoryCommands(program: Command, setup: CommandSetup): void {
  program
    .command('gpus')
    .description('list NVIDIA GPUs: board, driver, vGPU mode, SR-IOV functions, IOMMU group, NUMA node')
    .option('--vfs', 'also list SR-IOV virtual functions as rows of their own')
    .addHelpText('after', '\nExample:\n  vgpuctl gpus -o json')
    .action(
      setup.action(async (ctx, raw) => {
        const opts = parseInput(z.object({ vfs: z._default(z.boolean(), false) }), raw, 'option');
        const { gpus, warnings } = await listGpus(ctx.host, ctx.catalogue, { includeVfs: opts.vfs });
        if (ctx.output === 'json') return printJson(setup.io, { gpus, warnings });
        printWarnings(setup.io, warnings);
        setup.io.out(
          gpus.length === 0
            ? 'No NVIDIA GPUs found.'
            : await renderTable(
                ['ADDRESS', 'BOARD', 'DEVICE', 'DRIVER', 'MODE', 'VFS', 'IOMMU', 'NUMA', 'VGPUS'],
                gpus.map((g) => [g.address, g.board, `${g.vendor_id.slice(2)}:${g.device_id.slice(2)}`, g.driver, g.mode, g.virtual_functions.length || null, g.iommu_group, g.numa_node, g.vgpus_active]),
              ),
        );
      }),
    );

  program
    .command('types')
    .description('list mdev types per parent with their vGPU profile, size and free instances')
    .option('-p, --parent <parent>', 'only this parent (PCI address such as 0000:82:00.0)')
    .option('--profile <name>', 'only types of this profile, e.g. P40-12C')
    .option('--available', 'only types with free instances')
    .addHelpText('after', '\nExamples:\n  vgpuctl types --profile P40-12C\n  vgpuctl types -p 0000:82:00.0 --available -o json')
    .action(
      setup.action(async (ctx, raw) => {
        const opts = parseInput(
          z.object({ parent: z.optional(z.string()), profile: z.optional(z.string().check(z.minLength(1))), available: z._default(z.boolean(), false) }),
          raw,
          'option',
        );
        const parent = opts.parent === undefined ? undefined : normalizeParent(opts.parent);
        const { types, warnings } = await listTypes(ctx.host, ctx.catalogue, { parent, profile: opts.profile, availableOnly: opts.available });
        if (opts.profile !== undefined && types.length === 0 && !opts.available) {
          const known = ctx.catalogue.profile(opts.profile);
          throw new VgpuctlError(
            'not-found',
            known
              ? `no parent on this host offers ${known.profile.name}; see 'vgpuctl types' for what the GPUs offer`
              : `unknown profile ${JSON.stringify(opts.profile)}; profiles look like P40-12C (see 'vgpuctl profiles')`,
          );
        }
        if (ctx.output === 'json') return printJson(setup.io, { types, warnings });
        printWarnings(setup.io, warnings);
        setup.io.out(
          types.length === 0
            ? 'No mdev types found.'
            : await renderTable(
                ['PARENT', 'TYPE', 'PROFILE', 'SERIES', 'FB(MiB)', 'MAX', 'AVAIL', 'NAME'],
                types.map((t) => [t.parent, t.type, t.profile, t.series, t.framebuffer_mib, t.max_instances, t.available_instances, t.name]),
              ),
        );
      }),
    );

  program
    .command('profiles')
    .description('the bundled vGPU profile catalogue (works offline, reads nothing from the host)')
    .option('--board <board>', 'only this board, e.g. P40 or A100D')
    .action(
      setup.offlineAction(async (catalogue, output, raw) => {
        const opts = parseInput(z.object({ board: z.optional(z.string().check(z.minLength(1))) }), raw, 'option');
        const boards = opts.board === undefined ? catalogue.boards : [catalogue.board(opts.board)].filter((b) => b !== undefined);
        if (boards.length === 0) {
          throw new VgpuctlError('not-found', `unknown board ${JSON.stringify(opts.board)}; known boards: ${catalogue.boards.map((b) => b.board).join(', ')}`);
        }
        const profiles = boards.flatMap((b) =>
          b.profiles.map((p) => ({
            board: b.board,
            profile: p.name,
            series: p.series,
            framebuffer_mib: p.framebuffer_mib,
            max_per_gpu: p.max_per_gpu,
            type_id: p.type_id ?? null,
            multi_vgpu_per_vm: p.multi_vgpu_per_vm,
            mig_slices: p.mig_slices ?? null,
            placement: b.placement,
          })),
        );
        if (output === 'json') return printJson(setup.io, { boards: boards.map((b) => ({ ...b, profiles: undefined })), profiles });
        setup.io.out(
          await renderTable(
            ['BOARD', 'PROFILE', 'SERIES', 'FB(MiB)', 'MAX/GPU', 'TYPE', 'MULTI/VM', 'PLACEMENT'],
            profiles.map((p) => [p.board, p.profile, p.series, p.framebuffer_mib, p.max_per_gpu, p.type_id, p.multi_vgpu_per_vm ? 'yes' : 'no', p.placement]),
          ),
        );
      }),
    );

  program
    .command('list')
    .description('list mdevs: active ones (default), defined ones (--defined) or both (--all)')
    .option('-d, --defined', 'persistent definitions in /etc/mdevctl.d')
    .option('--all', 'active and defined devices')
    .option('-p, --parent <parent>', 'only devices of this parent')
    .option('-u, --uuid <uuid>', 'only this device: its UUID, or the VF address of a vendor-VFIO vGPU')
    .addHelpText('after', '\nExamples:\n  vgpuctl list\n  vgpuctl list --all -o json')
    .action(
      setup.action(async (ctx, raw) => {
        const opts = parseInput(
          z.object({ defined: z._default(z.boolean(), false), all: z._default(z.boolean(), false), parent: z.optional(z.string()), uuid: z.optional(z.string()) }),
          raw,
          'option',
        );
        if (opts.defined && opts.all) throw new VgpuctlError('usage', '--defined and --all exclude each other; --all already includes defined devices');
        const { devices, warnings } = await listDevices(ctx.host, ctx.catalogue, {
          which: opts.all ? 'all' : opts.defined ? 'defined' : 'active',
          parent: opts.parent === undefined ? undefined : normalizeParent(opts.parent),
          ...(opts.uuid === undefined ? {} : normalizeDeviceRef(opts.uuid)),
        });
        if (ctx.output === 'json') return printJson(setup.io, { devices, warnings });
        printWarnings(setup.io, warnings);
        setup.io.out(
          devices.length === 0
            ? 'No mdevs.'
            : await renderTable(
                ['UUID', 'PARENT', 'TYPE', 'PROFILE', 'STATE', 'START', 'VM'],
                devices.map((d) => [
                  d.uuid,
                  d.parent,
                  d.type,
                  d.profile,
                  [d.active ? 'active' : null, d.defined ? 'defined' : null].filter(Boolean).join('+'),
                  d.defined ? (d.autostart ? 'auto' : 'manual') : null,
                  d.vm === null ? null : `${d.vm}${d.vm_running ? '' : ' (off)'}`,
                ]),
              ),
        );
      }),
    );
}
