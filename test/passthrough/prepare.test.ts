/**
 * `vgpuctl prepare` on copies of real-looking Debian and RHEL /etc trees: the files it writes are parsed
 * back (the grub defaults by bash itself, as grub-mkconfig reads them), every line it does not own stays
 * byte for byte, backups hold the originals, and a second run changes nothing.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { HostRoot } from '../../src/host/host-root.js';
import { hostFrom, snapshotTree } from '../helpers/hosts.js';
import { read, TURING_USB_C } from './pci-helpers.js';

// Debian 12's /etc/default/grub as installed, with the operator's "quiet" default.
const DEBIAN_GRUB = `# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.
# For full documentation of the options in this file, see:
#   info -f grub -n 'Simple configuration'

GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=\`lsb_release -i -s 2> /dev/null || echo Debian\`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX=""

# If your computer has multiple operating systems installed, then you
# probably want to run os-prober. However, if you don't, then you can
# disable it by setting GRUB_DISABLE_OS_PROBER to true.
#GRUB_DISABLE_OS_PROBER=false

# Uncomment to enable BadRAM filtering, modify to suit your needs
# This works with Linux (no patch required) and with any kernel that obtains
# the memory map information from GRUB (GNU Mach, kernel of FreeBSD ...)
#GRUB_BADRAM="0x01234567,0xfefefefe,0x89abcdef,0xefefefef"

# Uncomment to disable graphical terminal
#GRUB_TERMINAL=console

# The resolution used on graphical terminal
# note that you can use only modes which your graphic card supports via VBE
# you can see them in real GRUB with the command \`vbeinfo'
#GRUB_GFXMODE=640x480

# Uncomment if you don't want GRUB to pass "root=UUID=xxx" parameter to Linux
#GRUB_DISABLE_LINUX_UUID=true

# Uncomment to disable generation of recovery mode menu entries
#GRUB_DISABLE_RECOVERY="true"

# Uncomment to get a beep at grub start
#GRUB_INIT_TUNE="480 440 1"
`;

const DEBIAN_INITRAMFS_MODULES = `# List of modules that you want to include in your initramfs.
# They will be loaded at boot time in the order below.
#
# Syntax:  module_name [args ...]
#
# You must run update-initramfs(8) to effect this change.
#
# Examples:
#
# raid1
# sd_mod
`;

// Seed 001's CentOS Stream 8 compute node (cld-dfa-gpu-02).
const RHEL_GRUB = `GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR="$(sed 's, release .*$,,g' /etc/system-release)"
GRUB_DEFAULT=saved
GRUB_DISABLE_SUBMENU=true
GRUB_TERMINAL_OUTPUT="console"
GRUB_CMDLINE_LINUX="crashkernel=auto resume=UUID=76f04de3-171b-4122-b9d4-249925a665a1 rhgb quiet intel_iommu=on modprobe.blacklist=nouveau"
GRUB_DISABLE_RECOVERY="true"
GRUB_ENABLE_BLSCFG=true
`;
const SEED001_GPU_BLACKLIST = 'blacklist snd_hda_intel\nblacklist amd76x_edac\nblacklist vga16fb\nblacklist nouveau\nblacklist rivafb\nblacklist nvidiafb\nblacklist rivatv\n';
const MICROCODE_BLACKLIST = '# The microcode module attempts to apply a microcode update when\n# it autoloads.  This is not always safe, so we block it by default.\nblacklist microcode\n';

const cpuinfo = (vendor: 'GenuineIntel' | 'AuthenticAMD') =>
  [0, 1]
    .map((n) =>
      vendor === 'GenuineIntel'
        ? `processor\t: ${n}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R) Gold 6140 CPU @ 2.30GHz\nflags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr vmx\n`
        : `processor\t: ${n}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC 7313 16-Core Processor\nflags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr svm\n`,
    )
    .join('\n');

async function put(host: HostRoot, rel: string, content: string): Promise<void> {
  await fs.mkdir(path.dirname(path.join(host.root, rel)), { recursive: true });
  await fs.writeFile(path.join(host.root, rel), content);
}
const get = (host: HostRoot, rel: string) => readFileSync(path.join(host.root, rel), 'utf8');
const has = (host: HostRoot, rel: string) => existsSync(path.join(host.root, rel));

async function debianHost(fixture = 'titanxp-seed001', vendor: 'GenuineIntel' | 'AuthenticAMD' = 'GenuineIntel'): Promise<HostRoot> {
  const host = await hostFrom(fixture);
  await put(host, 'etc/default/grub', DEBIAN_GRUB);
  await put(host, 'etc/initramfs-tools/modules', DEBIAN_INITRAMFS_MODULES);
  await put(host, 'etc/modprobe.d/intel-microcode-blacklist.conf', MICROCODE_BLACKLIST);
  await put(host, 'etc/debian_version', '12.5\n');
  await put(host, 'proc/cpuinfo', cpuinfo(vendor));
  return host;
}

async function rhelHost(fixture = 'titanxp-seed001'): Promise<HostRoot> {
  const host = await hostFrom(fixture);
  await put(host, 'etc/default/grub', RHEL_GRUB);
  await put(host, 'etc/redhat-release', 'CentOS Stream release 8\n');
  await put(host, 'etc/dracut.conf.d/01-dist.conf', '# dracut config file customized for RedHat/Fedora.\ni18n_vars="/etc/sysconfig/keyboard:KEYTABLE-KEYMAP"\n');
  await put(host, 'etc/modprobe.d/gpu-blacklist.conf', SEED001_GPU_BLACKLIST);
  await put(host, 'proc/cpuinfo', cpuinfo('GenuineIntel'));
  return host;
}

/** What grub-mkconfig gets: the file sourced by a shell. */
function grubCmdline(host: HostRoot, rel = 'etc/default/grub'): string[] {
  const out = execFileSync('bash', ['--norc', '--noprofile', '-c', '. "$1" 2>/dev/null; printf %s "$GRUB_CMDLINE_LINUX"', 'bash', path.join(host.root, rel)], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' }, stdio: ['ignore', 'pipe', 'ignore'] });
  return out.split(/\s+/).filter(Boolean);
}

/** modprobe.d: `options MODULE k=v ...` → {k: v}. */
function modprobeOptions(text: string, module: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const t = line.trim().split(/\s+/);
    if (t[0] === 'options' && t[1] === module) for (const kv of t.slice(2)) out[kv.split('=')[0]!] = kv.slice(kv.indexOf('=') + 1);
  }
  return out;
}
const directives = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));

