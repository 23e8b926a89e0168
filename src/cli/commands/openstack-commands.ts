/** nova-config, flavor, libvirt-xml, vm-check: OpenStack nova and libvirt configuration for the host's GPUs. */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { VgpuctlError, errnoOf } from '../../errors/vgpuctl-error.js';
import type { HostRoot } from '../../host/host-root.js';
import { isPciAddress, normalizeParent } from '../../host/identifiers.js';
import type { Warning } from '../../host/inventory.js';
import { discoverPci } from '../../host/pci.js';
import { readHostState, type HostState } from '../../lifecycle/host-state.js';
import { buildHostdevs } from '../../libvirt/hostdevs.js';
import { checkVms, DEFAULT_MAX_VGPUS_PER_VM, loadDomain, type VmInput, type VmVerdict } from '../../libvirt/vm-check.js';
import { parseAliasRequest, pciFlavor, vgpuFlavor, type FlavorSpecs } from '../../nova/flavor.js';
import { parseIni } from '../../nova/ini.js';
import { buildMdevConfig, intendedFromHost, intendedFromPlan, parseClassChoice, renderMdevConfig, type NovaMdevConfig } from '../../nova/mdev-config.js';
import { mergeIni, writeFilePreserving, type MergeSpec } from '../../nova/merge.js';
import { buildPciConfig, renderPciConfig, type NovaPciConfig } from '../../nova/pci-config.js';
import { DEFAULT_RELEASE, label, parseRelease, releaseNames, type NovaRelease } from '../../nova/releases.js';
import { unifiedDiff } from '../../nova/unified-diff.js';
import { errorsOf, validateNovaConf } from '../../nova/validate.js';
import { loadPlanFile } from '../../plan/plan-file.js';
import { buildVendorNovaConfig, novaSources, vendorFlavor, withPassthrough, type VendorNovaConfig } from '../../vendor-vfio/nova.js';
import { vendorHostdevs } from '../../vendor-vfio/libvirt.js';
import { withVendorVgpus } from '../../vendor-vfio/vm-check.js';
import { normalizeDeviceRef } from '../../vendor-vfio/definitions.js';
import type { Plan } from '../../plan/plan-file.js';
import { parseInput, type Context } from '../context.js';
import { printJson, printWarnings, type Io } from '../output.js';
import type { CommandSetup } from '../command-setup.js';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

const sourceOptions = {
  release: z.string().min(1, 'give a release such as 2024.1').default(DEFAULT_RELEASE),
  fromPlan: z.string().min(1).optional(),
  mdevClass: z.array(z.string().min(1, 'give auto, VGPU, CUSTOM_… or TYPE=CLASS')).default([]),
};

