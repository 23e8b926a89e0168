/**
 * `vgpuctl prepare`: the host configuration the seeds write by hand for passthrough or vGPU — IOMMU flags
 * on the kernel command line, the nouveau blacklist, vfio-pci ids, vfio modules in the initramfs, the udev
 * rule that drops NVIDIA's USB/UCSI functions — printed, or written under the root with backups. Running
 * it twice changes nothing the second time.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import type { HostRoot } from '../host/host-root.js';
import { discoverParents } from '../host/mdev.js';
import { writeFileAtomic } from '../lifecycle/actions.js';
import { discoverCards } from './cards.js';

export interface PrepareOptions {
  mode: 'passthrough' | 'vgpu';
  /** 'auto' or explicit vendor:device ids (10de:1b02). */
  ids: 'auto' | string[];
  bootloader: 'grub' | 'systemd-boot';
  cpu?: 'intel' | 'amd';
  write: boolean;
}

export interface PlannedFile {
  path: string;
  content: string;
  status: 'create' | 'update' | 'unchanged';
  backup: string | null;
}

export interface PrepareReport {
  cpu: 'intel' | 'amd';
  ids: string[];
  kernel_args: string[];
  files: PlannedFile[];
  next_steps: string[];
  written: boolean;
}

async function detectCpu(host: HostRoot, given?: 'intel' | 'amd'): Promise<'intel' | 'amd'> {
  if (given) return given;
  const info = (await host.readAttr(host.path('/proc/cpuinfo'))) ?? '';
  if (/vendor_id\s*:\s*AuthenticAMD/.test(info)) return 'amd';
  if (/vendor_id\s*:\s*GenuineIntel/.test(info)) return 'intel';
  const cmdline = (await host.readAttr(host.path('/proc/cmdline'))) ?? '';
  if (/amd_iommu/.test(cmdline)) return 'amd';
  if (/intel_iommu/.test(cmdline)) return 'intel';
  throw new VgpuctlError('invalid-input', 'cannot tell the CPU vendor (no /proc/cpuinfo): give --cpu intel or --cpu amd');
}

const idOf = (f: { vendorId: string; deviceId: string }): string => `${f.vendorId.slice(2)}:${f.deviceId.slice(2)}`;

/** vendor:device ids of the functions of every card that serves vGPU (an mdev parent, or carrying mdevs). */
async function vgpuCardIds(host: HostRoot): Promise<{ cards: Awaited<ReturnType<typeof discoverCards>>; parents: Set<string>; ids: Set<string> }> {
  const cards = await discoverCards(host);
  const parents = new Set((await discoverParents(host)).map((p) => p.name));
  const ids = new Set(cards.filter((c) => c.functions.some((f) => parents.has(f.address)) || c.mdevs.length > 0).flatMap((c) => c.functions.map(idOf)));
  return { cards, parents, ids };
}

/** vfio-pci ids: every function of the cards meant for passthrough; never a card that serves vGPU. */
async function passthroughIds(host: HostRoot, opts: PrepareOptions, vgpu: Awaited<ReturnType<typeof vgpuCardIds>>): Promise<string[]> {
  const { cards, parents } = vgpu;
  let ids: string[];
  if (opts.ids === 'auto') {
    ids = cards.filter((c) => !c.functions.some((f) => parents.has(f.address)) && c.mdevs.length === 0).flatMap((c) => c.functions.filter((f) => f.role === 'video' || f.role === 'audio').map(idOf));
  } else {
    ids = opts.ids.map((i) => i.toLowerCase());
  }
  ids = [...new Set(ids)].sort();
  const clash = ids.filter((i) => vgpu.ids.has(i));
  if (clash.length > 0) {
    throw new VgpuctlError(
      'refused',
      `vfio-pci.ids=${clash.join(',')} would take ${clash.length === 1 ? 'a card that serves' : 'cards that serve'} vGPU on this host away from the nvidia driver; bind single cards with 'vgpuctl pci detach' instead`,
    );
  }
  return ids;
}

/** Kernel arguments whose value is a comma-separated list the operator may have extended. */
const LIST_ARGS = new Set(['modprobe.blacklist', 'rd.driver.blacklist', 'module_blacklist']);

/**
 * Adds tokens to GRUB_CMDLINE_LINUX (or a systemd-boot cmdline), replacing any older value of a key.
 * List-valued blacklists keep the operator's other entries; vfio-pci.ids keeps the ids of non-NVIDIA
 * devices (a NIC passed through) while vgpuctl owns the NVIDIA ones; `dropIds` (the ids of cards that
 * serve vGPU) never stay in vfio-pci.ids.
 */