/** udev rules: each line as [key, op, value] triples. */
function udevRules(text: string): Array<Array<[string, string, string]>> {
  return directives(text).map((line) => [...line.matchAll(/([A-Z]+(?:\{[^}]+\})?)(==|!=|\+=|:=|=)"([^"]*)"/g)].map((m) => [m[1]!, m[2]!, m[3]!] as [string, string, string]));
}

/** The lines of `after` equal those of `before` except the one index given. */
function otherLinesIdentical(before: string, after: string, key = /^GRUB_CMDLINE_LINUX=/): void {
  const b = before.split('\n');
  const a = after.split('\n');
  expect(a).toHaveLength(b.length);
  const changed = a.map((l, i) => (l === b[i] ? null : i)).filter((i): i is number => i !== null);
  expect(changed.length).toBeLessThanOrEqual(1);
  for (const i of changed) expect(b[i]).toMatch(key);
}

const prepare = (host: HostRoot, ...args: string[]) => read(host, ['prepare', ...args]);

describe('prepare --write on a Debian host (initramfs-tools, Intel)', () => {
  it('writes kernel arguments, modprobe, modules-load, initramfs and udev files that parse back', async () => {
    const host = await debianHost();
    const r = await prepare(host, '--write');
    expect(r.code, r.stderr).toBe(0);

    const args = grubCmdline(host);
    expect(args).toEqual(expect.arrayContaining(['intel_iommu=on', 'iommu=pt', 'vfio-pci.ids=10de:10ef,10de:1b02']));
    expect(args.filter((a) => a.startsWith('modprobe.blacklist='))).toEqual(['modprobe.blacklist=nouveau']);
    expect(args.some((a) => a.startsWith('amd_iommu'))).toBe(false);
    // Each key once.
    expect(new Set(args.map((a) => a.split('=')[0])).size).toBe(args.length);
    // GRUB_CMDLINE_LINUX_DEFAULT and every comment are as they were.
    const grub = get(host, 'etc/default/grub');
    otherLinesIdentical(DEBIAN_GRUB, grub);
    expect(get(host, 'etc/default/grub.vgpuctl-bak')).toBe(DEBIAN_GRUB);

    const vfio = get(host, 'etc/modprobe.d/vgpuctl-vfio.conf');
    expect(modprobeOptions(vfio, 'vfio-pci')).toEqual({ ids: '10de:10ef,10de:1b02' });
    expect(directives(vfio)).toContain('softdep nvidia pre: vfio-pci');
    expect(directives(vfio)).toContain('softdep snd_hda_intel pre: vfio-pci');
    const nouveau = get(host, 'etc/modprobe.d/vgpuctl-blacklist-nouveau.conf');
    expect(directives(nouveau)).toEqual(['blacklist nouveau', 'options nouveau modeset=0']);
    expect(get(host, 'etc/modprobe.d/intel-microcode-blacklist.conf')).toBe(MICROCODE_BLACKLIST);

    expect(directives(get(host, 'etc/modules-load.d/vfio.conf'))).toEqual(['vfio', 'vfio_iommu_type1', 'vfio_pci']);
    const modules = get(host, 'etc/initramfs-tools/modules');
    expect(modules.startsWith(DEBIAN_INITRAMFS_MODULES)).toBe(true);
    expect(directives(modules)).toEqual(['vfio', 'vfio_iommu_type1', 'vfio_pci']);
    expect(get(host, 'etc/initramfs-tools/modules.vgpuctl-bak')).toBe(DEBIAN_INITRAMFS_MODULES);
    expect(has(host, 'etc/dracut.conf.d')).toBe(false);

    const rules = udevRules(get(host, 'etc/udev/rules.d/90-vgpuctl-nvidia-usb.rules'));
    expect(rules).toHaveLength(2);
    for (const [rule, cls] of [
      [rules[0]!, '0x0c0330'],
      [rules[1]!, '0x0c8000'],
    ] as const) {
      expect(rule).toEqual([
        ['ACTION', '==', 'add'],
        ['SUBSYSTEM', '==', 'pci'],
        ['ATTR{vendor}', '==', '0x10de'],
        ['ATTR{class}', '==', cls],
        ['ATTR{remove}', '=', '1'],
      ]);
    }

    expect(r.stdout).toMatch(/^CPU intel; kernel arguments: intel_iommu=on iommu=pt .*vfio-pci\.ids=10de:10ef,10de:1b02$/m);
    expect(r.stdout).toContain('# /etc/default/grub (updated, backup /etc/default/grub.vgpuctl-bak)');
    expect(r.stdout).toContain('# /etc/modprobe.d/vgpuctl-vfio.conf (created)');
    expect(r.stdout).toMatch(/^run: update-grub$/m);
    expect(r.stdout).toMatch(/^then: update-initramfs -u -k all$/m);
    expect(r.stdout).toMatch(/reboot/);
  });

  it('a second run changes nothing: every file unchanged, the tree identical, no new backups', async () => {
    const host = await debianHost();
    const first = await prepare(host, '--write', '-o', 'json');
    expect(first.code).toBe(0);
    expect(first.json().written).toBe(true);
    expect(first.json().files.map((f: any) => [f.path, f.status])).toEqual([
      ['/etc/default/grub', 'update'],
      ['/etc/modprobe.d/vgpuctl-blacklist-nouveau.conf', 'create'],
      ['/etc/modprobe.d/vgpuctl-vfio.conf', 'create'],
      ['/etc/modules-load.d/vfio.conf', 'create'],
      ['/etc/initramfs-tools/modules', 'update'],
      ['/etc/udev/rules.d/90-vgpuctl-nvidia-usb.rules', 'create'],
    ]);
    const after1 = await snapshotTree(host.root);
    const second = await prepare(host, '--write', '-o', 'json');
    expect(second.code).toBe(0);
    const j = second.json();
    expect(j.written).toBe(false);
    expect(j.files.map((f: any) => f.status)).toEqual(Array(6).fill('unchanged'));
    expect(j.next_steps).toEqual(['nothing to change: the host is prepared']);
    expect(await snapshotTree(host.root)).toEqual(after1);
    // And the text form says so per file.
    const text = await prepare(host, '--write');
    expect(text.stdout.match(/\(unchanged\)/g)).toHaveLength(6);
    expect(await snapshotTree(host.root)).toEqual(after1);
  });

  it('without --write it prints the same plan and writes nothing', async () => {
    const host = await debianHost();
    const before = await snapshotTree(host.root);
    const r = await prepare(host);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('# /etc/default/grub (would update)');
    expect(r.stdout).toMatch(/^GRUB_CMDLINE_LINUX="intel_iommu=on iommu=pt .*vfio-pci\.ids=10de:10ef,10de:1b02"$/m);
    expect(r.stdout).toMatch(/^after --write, run: update-grub$/m);
    expect(await snapshotTree(host.root)).toEqual(before);
  });

  it('an AMD CPU gets amd_iommu=on', async () => {
    const host = await debianHost('titanxp-seed001', 'AuthenticAMD');
    const r = await prepare(host, '--write', '-o', 'json');
    expect(r.code).toBe(0);
    expect(r.json().cpu).toBe('amd');
    const args = grubCmdline(host);
    expect(args).toEqual(expect.arrayContaining(['amd_iommu=on', 'iommu=pt']));
    expect(args.some((a) => a.startsWith('intel_iommu'))).toBe(false);
  });
});