const pciAddressInput = (what: string) =>
  z.string().transform((s, ctx) => {
    try {
      const a = normalizeParent(s);
      if (isPciAddress(a)) return a;
    } catch {
      // reported below
    }
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(s)} is not a PCI address; ${what} takes addresses such as 0000:86:00.0` });
    return z.NEVER;
  });

/** A string flag put through one of the identifier normalizers; what it throws is the flag's message. */
const normalizedBy = (normalize: (s: string) => string) =>
  z.string().transform((s, ctx) => {
    try {
      return normalize(s);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
      return z.NEVER;
    }
  });

/** -u of libvirt-xml: an mdev UUID, or a vendor-VFIO vGPU's VF address or handle. */
const deviceRefInput = normalizedBy(normalizeDeviceRef);

/** Absolute paths are host paths (under --root, like every path vgpuctl reads); relative ones are the caller's. */
const hostFile = (host: HostRoot, file: string): string => (path.isAbsolute(file) ? host.path(file) : path.resolve(file));

async function readText(file: string, shown: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') throw new VgpuctlError('not-found', `${shown} does not exist`);
    throw new VgpuctlError('host-read', `cannot read ${shown}: ${errnoOf(e) ?? (e as Error).message}`);
  }
}

function notesOut(io: Io, notes: string[]): void {
  for (const n of notes) io.err(`vgpuctl: note: ${n}`);
}

interface MdevInputs {
  release: NovaRelease;
  state: HostState;
  config: NovaMdevConfig;
  sourceWarnings: Warning[];
}

async function mdevConfigFrom(ctx: Context, o: { release: string; fromPlan?: string | undefined; mdevClass: string[] }, mdevPlan?: Plan): Promise<MdevInputs> {
  const release = parseRelease(o.release);
  const classes = parseClassChoice(o.mdevClass);
  const plan = o.fromPlan === undefined ? undefined : (mdevPlan ?? loadPlanFile(o.fromPlan));
  const state = await readHostState(ctx.host);
  const intended = plan ? await intendedFromPlan(state, ctx.catalogue, plan, o.fromPlan!) : intendedFromHost(state);
  const sourceLabel = plan ? `plan ${o.fromPlan}` : 'the vGPUs on this host';
  const config = buildMdevConfig(state, ctx.catalogue, intended.vgpus, { release, classes, sourceLabel, fromPlan: plan !== undefined });
  // Never print what nova would refuse: the generated sections pass nova's rules.
  const problems = errorsOf(validateNovaConf(parseIni(renderMdevConfig(config)), release));
  if (problems.length > 0) throw new VgpuctlError('internal', `generated a configuration nova would refuse: ${problems.map((p) => p.message).join('; ')}`);
  return { release, state, config, sourceWarnings: intended.warnings };
}

/** optional: a host without passthrough GPUs gives a config without GPUs instead of an error. */
async function pciConfigFrom(ctx: Context, o: { release: string; gpu: string[] }, optional = false): Promise<NovaPciConfig> {
  const release = parseRelease(o.release);
  const [state, pci] = await Promise.all([readHostState(ctx.host), discoverPci(ctx.host)]);
  const config = buildPciConfig(state, ctx.catalogue, pci, { release, gpus: o.gpu, optional });
  const problems = errorsOf(validateNovaConf(parseIni(renderPciConfig(config)), release));
  if (problems.length > 0) throw new VgpuctlError('internal', `generated a configuration nova would refuse: ${problems.map((p) => p.message).join('; ')}`);
  return config;
}

const releaseJson = (r: NovaRelease) => ({ name: r.name, codename: r.codename, nova: r.nova });

export function registerOpenstackCommands(program: Command, setup: CommandSetup): void {
  const io = setup.io;

  program
    .command('nova-config')
    .description('nova-compute options for the host: [devices]/[mdev_<type>] for its vGPUs, or [pci] for passthrough GPUs (--pci)')
    .option('--release <release>', `OpenStack release: ${releaseNames().join(', ')} (or code name / nova version)`, DEFAULT_RELEASE)
    .option('--from-plan <file>', 'configure the vGPUs a plan puts on the host instead of the ones it carries now')
    .option('--mdev-class <class>', 'resource class: auto (VGPU for one type, CUSTOM_VGPU_<PROFILE> for several), VGPU, CUSTOM_…, or TYPE=CLASS; repeatable', collect, [])
    .option('--pci', 'print [pci] device_spec and alias for GPUs given whole to VMs (default: the GPUs bound to vfio-pci)')
    .option('--gpu <address>', 'with --pci: this GPU is meant for passthrough; repeatable', collect, [])
    .option('--merge <file>', 'rewrite only the vgpuctl-owned options and sections of an existing nova.conf (absolute paths are under --root)')
    .option('--dry-run', 'with --merge: print the diff, change nothing')
    .option('--check <file>', "check an existing nova.conf against nova's rules for the release; exit 1 if nova would refuse it")
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  vgpuctl nova-config --release 2024.1',
        '  vgpuctl nova-config --release zed --from-plan plan.yaml --mdev-class nvidia-700=CUSTOM_A100D_2_20C',
        '  vgpuctl nova-config --merge /etc/nova/nova.conf --dry-run',
        '  vgpuctl nova-config --pci --release yoga',
        '  vgpuctl nova-config --check /etc/nova/nova.conf --release 2023.2',
      ].join('\n'),
    )
    .action(
      setup.action(async (ctx, raw) => {
        const o = parseInput(
          z.object({
            ...sourceOptions,
            pci: z.boolean().default(false),
            gpu: z.array(pciAddressInput('--gpu')).default([]),
            merge: z.string().min(1).optional(),
            dryRun: z.boolean().default(false),
            check: z.string().min(1).optional(),
          }),
          raw,
          'option',
        );
        if (o.dryRun && o.merge === undefined) throw new VgpuctlError('usage', '--dry-run goes with --merge FILE');
        if (o.gpu.length > 0 && !o.pci) throw new VgpuctlError('usage', '--gpu chooses passthrough GPUs; use it with --pci');
        if (o.pci && (o.fromPlan !== undefined || o.mdevClass.length > 0)) throw new VgpuctlError('usage', '--from-plan and --mdev-class are for the vGPU options; --pci prints the passthrough options');
        if (o.check !== undefined) {
          if (o.merge !== undefined || o.pci || o.fromPlan !== undefined || o.mdevClass.length > 0 || o.gpu.length > 0) {
            throw new VgpuctlError('usage', '--check FILE checks a file as it is; use it with --release only');
          }
          const release = parseRelease(o.release);
          const text = await readText(hostFile(ctx.host, o.check), o.check);
          const problems = validateNovaConf(parseIni(text), release);
          const errors = errorsOf(problems);
          if (ctx.output === 'json') {
            const warnings = problems.filter((p) => p.severity === 'warning').map((p) => ({ code: p.code, message: p.message }));
            printJson(io, { file: o.check, release: releaseJson(release), ok: errors.length === 0, problems, warnings });
          }
          else {
            io.out(errors.length === 0 ? `${o.check}: nova ${release.name} accepts the vGPU and PCI options.` : `${o.check}: nova ${release.name} would refuse it:`);
            for (const p of problems) io.out(`  ${p.severity}: ${p.line !== null ? `line ${p.line}: ` : ''}${p.message}`);
          }
          if (errors.length > 0) setup.fail(1);
          return;
        }

        let text: string;
        let spec: MergeSpec;
        let release: NovaRelease;
        let payload: Record<string, unknown>;
        let warnings: Warning[];
        let notes: string[] = [];
        let vendorNova: VendorNovaConfig | null = null;
        if (o.pci) {
          const c = await pciConfigFrom(ctx, o);
          release = c.release;
          text = renderPciConfig(c);
          spec = { keys: [{ group: 'pci', keys: ['device_spec', 'passthrough_whitelist', 'alias'], lines: c.lines }], ownsGroup: () => false, sections: [], anchorGroup: 'pci' };
          payload = { pci: { option: c.option, gpus: c.gpus, device_specs: c.device_specs, aliases: c.aliases } };
          warnings = c.warnings;
          // The host's vendor-VFIO VFs need [pci] device_spec/alias too: the lines of both, or a merge would drop theirs.
          const vendor = await buildVendorNovaConfig(ctx.host, ctx.catalogue, release);
          if (vendor?.releaseProblem) {
            if (o.merge !== undefined) throw new VgpuctlError('refused', `${vendor.releaseProblem}; --merge writes the [pci] options of the passthrough GPUs and of the vendor-VFIO VFs together and would drop the VFs'`);
            warnings.push({ code: 'vendor-vfio-release', message: `${vendor.releaseProblem}; the vendor-VFIO VFs are left out` });
          } else if (vendor) {
            const union = withPassthrough(vendor, c);
            text = union.text;
            spec = { ...spec, keys: union.mergeKeys };
            payload['vendor_vfio'] = { device_specs: vendor.device_specs, aliases: vendor.aliases };
          }
        } else {
          // vendor-VFIO vGPUs (src/vendor-vfio/nova.ts) reach nova as PCI devices; mdev vGPUs as mdev groups.
          const sources = await novaSources(ctx.host, ctx.catalogue, parseRelease(o.release), o.fromPlan === undefined ? undefined : { plan: loadPlanFile(o.fromPlan), label: `plan ${o.fromPlan}` });
          vendorNova = sources.vendor;
          release = parseRelease(o.release);
          text = '';
          spec = { keys: [], ownsGroup: () => false, sections: [], anchorGroup: 'pci' };
          payload = {};
          warnings = [];
          if (sources.mdev) {
            const m = await mdevConfigFrom(ctx, o, sources.mdevPlan);
            const c = m.config;
            release = c.release;
            text = renderMdevConfig(c);
            spec = {
              keys: [{ group: 'devices', keys: ['enabled_mdev_types', 'enabled_vgpu_types'], lines: c.devices_lines }],
              ownsGroup: (g) => g.startsWith('mdev_') || g.startsWith('vgpu_'),
              sections: c.sections,
              anchorGroup: 'devices',
            };
            payload = { mdev: { option: c.option, enabled_types: c.enabled_types, groups: c.groups, written_groups: c.written_groups, nova_view: c.nova_view } };
            warnings = [...m.sourceWarnings, ...c.warnings];
            notes = c.notes;
          }
          if (vendorNova) {
            // The passthrough GPUs' [pci] lines too (nova-config --pci writes the same union).
            const pt = await pciConfigFrom(ctx, { release: o.release, gpu: [] }, true);
            const union = withPassthrough(vendorNova, pt);
            text = text === '' ? union.text : `${text.replace(/\n*$/, '\n\n')}${union.text}`;
            spec = { ...spec, keys: [...spec.keys, ...union.mergeKeys] };
            payload['vendor_vfio'] = { device_specs: vendorNova.device_specs, aliases: vendorNova.aliases };
            if (pt.gpus.length > 0) {
              payload['pci'] = { option: pt.option, gpus: pt.gpus, device_specs: pt.device_specs, aliases: pt.aliases };
              warnings.push(...pt.warnings);
            }
          }
        }

        if (o.merge === undefined) {
          if (ctx.output === 'json') return printJson(io, { release: releaseJson(release), ...payload, text, warnings, notes });
          printWarnings(io, warnings);
          notesOut(io, notes);
          io.out(text.replace(/\n$/, ''));
          return;
        }

        const file = hostFile(ctx.host, o.merge);
        const before = await readText(file, o.merge);
        const merged = mergeIni(before, spec, o.merge);
        const problems = validateNovaConf(parseIni(merged.text), release);
        const errors = errorsOf(problems);
        if (errors.length > 0) {
          throw new VgpuctlError('refused', `${o.merge} would still be refused by nova ${release.name} after the merge: ${errors.map((p) => `${p.line !== null ? `line ${p.line}: ` : ''}${p.message}`).join('; ')}`);
        }
        const doc = parseIni(before);
        for (const [group, key] of [['DEFAULT', 'pci_passthrough_whitelist'], ['DEFAULT', 'pci_alias']] as const) {
          if (o.pci && doc.assignments.some((a) => a.group === group && a.key === key)) {
            warnings.push({ code: 'deprecated-option', message: `${o.merge} still sets [${group}] ${key}, an old name nova reads as well: remove it` });
          }
        }
        for (const p of problems) warnings.push({ code: `nova-${p.code}`, message: `${o.merge}${p.line !== null ? `:${p.line}` : ''}: ${p.message}` });
        const diff = unifiedDiff(before, merged.text, `a${o.merge.startsWith('/') ? '' : '/'}${o.merge}`, `b${o.merge.startsWith('/') ? '' : '/'}${o.merge}`);
        const written = merged.changed && !o.dryRun;
        if (written) await writeFilePreserving(file, merged.text);
        if (ctx.output === 'json') {
          return printJson(io, { release: releaseJson(release), ...payload, merge: { file: o.merge, changed: merged.changed, dry_run: o.dryRun, written, diff }, warnings, notes });
        }
        printWarnings(io, warnings);
        notesOut(io, notes);
        if (!merged.changed) io.out(`${o.merge} already has this configuration; nothing to change.`);
        else {
          io.out(diff);
          io.out(o.dryRun ? `Dry run: ${o.merge} not changed.` : `Updated ${o.merge} for OpenStack ${label(release)}.`);
        }
      }),
    );

  program
    .command('flavor')
    .description('flavor extra specs that match the generated nova configuration: a vGPU profile or PCI aliases')
    .option('--profile <profile>', 'vGPU profile (or type id) the flavor asks for, e.g. P40-12C')
    .option('-n, --count <n>', 'vGPUs per instance (several need 2026.1 and a profile that allows it)', '1')
    .option('--pci-alias <name:count>', 'passthrough alias and count, e.g. T4:1; repeatable', collect, [])
    .option('--gpu <address>', 'with --pci-alias: the passthrough GPUs, as for nova-config --pci; repeatable', collect, [])
    .option('--release <release>', `OpenStack release (${releaseNames().join(', ')})`, DEFAULT_RELEASE)
    .option('--from-plan <file>', 'as for nova-config: the vGPUs a plan puts on the host')
    .option('--mdev-class <class>', 'as for nova-config; repeatable', collect, [])
    .addHelpText('after', '\nExamples:\n  vgpuctl flavor --profile P40-12C\n  vgpuctl flavor --pci-alias T4:1 -o json')
    .action(
      setup.action(async (ctx, raw) => {
        const o = parseInput(
          z.object({
            ...sourceOptions,
            profile: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}$/, 'expected a vGPU profile like P40-12C or a type id like nvidia-286').optional(),
            count: z.coerce.number({ error: 'must be a whole number' }).int('must be a whole number').min(1, 'must be at least 1').max(64),
            pciAlias: z.array(z.string()).default([]),
            gpu: z.array(pciAddressInput('--gpu')).default([]),
          }),
          raw,
          'option',
        );
        if ((o.profile === undefined) === (o.pciAlias.length === 0)) throw new VgpuctlError('usage', 'say what the flavor asks for: --profile PROFILE (a vGPU) or --pci-alias NAME:COUNT (passthrough)');
        let specs: FlavorSpecs;
        let release: NovaRelease;
        if (o.profile !== undefined) {
          if (o.gpu.length > 0) throw new VgpuctlError('usage', '--gpu goes with --pci-alias');
          // A vendor-VFIO vGPU is asked for through its PCI alias (src/vendor-vfio/nova.ts).
          const plan = o.fromPlan === undefined ? undefined : { plan: loadPlanFile(o.fromPlan), label: `plan ${o.fromPlan}` };
          const sources = await novaSources(ctx.host, ctx.catalogue, parseRelease(o.release), plan, { lenientRelease: true });
          const vendor = sources.vendor ? vendorFlavor(sources.vendor, ctx.catalogue, o.profile, o.count) : null;
          if (vendor) {
            release = parseRelease(o.release);
            specs = vendor;
          } else {
            const m = await mdevConfigFrom(ctx, o, sources.mdevPlan);
            release = m.release;
            specs = vgpuFlavor(m.config, ctx.catalogue, o.profile, o.count);
            specs.warnings.unshift(...m.sourceWarnings, ...m.config.warnings);
          }
        } else {
          if (o.fromPlan !== undefined || o.mdevClass.length > 0 || o.count !== 1) throw new VgpuctlError('usage', '--from-plan, --mdev-class and --count go with --profile; a PCI alias carries its own count (NAME:COUNT)');
          const requests = o.pciAlias.map(parseAliasRequest);
          const c = await pciConfigFrom(ctx, o);
          release = c.release;
          specs = pciFlavor(c, requests);
          specs.warnings.unshift(...c.warnings);
        }
        if (ctx.output === 'json') return printJson(io, { release: releaseJson(release), extra_specs: specs.extra_specs, command: specs.command, warnings: specs.warnings });
        printWarnings(io, specs.warnings);
        io.out([...Object.entries(specs.extra_specs).map(([k, v]) => `${k}=${v}`), '', specs.command].join('\n'));
      }),
    );

  program
    .command('libvirt-xml')
    .description('libvirt <hostdev> elements: vGPUs by UUID (-u), passthrough cards with all their functions (--pci)')
    .option('-u, --uuid <uuid>', 'mdev UUID, or a vendor-VFIO vGPU (VF address or handle); repeatable', collect, [])
    .option('--pci <address>', 'PCI address of a card to pass through whole; repeatable', collect, [])
    .option('--display <on|off>', "display='on' for a vGPU with a console (the domain then needs a graphics device)", 'off')
    .addHelpText('after', '\nExamples:\n  vgpuctl libvirt-xml -u 334852fe-079b-11ee-9fc7-77463608f467\n  vgpuctl libvirt-xml --pci 0000:86:00.0')
    .action(
      setup.action(async (ctx, raw) => {
        const o = parseInput(
          z.object({
            uuid: z.array(deviceRefInput).default([]),
            pci: z.array(pciAddressInput('--pci')).default([]),
            display: z.enum(['on', 'off'], { error: 'must be on or off' }).default('off'),
          }),
          raw,
          'option',
        );
        if (o.uuid.length === 0 && o.pci.length === 0) throw new VgpuctlError('usage', 'name the devices: -u UUID for a vGPU, --pci ADDRESS for a passthrough card');
        const [state, pci, vendor] = await Promise.all([readHostState(ctx.host), discoverPci(ctx.host), vendorHostdevs(ctx.host, ctx.catalogue, o.uuid, { display: o.display })]);
        const r = buildHostdevs(state, ctx.catalogue, pci, { uuids: vendor.rest, pciAddresses: o.pci, display: o.display });
        // vendor-VFIO vGPUs (src/vendor-vfio/libvirt.ts) first, then the mdevs and the cards.
        r.hostdevs = [...vendor.hostdevs, ...r.hostdevs];
        r.xml = r.hostdevs.map((h) => h.xml).join('\n');
        r.warnings = [...vendor.warnings, ...r.warnings];
        if (ctx.output === 'json') return printJson(io, { hostdevs: r.hostdevs, xml: r.xml, notes: r.notes, warnings: r.warnings, vm_check: r.vm_check });
        printWarnings(io, r.warnings);
        notesOut(io, r.notes);
        io.out(r.xml);
      }),
    );

  program
    .command('vm-check')
    .description("judge a VM's vGPUs before it starts: existence, multi-vGPU rules of the board, one vGPU per physical GPU, per-VM maximum")
    .option('--domain <file-or-name>', 'libvirt domain XML file or domain name (from /etc/libvirt/qemu under --root); repeatable', collect, [])
    .option('-u, --uuid <uuid>', 'mdev UUIDs (or vendor-VFIO VFs / handles) of one VM; repeatable', collect, [])
    .option('--max-per-vm <n>', 'most vGPUs a VM may have', String(DEFAULT_MAX_VGPUS_PER_VM))
    .addHelpText('after', '\nExit status 1 when a VM would fail to start.\n\nExamples:\n  vgpuctl vm-check --domain y-k8s-n-1\n  vgpuctl vm-check -u UUID1 -u UUID2 -o json')
    .action(
      setup.action(async (ctx, raw) => {
        const o = parseInput(
          z.object({
            domain: z.array(z.string().min(1)).default([]),
            uuid: z.array(deviceRefInput).default([]),
            maxPerVm: z.coerce.number({ error: 'must be a whole number' }).int('must be a whole number').min(1).max(1024),
          }),
          raw,
          'option',
        );
        if ((o.domain.length === 0) === (o.uuid.length === 0)) throw new VgpuctlError('usage', 'give the VM: --domain FILE_OR_NAME (repeatable), or its vGPUs with -u UUID (repeatable), not both');
        const vms: VmInput[] = o.uuid.length > 0 ? [{ name: '(command line)', source: 'command line', uuids: o.uuid, pciAddresses: [] }] : [];
        for (const d of o.domain) vms.push(await loadDomain(ctx.host, d));
        const [state, pci] = await Promise.all([readHostState(ctx.host), discoverPci(ctx.host)]);
        // vendor-VFIO VFs among the VMs' PCI hostdevs (and -u) are vGPUs too (src/vendor-vfio/vm-check.ts).
        const verdicts = checkVms(state, ctx.catalogue, await withVendorVgpus(ctx.host, ctx.catalogue, vms), { maxPerVm: o.maxPerVm, pci });
        const failed = verdicts.some((v) => v.verdict === 'would-fail');
        if (ctx.output === 'json') printJson(io, { verdict: failed ? 'would-fail' : 'would-start', vms: verdicts, warnings: [] });
        else io.out(verdicts.map(renderVerdict).join('\n\n'));
        if (failed) setup.fail(1);
      }),
    );
}

function renderVerdict(v: VmVerdict): string {
  const head = `VM ${v.name}${v.source === 'command line' ? '' : ` (${v.source})`}: ${v.verdict === 'would-start' ? 'would start' : 'would fail to start'}`;
  const lines = [head];
  for (const r of v.reasons) lines.push(`  ${r.severity}: ${r.message}`);
  if (v.vgpus.length === 0) lines.push('  no vGPUs');
  for (const g of v.vgpus) {
    const what = g.profile ?? g.type ?? 'unknown';
    lines.push(`  vGPU ${g.uuid}: ${what}${g.parent ? ` on ${g.parent}` : ''}${g.gpu && g.gpu !== g.parent ? ` (GPU ${g.gpu})` : ''}${g.active ? '' : g.defined ? ', defined, not active' : ', not on this host'}`);
  }
  return lines.join('\n');
}