export function withKernelArgs(line: string, args: string[], dropIds: ReadonlySet<string> = new Set()): string {
  const tokens = line.split(/\s+/).filter(Boolean);
  const keyOf = (t: string) => t.split('=')[0]!;
  const valueOf = (t: string) => t.slice(t.indexOf('=') + 1);
  for (const a of args) {
    const key = keyOf(a);
    const i = tokens.findIndex((t) => keyOf(t) === key);
    if (i < 0) {
      tokens.push(a);
      continue;
    }
    const old = valueOf(tokens[i]!).split(',').filter(Boolean);
    const wanted = valueOf(a).split(',').filter(Boolean);
    if (LIST_ARGS.has(key)) tokens[i] = `${key}=${[...old, ...wanted.filter((w) => !old.includes(w))].join(',')}`;
    else if (key === 'vfio-pci.ids') tokens[i] = `${key}=${[...wanted, ...old.filter((o) => !o.toLowerCase().startsWith('10de:') && !wanted.includes(o.toLowerCase()))].join(',')}`;
    else tokens[i] = a;
  }
  if (dropIds.size > 0) {
    const i = tokens.findIndex((t) => keyOf(t) === 'vfio-pci.ids');
    if (i >= 0) {
      const kept = valueOf(tokens[i]!).split(',').filter((id) => id !== '' && !dropIds.has(id.toLowerCase()));
      if (kept.length > 0) tokens[i] = `vfio-pci.ids=${kept.join(',')}`;
      else tokens.splice(i, 1);
    }
  }
  return tokens.join(' ');
}

/**
 * Edits the last `GRUB_CMDLINE_LINUX=` assignment of /etc/default/grub (a shell file: the last one wins),
 * whatever its quoting — double quotes (which may span lines), single quotes or none — and leaves every
 * other byte of the file as it was, a comment after the value included.
 */