describe('prepare --write on a RHEL host (seed 001: dracut, grub2)', () => {
  it('adds to the existing command line without repeating what is there, writes the dracut snippet', async () => {
    const host = await rhelHost();
    const r = await prepare(host, '--write');
    expect(r.code, r.stderr).toBe(0);
    const args = grubCmdline(host);
    expect(args.slice(0, 7)).toEqual(['crashkernel=auto', 'resume=UUID=76f04de3-171b-4122-b9d4-249925a665a1', 'rhgb', 'quiet', 'intel_iommu=on', 'modprobe.blacklist=nouveau', 'iommu=pt']);
    expect(args).toContain('vfio-pci.ids=10de:10ef,10de:1b02');
    expect(args.filter((a) => a.startsWith('intel_iommu'))).toHaveLength(1);
    otherLinesIdentical(RHEL_GRUB, get(host, 'etc/default/grub'));
    expect(get(host, 'etc/default/grub.vgpuctl-bak')).toBe(RHEL_GRUB);

    const dracut = get(host, 'etc/dracut.conf.d/vgpuctl-vfio.conf');
    const m = /^add_drivers\+="([^"]*)"$/m.exec(dracut);
    expect(m![1]!.trim().split(/\s+/)).toEqual(['vfio', 'vfio_iommu_type1', 'vfio_pci']);
    // dracut appends add_drivers from several files: the value must start and end with a space.
    expect(m![1]!.startsWith(' ') && m![1]!.endsWith(' ')).toBe(true);
    expect(has(host, 'etc/initramfs-tools')).toBe(false);
    expect(get(host, 'etc/dracut.conf.d/01-dist.conf')).toMatch(/^# dracut config file/);
    expect(get(host, 'etc/modprobe.d/gpu-blacklist.conf')).toBe(SEED001_GPU_BLACKLIST);
    expect(r.stdout).toMatch(/^run: grub2-mkconfig -o \/boot\/grub2\/grub\.cfg$/m);
    expect(r.stdout).toMatch(/^then: dracut -f --regenerate-all$/m);

    const once = await snapshotTree(host.root);
    const again = await prepare(host, '--write', '-o', 'json');
    expect(again.json().files.every((f: any) => f.status === 'unchanged')).toBe(true);
    expect(await snapshotTree(host.root)).toEqual(once);
  });
});

