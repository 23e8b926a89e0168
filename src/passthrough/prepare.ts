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

/** vfio-pci ids: every function of the cards meant for passthrough; never a card that serves vGPU. */
async function passthroughIds(host: HostRoot, opts: PrepareOptions): Promise<string[]> {
  const cards = await discoverCards(host);
  const parents = new Set((await discoverParents(host)).map((p) => p.name));
  const vgpuIds = new Set(
    cards.filter((c) => c.functions.some((f) => parents.has(f.address)) || c.mdevs.length > 0).flatMap((c) => c.functions.map((f) => `${f.vendorId.slice(2)}:${f.deviceId.slice(2)}`)),
  );
  let ids: string[];
  if (opts.ids === 'auto') {
    ids = cards.filter((c) => !c.functions.some((f) => parents.has(f.address)) && c.mdevs.length === 0).flatMap((c) => c.functions.filter((f) => f.role === 'video' || f.role === 'audio').map((f) => `${f.vendorId.slice(2)}:${f.deviceId.slice(2)}`));
  } else {
    ids = opts.ids.map((i) => i.toLowerCase());
  }
  ids = [...new Set(ids)].sort();
  const clash = ids.filter((i) => vgpuIds.has(i));
  if (clash.length > 0) {
    throw new VgpuctlError(
      'refused',
      `vfio-pci.ids=${clash.join(',')} would take ${clash.length === 1 ? 'a card that serves' : 'cards that serve'} vGPU on this host away from the nvidia driver; bind single cards with 'vgpuctl pci detach' instead`,
    );
  }
  return ids;
}

/** Adds tokens to GRUB_CMDLINE_LINUX (or a systemd-boot cmdline), replacing any older value of a key. */
export function withKernelArgs(line: string, args: string[]): string {
  const tokens = line.split(/\s+/).filter(Boolean);
  for (const a of args) {
    const key = a.split('=')[0]!;
    const i = tokens.findIndex((t) => t.split('=')[0] === key);
    if (i >= 0) tokens[i] = a;
    else tokens.push(a);
  }
  return tokens.join(' ');
}

function editGrubDefault(text: string, args: string[]): string {
  const re = /^GRUB_CMDLINE_LINUX=(["']?)(.*)\1[ \t]*$/m;
  const m = re.exec(text);
  if (!m) return `${text}${text.endsWith('\n') || text === '' ? '' : '\n'}GRUB_CMDLINE_LINUX="${withKernelArgs('', args)}"\n`;
  return text.replace(re, `GRUB_CMDLINE_LINUX="${withKernelArgs(m[2]!, args)}"`);
}

export async function prepareHost(host: HostRoot, opts: PrepareOptions): Promise<PrepareReport> {
  if (opts.mode === 'vgpu' && opts.ids !== 'auto' && opts.ids.length > 0) throw new VgpuctlError('usage', '--ids is for --mode passthrough; vGPU cards stay on the nvidia driver');
  const cpu = await detectCpu(host, opts.cpu);
  const ids = opts.mode === 'passthrough' ? await passthroughIds(host, opts) : [];
  const kernelArgs = [cpu === 'intel' ? 'intel_iommu=on' : 'amd_iommu=on', 'iommu=pt', 'rd.driver.blacklist=nouveau', 'modprobe.blacklist=nouveau', ...(ids.length > 0 ? [`vfio-pci.ids=${ids.join(',')}`] : [])];
  const read = async (p: string) => fs.readFile(host.path(p), 'utf8').catch(() => null);

  const wanted: Array<{ path: string; content: string }> = [];
  if (opts.bootloader === 'grub') wanted.push({ path: '/etc/default/grub', content: editGrubDefault((await read('/etc/default/grub')) ?? '', kernelArgs) });
  else wanted.push({ path: '/etc/kernel/cmdline', content: `${withKernelArgs(((await read('/etc/kernel/cmdline')) ?? '').trim(), kernelArgs)}\n` });
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
