/** `vgpuctl pci list|status|detach|attach`: whole-card passthrough, seed 000's gpupci. */
import type { Command } from 'commander';
import { z } from 'zod';
import { changeBinding, type BindingResult } from '../../passthrough/binding.js';
import { discoverCards, selectCards, type Card } from '../../passthrough/cards.js';
import { prepareHost } from '../../passthrough/prepare.js';
import { parseInput } from '../context.js';
import { printJson, type Io } from '../output.js';
import type { CommandSetup } from '../command-setup.js';
import { registerListing } from '../listing-command.js';

const target = z.string().min(1).default('all');

function printBinding(io: Io, r: BindingResult): void {
  for (const s of r.steps) {
    const what = `GPU card '${s.card}' ${s.role} device ${s.address}`;
    if (s.outcome === 'already-detached') io.out(`${what} is already detached`);
    else if (s.outcome === 'already-attached') io.out(`${what} is already attached to the host (${s.driver_before ?? 'no driver'})`);
    else if (r.dry_run) io.out(`Would ${s.outcome === 'detached' ? 'detach' : 'attach'} ${what}`);
    else io.out(s.outcome === 'detached' ? `Detached ${what}` : `Attached ${s.role} card ${s.address} of ${s.card}`);
  }
}

/** The JSON form of a card: snake_case field names, like every other command's output. */
function cardJson(c: Card): Record<string, unknown> {
  return {
    name: c.name,
    address: c.address,
    functions: c.functions.map((f) => ({
      address: f.address,
      role: f.role,
      vendor_id: f.vendorId,
      device_id: f.deviceId,
      class_code: f.classCode,
      driver: f.driver,
      driver_override: f.driverOverride,
      iommu_group: f.iommuGroup,
    })),
    iommu_groups: c.iommuGroups,
    foreign_in_group: c.foreignInGroup.map((f) => ({ address: f.address, class_code: f.classCode, driver: f.driver })),
    mdevs: c.mdevs,
  };
}

export function registerPciCommands(program: Command, setup: CommandSetup): void {
  const io = setup.io;
  const pci = program.command('pci').description('whole-GPU passthrough: list cards, show and change which driver holds them');

  registerListing(pci, setup, {
    name: 'list',
    description: 'NVIDIA cards with logical names gpupci1..N, their functions, IOMMU group and drivers',
    read: (ctx) => discoverCards(ctx.host),
    key: 'cards',
    json: cardJson,
    empty: 'No NVIDIA cards.',
    columns: ['NAME', 'ADDRESS', 'FUNCTIONS', 'IOMMU', 'SHARES GROUP WITH', 'MDEVS'],
    cells: (c) => [c.name, c.address, c.functions.map((f) => `${f.address.slice(-1)}:${f.role}(${f.driver ?? '-'})`).join(' '), c.iommuGroups.join(','), c.foreignInGroup.map((f) => f.address).join(',') || null, c.mdevs.length || null],
  });

  pci
    .command('status')
    .description('which driver each function of a card is bound to')
    .argument('[card]', 'gpupciN, a PCI address, or all', 'all')
    .action(
      setup.action(async (ctx, _raw, args) => {
        const [which] = parseInput(z.tuple([target]), args, 'argument');
        const cards = selectCards(await discoverCards(ctx.host), which);
        if (ctx.output === 'json') return printJson(io, { cards: cards.map((c) => ({ name: c.name, address: c.address, functions: c.functions.map((f) => ({ address: f.address, role: f.role, driver: f.driver, driver_override: f.driverOverride })) })) });
        for (const c of cards) {
          for (const f of c.functions) {
            io.out(f.driver ? `GPU card '${c.name}' ${f.role} device ${f.address} is linked to bus/pci/drivers/${f.driver} driver` : `GPU card '${c.name}' ${f.role} device ${f.address} is not bound to any driver`);
          }
        }
      }),
    );

  for (const direction of ['detach', 'attach'] as const) {
    pci
      .command(direction)
      .description(
        direction === 'detach'
          ? "bind every function of the card's IOMMU group to vfio-pci, ready for a VM"
          : 'give the card back to the host drivers (refused while a running VM uses it)',
      )
      .argument('[card]', 'gpupciN, a PCI address, or all', 'all')
      .option('--dry-run', 'print the exact sysfs writes, change nothing')
      .option('--lock-timeout <seconds>', 'how long to wait for another vgpuctl run', '10')
      .action(
        setup.action(async (ctx, raw, args) => {
          const [which] = parseInput(z.tuple([target]), args, 'argument');
          const o = parseInput(z.object({ dryRun: z.boolean().default(false), lockTimeout: z.coerce.number().positive().max(3600).default(10) }), raw, 'option');
          const r = await changeBinding(ctx.host, ctx.writer, which, direction, { dryRun: o.dryRun, lockTimeoutMs: o.lockTimeout * 1000, warn: (m) => io.err(`vgpuctl: warning: ${m}`) });
          if (ctx.output === 'json') return printJson(io, r);
          printBinding(io, r);
        }),
      );
  }

  program
    .command('prepare')
    .description('print (or --write) the host configuration for passthrough or vGPU: IOMMU flags, nouveau blacklist, vfio-pci ids, initramfs, udev')
    .option('--mode <mode>', 'passthrough or vgpu', 'passthrough')
    .option('--ids <ids>', 'vfio-pci ids: auto (the cards not used for vGPU) or 10de:1b02,10de:10ef', 'auto')
    .option('--bootloader <bootloader>', 'grub or systemd-boot', 'grub')
    .option('--cpu <vendor>', 'intel or amd (default: from /proc/cpuinfo)')
    .option('--write', 'write the files under the root, keeping a .vgpuctl-bak of each file replaced')
    .action(
      setup.action(async (ctx, raw) => {
        const o = parseInput(
          z.object({
            mode: z.enum(['passthrough', 'vgpu']).default('passthrough'),
            ids: z
              .string()
              .regex(/^(auto|[0-9a-fA-F]{4}:[0-9a-fA-F]{4}(,[0-9a-fA-F]{4}:[0-9a-fA-F]{4})*)$/, 'expected auto or vendor:device ids like 10de:1b02,10de:10ef')
              .default('auto'),
            bootloader: z.enum(['grub', 'systemd-boot']).default('grub'),
            cpu: z.enum(['intel', 'amd']).optional(),
            write: z.boolean().default(false),
          }),
          raw,
          'option',
        );
        const r = await prepareHost(ctx.host, { mode: o.mode, ids: o.ids === 'auto' ? 'auto' : o.ids.split(','), bootloader: o.bootloader, cpu: o.cpu, write: o.write });
        if (ctx.output === 'json') return printJson(io, r);
        io.out(`CPU ${r.cpu}; kernel arguments: ${r.kernel_args.join(' ')}`);
        for (const f of r.files) {
          io.out(`\n# ${f.path} (${o.write ? (f.status === 'unchanged' ? 'unchanged' : f.status === 'create' ? 'created' : `updated, backup ${f.backup}`) : f.status === 'unchanged' ? 'already as wanted' : `would ${f.status}`})`);
          if (f.status !== 'unchanged') io.out(f.content.trimEnd());
        }
        io.out('');
        for (const n of r.next_steps) io.out(n);
      }),
    );
}