describe('GRUB_CMDLINE_LINUX as operators write it', () => {
  const cases: Array<[string, string, string[]]> = [
    // seed 001's slide shows the value wrapped over two lines: legal inside double quotes.
    ['a double-quoted value over two lines', 'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX="crashkernel=auto rhgb quiet\nintel_iommu=on modprobe.blacklist=nouveau"\nGRUB_DISABLE_RECOVERY="true"\n', ['crashkernel=auto', 'rhgb', 'quiet', 'intel_iommu=on', 'modprobe.blacklist=nouveau']],
    ['a comment after the value', 'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX="quiet splash" # set by kickstart\nGRUB_DISABLE_RECOVERY="true"\n', ['quiet', 'splash']],
    ['single quotes', "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX='console=ttyS0,115200n8 quiet'\n", ['console=ttyS0,115200n8', 'quiet']],
    ['no quotes', 'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=quiet\n', ['quiet']],
    ['a later assignment that extends the first', 'GRUB_CMDLINE_LINUX="quiet"\n# site policy\nGRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX audit=1"\n', ['quiet', 'audit=1']],
    ['a second assignment that replaces the first', 'GRUB_CMDLINE_LINUX="rhgb"\nGRUB_CMDLINE_LINUX="quiet"\n', ['quiet']],
    ['blacklists and vfio ids of other devices', 'GRUB_CMDLINE_LINUX="quiet modprobe.blacklist=radeon,nouveau vfio-pci.ids=8086:1521"\n', ['quiet', 'modprobe.blacklist=radeon,nouveau']],
  ];

  it.each(cases)('%s: the shell still reads it, with the old arguments first and ours after', async (_what, grub, kept) => {
    const host = await debianHost();
    await put(host, 'etc/default/grub', grub);
    const r = await prepare(host, '--write');
    expect(r.code, r.stderr).toBe(0);
    const args = grubCmdline(host);
    expect(args.slice(0, kept.length)).toEqual(kept);
    expect(args).toEqual(expect.arrayContaining(['intel_iommu=on', 'iommu=pt']));
    const ids = args.find((a) => a.startsWith('vfio-pci.ids='))!.slice('vfio-pci.ids='.length).split(',');
    expect(ids).toEqual(expect.arrayContaining(['10de:10ef', '10de:1b02']));
    if (grub.includes('8086:1521')) expect(ids).toContain('8086:1521');
    expect(args.find((a) => a.startsWith('modprobe.blacklist='))!.split('=')[1]!.split(',')).toContain('nouveau');
    expect(get(host, 'etc/default/grub.vgpuctl-bak')).toBe(grub);
    // Lines before and after the assignment are untouched.
    const after = get(host, 'etc/default/grub');
    const firstLine = grub.split('\n')[0]!;
    if (!firstLine.startsWith('GRUB_CMDLINE_LINUX=')) expect(after.split('\n')[0]).toBe(firstLine);
    for (const tail of ['GRUB_DISABLE_RECOVERY="true"\n', '# set by kickstart\n']) if (grub.endsWith(tail)) expect(after.endsWith(tail)).toBe(true);
    // A second run is a no-op.
    const once = await snapshotTree(host.root);
    const again = await prepare(host, '--write', '-o', 'json');
    expect(again.json().files.every((f: any) => f.status === 'unchanged')).toBe(true);
    expect(await snapshotTree(host.root)).toEqual(once);
  });

  it('an unterminated quote is refused, nothing written', async () => {
    const host = await debianHost();
    await put(host, 'etc/default/grub', 'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX="quiet\n');
    const before = await snapshotTree(host.root);
    const r = await prepare(host, '--write');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/GRUB_CMDLINE_LINUX.*never closed/);
    expect(await snapshotTree(host.root)).toEqual(before);
  });
});