export function editGrubDefault(text: string, args: string[], dropIds: ReadonlySet<string> = new Set()): string {
  const starts = [...text.matchAll(/^[ \t]*(?:export[ \t]+)?GRUB_CMDLINE_LINUX=/gm)];
  const last = starts[starts.length - 1];
  if (!last) return `${text}${text.endsWith('\n') || text === '' ? '' : '\n'}GRUB_CMDLINE_LINUX="${withKernelArgs('', args)}"\n`;
  const valueStart = last.index + last[0].length;
  const q = text[valueStart];
  let value: string;
  let end: number;
  if (q === '"' || q === "'") {
    let i = valueStart + 1;
    while (i < text.length && text[i] !== q) i += q === '"' && text[i] === '\\' ? 2 : 1;
    if (i >= text.length) {
      throw new VgpuctlError('refused', `cannot edit GRUB_CMDLINE_LINUX in /etc/default/grub: its ${q === '"' ? 'double' : 'single'} quote is never closed; fix the file first`);
    }
    value = text.slice(valueStart + 1, i);
    end = i + 1;
  } else {
    value = /^[^\s#;]*/.exec(text.slice(valueStart))![0];
    end = valueStart + value.length;
  }
  const quote = q === "'" ? "'" : '"';
  return `${text.slice(0, valueStart)}${quote}${withKernelArgs(value, args, dropIds)}${quote}${text.slice(end)}`;
}

export async function prepareHost(host: HostRoot, opts: PrepareOptions): Promise<PrepareReport> {
  if (opts.mode === 'vgpu' && opts.ids !== 'auto' && opts.ids.length > 0) throw new VgpuctlError('usage', '--ids is for --mode passthrough; vGPU cards stay on the nvidia driver');
  const cpu = await detectCpu(host, opts.cpu);
  const vgpu = await vgpuCardIds(host);
  const ids = opts.mode === 'passthrough' ? await passthroughIds(host, opts, vgpu) : [];
  const kernelArgs = [cpu === 'intel' ? 'intel_iommu=on' : 'amd_iommu=on', 'iommu=pt', 'rd.driver.blacklist=nouveau', 'modprobe.blacklist=nouveau', ...(ids.length > 0 ? [`vfio-pci.ids=${ids.join(',')}`] : [])];
  const read = async (p: string) => fs.readFile(host.path(p), 'utf8').catch(() => null);

  const wanted: Array<{ path: string; content: string }> = [];
  if (opts.bootloader === 'grub') wanted.push({ path: '/etc/default/grub', content: editGrubDefault((await read('/etc/default/grub')) ?? '', kernelArgs, vgpu.ids) });
  else wanted.push({ path: '/etc/kernel/cmdline', content: `${withKernelArgs(((await read('/etc/kernel/cmdline')) ?? '').trim(), kernelArgs, vgpu.ids)}\n` });
  wanted.push({ path: '/etc/modprobe.d/vgpuctl-blacklist-nouveau.conf', content: '# written by vgpuctl prepare: the NVIDIA driver (or vfio-pci) must own the GPUs\nblacklist nouveau\noptions nouveau modeset=0\n' });
  if (opts.mode === 'passthrough') {
    wanted.push({
      path: '/etc/modprobe.d/vgpuctl-vfio.conf',
      content: `# written by vgpuctl prepare: vfio-pci claims these devices before the host drivers\n${ids.length > 0 ? `options vfio-pci ids=${ids.join(',')}\n` : ''}softdep nvidia pre: vfio-pci\nsoftdep nouveau pre: vfio-pci\nsoftdep snd_hda_intel pre: vfio-pci\n`,
    });
    wanted.push({ path: '/etc/modules-load.d/vfio.conf', content: 'vfio\nvfio_iommu_type1\nvfio_pci\n' });
    if (await host.exists(host.path('/etc/initramfs-tools'))) {
      const current = (await read('/etc/initramfs-tools/modules')) ?? '';
      const missing = ['vfio', 'vfio_iommu_type1', 'vfio_pci'].filter((m) => !current.split('\n').some((l) => l.trim() === m));
      wanted.push({ path: '/etc/initramfs-tools/modules', content: missing.length === 0 ? current : `${current}${current === '' || current.endsWith('\n') ? '' : '\n'}${missing.join('\n')}\n` });
    } else {
      wanted.push({ path: '/etc/dracut.conf.d/vgpuctl-vfio.conf', content: 'add_drivers+=" vfio vfio_iommu_type1 vfio_pci "\n' });
    }
    wanted.push({
      path: '/etc/udev/rules.d/90-vgpuctl-nvidia-usb.rules',
      content:
        '# written by vgpuctl prepare: NVIDIA cards with a USB-C port expose USB and UCSI functions that share the\n# GPU\'s IOMMU group; remove them so the whole group can go to a VM.\n' +
        'ACTION=="add", SUBSYSTEM=="pci", ATTR{vendor}=="0x10de", ATTR{class}=="0x0c0330", ATTR{remove}="1"\n' +
        'ACTION=="add", SUBSYSTEM=="pci", ATTR{vendor}=="0x10de", ATTR{class}=="0x0c8000", ATTR{remove}="1"\n',
    });
  }

  const files: PlannedFile[] = [];
  for (const w of wanted) {
    const current = await read(w.path);
    const status = current === null ? 'create' : current === w.content ? 'unchanged' : 'update';
    files.push({ path: w.path, content: w.content, status, backup: status === 'update' ? `${w.path}.vgpuctl-bak` : null });
  }
  if (opts.write) {
    for (const f of files) {
      if (f.status === 'unchanged') continue;
      if (f.backup !== null && !(await host.exists(host.path(f.backup)))) {
        // Keep the operator's original, not an earlier vgpuctl version of it.
        await fs.copyFile(host.path(f.path), host.path(f.backup));
      }
      await fs.mkdir(path.dirname(host.path(f.path)), { recursive: true });
      await writeFileAtomic(host.path(f.path), f.content);
    }
  }
  const initramfs = (await host.exists(host.path('/etc/initramfs-tools'))) ? 'update-initramfs -u -k all' : 'dracut -f --regenerate-all';
  const boot = opts.bootloader === 'grub' ? ((await host.exists(host.path('/etc/redhat-release'))) ? 'grub2-mkconfig -o /boot/grub2/grub.cfg' : 'update-grub') : 'kernel-install add-all (or bootctl update)';
  const changed = files.some((f) => f.status !== 'unchanged');
  return {
    cpu,
    ids,
    kernel_args: kernelArgs,
    files,
    written: opts.write && changed,
    next_steps: changed ? [`${opts.write ? 'run' : 'after --write, run'}: ${boot}`, `then: ${initramfs}`, 'then reboot: the kernel command line and the initramfs take effect at boot'] : ['nothing to change: the host is prepared'],
  };
}