describe('prepare on a card with USB-C functions', () => {
  it('vfio-pci ids are the video and audio functions; the udev rule is what removes USB and UCSI', async () => {
    const host = await hostFrom(TURING_USB_C);
    await put(host, 'etc/default/grub', DEBIAN_GRUB);
    await put(host, 'proc/cpuinfo', cpuinfo('GenuineIntel'));
    const r = await prepare(host, '--write', '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.json().ids).toEqual(['10de:10f7', '10de:1e07']);
    expect(grubCmdline(host)).toContain('vfio-pci.ids=10de:10f7,10de:1e07');
    expect(modprobeOptions(get(host, 'etc/modprobe.d/vgpuctl-vfio.conf'), 'vfio-pci')).toEqual({ ids: '10de:10f7,10de:1e07' });
    expect(udevRules(get(host, 'etc/udev/rules.d/90-vgpuctl-nvidia-usb.rules')).map((rule) => rule.find(([k]) => k === 'ATTR{class}')![2])).toEqual(['0x0c0330', '0x0c8000']);
  });
});

describe('prepare on the mixed T4 host (three T4s serve vGPU)', () => {
  it('refuses --ids 10de:1eb8 (and the automatic ids, which are the same), writing nothing', async () => {
    const host = await rhelHost('t4x4-seed001');
    const before = await snapshotTree(host.root);
    for (const args of [['--ids', '10de:1eb8', '--write'], ['--ids', '10DE:1EB8'], ['--write']]) {
      const r = await prepare(host, ...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/vfio-pci\.ids=10de:1eb8 would take a card that serves vGPU on this host away from the nvidia driver/);
      expect(r.stderr).toMatch(/vgpuctl pci detach/);
    }
    expect(await snapshotTree(host.root)).toEqual(before);
  });

  it('--mode vgpu writes IOMMU flags and the nouveau blacklist but no vfio-pci ids', async () => {
    const host = await rhelHost('t4x4-seed001');
    const r = await prepare(host, '--mode', 'vgpu', '--write', '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    const j = r.json();
    expect(j.ids).toEqual([]);
    expect(j.kernel_args.some((a: string) => a.startsWith('vfio-pci'))).toBe(false);
    expect(j.files.map((f: any) => f.path)).toEqual(['/etc/default/grub', '/etc/modprobe.d/vgpuctl-blacklist-nouveau.conf']);
    const args = grubCmdline(host);
    expect(args).toEqual(expect.arrayContaining(['intel_iommu=on', 'iommu=pt']));
    expect(args.some((a) => a.startsWith('vfio-pci'))).toBe(false);
    expect(has(host, 'etc/modprobe.d/vgpuctl-vfio.conf')).toBe(false);
    expect(has(host, 'etc/modules-load.d/vfio.conf')).toBe(false);
    expect(has(host, 'etc/udev/rules.d/90-vgpuctl-nvidia-usb.rules')).toBe(false);
    expect(directives(get(host, 'etc/modprobe.d/vgpuctl-blacklist-nouveau.conf'))).toContain('blacklist nouveau');
  });

  it('--mode vgpu takes the vGPU cards out of an existing vfio-pci.ids and keeps other devices', async () => {
    const host = await rhelHost('t4x4-seed001');
    await put(host, 'etc/default/grub', RHEL_GRUB.replace('modprobe.blacklist=nouveau"', 'modprobe.blacklist=nouveau vfio-pci.ids=10de:1eb8,8086:1521"'));
    const r = await prepare(host, '--mode', 'vgpu', '--write');
    expect(r.code, r.stderr).toBe(0);
    const args = grubCmdline(host);
    expect(args).toContain('vfio-pci.ids=8086:1521');
    expect(args.join(' ')).not.toMatch(/1eb8/);

    await put(host, 'etc/default/grub', RHEL_GRUB.replace('modprobe.blacklist=nouveau"', 'modprobe.blacklist=nouveau vfio-pci.ids=10de:1eb8"'));
    expect((await prepare(host, '--mode', 'vgpu', '--write')).code).toBe(0);
    expect(grubCmdline(host).some((a) => a.startsWith('vfio-pci'))).toBe(false);
  });
});

describe('prepare --bootloader systemd-boot', () => {
  it('edits /etc/kernel/cmdline and leaves the grub defaults alone', async () => {
    const host = await debianHost();
    await put(host, 'etc/kernel/cmdline', 'root=UUID=2f0d1a3c-7b7e-4c55-9a55-3a4f6c0e2b11 ro quiet splash\n');
    const r = await prepare(host, '--bootloader', 'systemd-boot', '--write');
    expect(r.code, r.stderr).toBe(0);
    const cmdline = get(host, 'etc/kernel/cmdline');
    expect(cmdline.endsWith('\n')).toBe(true);
    expect(cmdline.split('\n').filter(Boolean)).toHaveLength(1);
    const args = cmdline.trim().split(/\s+/);
    expect(args.slice(0, 4)).toEqual(['root=UUID=2f0d1a3c-7b7e-4c55-9a55-3a4f6c0e2b11', 'ro', 'quiet', 'splash']);
    expect(args).toEqual(expect.arrayContaining(['intel_iommu=on', 'iommu=pt', 'vfio-pci.ids=10de:10ef,10de:1b02']));
    expect(get(host, 'etc/kernel/cmdline.vgpuctl-bak')).toBe('root=UUID=2f0d1a3c-7b7e-4c55-9a55-3a4f6c0e2b11 ro quiet splash\n');
    expect(get(host, 'etc/default/grub')).toBe(DEBIAN_GRUB);
    expect(has(host, 'etc/default/grub.vgpuctl-bak')).toBe(false);
    expect(r.stdout).toMatch(/kernel-install add-all/);
    const once = await snapshotTree(host.root);
    expect((await prepare(host, '--bootloader', 'systemd-boot', '--write', '-o', 'json')).json().files.every((f: any) => f.status === 'unchanged')).toBe(true);
    expect(await snapshotTree(host.root)).toEqual(once);
  });
});

describe('prepare: bad options', () => {
  it.each([
    [['--ids', 'foo']],
    [['--ids', '10de:1b02,']],
    [['--ids', '10de:1b0']],
    [['--ids', '10de-1b02']],
    [['--mode', 'bogus']],
    [['--bootloader', 'lilo']],
    [['--cpu', 'arm']],
    [['--mode', 'vgpu', '--ids', '10de:1b02']],
  ])('%j exits 2 and writes nothing', async (args) => {
    const host = await debianHost();
    const before = await snapshotTree(host.root);
    const r = await prepare(host, ...args, '--write');
    expect(r.code, r.stderr).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^vgpuctl: error: /);
    expect(await snapshotTree(host.root)).toEqual(before);
  });

  it('with no /proc/cpuinfo and nothing on the command line, asks for --cpu', async () => {
    const host = await hostFrom({ ...JSON.parse(readFileSync(new URL('../../fixtures/titanxp-seed001.json', import.meta.url), 'utf8')), cmdline: 'BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro' });
    const r = await prepare(host);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--cpu intel or --cpu amd/);
    const ok = await prepare(host, '--cpu', 'amd', '-o', 'json');
    expect(ok.code).toBe(0);
    expect(ok.json().kernel_args[0]).toBe('amd_iommu=on');
  });
});
