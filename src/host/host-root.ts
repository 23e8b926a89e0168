/**
 * Every path vgpuctl touches is built here, under one root directory (`/` on a real host, a temporary
 * tree in tests and in the simulator). Nothing else in the code base joins a sysfs or /etc path by hand.
 */
import { promises as fs, type Dirent, accessSync, closeSync, constants as fsc, openSync, readSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { VgpuctlError, errnoOf } from '../errors/vgpuctl-error.js';
import { armReadDeadline } from './read-watchdog.js';

/** Kernel and system locations, as absolute paths on the host (re-rooted by HostRoot.path). */
export const HOST_PATHS = {
  pciDevices: '/sys/bus/pci/devices',
  pciDrivers: '/sys/bus/pci/drivers',
  mdevBus: '/sys/class/mdev_bus',
  mdevDevices: '/sys/bus/mdev/devices',
  iommuGroups: '/sys/kernel/iommu_groups',
  iommuClass: '/sys/class/iommu',
  mdevctlConfig: '/etc/mdevctl.d',
  libvirtConfig: '/etc/libvirt/qemu',
  libvirtRun: '/run/libvirt/qemu',
  systemdSystem: '/etc/systemd/system',
  procCmdline: '/proc/cmdline',
  procModules: '/proc/modules',
  proc: '/proc',
  run: '/run',
} as const;

const MAX_LINK_HOPS = 40; // the kernel's own limit for path resolution

/*
 * Reads of the host tree are synchronous system calls behind async signatures. A sysfs attribute is one
 * page at most and a 160-parent host has 8,000+ of them: one open/read/close each takes microseconds, where
 * an fs.promises read is four thread-pool round trips and a FileHandle for the collector, 10-20x the cost.
 * Discovery gives the event loop a turn between parents (see mdev.ts), so time limits still fire.
 */
let scratch = Buffer.allocUnsafe(16 * 1024);

/**
 * The whole content of a file, read with plain system calls (sysfs and /proc files report no useful size).
 * `attribute`: a sysfs attribute, which the kernel hands over whole in the first read (one page at most),
 * so a read that does not fill the buffer is the end, without a second read to see it.
 */
export function readFileText(realPath: string, attribute = false): string {
  const fd = openSync(realPath, 'r');
  try {
    let length = 0;
    for (;;) {
      if (length === scratch.length) {
        const bigger = Buffer.allocUnsafe(scratch.length * 2);
        scratch.copy(bigger, 0, 0, length);
        scratch = bigger;
      }
      const n = readSync(fd, scratch, length, scratch.length - length, null);
      if (n === 0) break;
      length += n;
      if (attribute && length < scratch.length) break;
    }
    return scratch.toString('utf8', 0, length);
  } finally {
    closeSync(fd);
  }
}

export class HostRoot {
  readonly root: string;
  /** Whole-host reads shared by the readers of one read-only command; null: every call reads again. */
  private snapshot: Map<string, Promise<unknown>> | null = null;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  /**
   * From now on the whole-host reads (mdev parents, active mdevs, PCI functions, definitions, processes,
   * who uses which device) are made once and shared by every caller, the way one `mdevctl` run reads the
   * host once. For read-only commands, whose parts would each read the host again (`health` ran the
   * parent discovery four times); never for a command that writes or waits for the host to change.
   */
  snapshotReads(): this {
    this.snapshot ??= new Map();
    return this;
  }

  /** `read()`, or what it gave earlier in this command when reads are shared (see snapshotReads). */
  memo<T>(key: string, read: () => Promise<T>): Promise<T> {
    if (this.snapshot === null) return read();
    let p = this.snapshot.get(key) as Promise<T> | undefined;
    if (p === undefined) {
      p = read();
      this.snapshot.set(key, p);
    }
    return p;
  }

  /**
   * Puts the reads of attributes a driver answers (which can hang) under a deadline (read-watchdog.ts);
   * every command that reads such attributes calls it before it reads the host.
   */
  armReadDeadline(env: NodeJS.ProcessEnv = process.env): Promise<void> {
    return armReadDeadline(this.root, env);
  }

  get isSystemRoot(): boolean {
    return this.root === '/';
  }

  /** The real path of an absolute host path (`/sys/...`) under this root. */
  path(hostPath: string): string {
    if (!hostPath.startsWith('/')) throw new Error(`internal: host path must be absolute: ${hostPath}`);
    return this.isSystemRoot ? hostPath : path.join(this.root, hostPath);
  }

  /** The host path (`/sys/...`) of a real path under this root. */
  hostPathOf(realPath: string): string {
    if (this.isSystemRoot) return realPath;
    // Most paths come from realpath or path.join: already normal and below the root (path.relative is
    // slow enough to show up when 10,000 paths go through here).
    if (realPath.startsWith(this.root) && realPath[this.root.length] === '/' && !/\/\.{0,2}(\/|$)/.test(realPath)) {
      return realPath.slice(this.root.length);
    }
    const rel = path.relative(this.root, realPath);
    return rel === '' ? '/' : `/${rel}`;
  }

  /**
   * Resolves symbolic links the way the host kernel would if this root were `/`: an absolute link target
   * is taken from the root, never from the machine running vgpuctl. Returns a real path under the root.
   */
  async realpath(realPath: string): Promise<string> {
    // Fast path: the OS resolves relative links (the kernel's sysfs uses only those); keep its answer
    // when it stays inside the root, otherwise walk the links ourselves.
    try {
      const resolved = realpathSync.native(realPath);
      if (this.isSystemRoot || resolved === this.root || resolved.startsWith(this.root + path.sep)) {
        return resolved;
      }
    } catch (e) {
      if (errnoOf(e) !== 'ENOENT' && errnoOf(e) !== 'ELOOP') throw e;
    }
    return this.walkLinks(realPath);
  }

  private async walkLinks(realPath: string): Promise<string> {
    const pending = this.hostPathOf(realPath).split('/').filter(Boolean);
    const done: string[] = [];
    let hops = 0;
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === '.') continue;
      if (part === '..') {
        done.pop();
        continue;
      }
      const candidate = this.path('/' + [...done, part].join('/'));
      let target: string | undefined;
      try {
        target = readlinkSync(candidate);
      } catch (e) {
        const code = errnoOf(e);
        if (code === 'EINVAL' || code === 'ENOENT') target = undefined;
        else throw e;
      }
      if (target === undefined) {
        done.push(part);
        continue;
      }
      if (++hops > MAX_LINK_HOPS) {
        throw new VgpuctlError('host-read', `too many levels of symbolic links at ${this.hostPathOf(candidate)}`);
      }
      const targetParts = target.split('/').filter(Boolean);
      if (target.startsWith('/')) done.length = 0;
      pending.unshift(...targetParts);
    }
    return this.path('/' + done.join('/'));
  }

  /** Basename of where a link points, or null when the link does not exist. */
  async linkBasename(realPath: string): Promise<string | null> {
    try {
      const target = readlinkSync(realPath);
      return path.posix.basename(target);
    } catch (e) {
      const code = errnoOf(e);
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      if (code === 'EINVAL') throw new VgpuctlError('host-read', `${this.hostPathOf(realPath)} should be a symbolic link but is not`);
      throw hostReadError(this, realPath, e);
    }
  }

  /**
   * True when realPath is a symbolic link with a relative target (what the kernel's sysfs links are), which
   * the OS then resolves inside this root; false for an absolute link (resolve it with realpath) or no link.
   */
  async linkIsRelative(realPath: string): Promise<boolean> {
    try {
      return !readlinkSync(realPath).startsWith('/');
    } catch {
      return false;
    }
  }

  async exists(realPath: string): Promise<boolean> {
    try {
      accessSync(realPath, fsc.F_OK);
      return true;
    } catch {
      return false;
    }
  }

  /** Directory entries, or [] when the directory does not exist. */
  async list(realPath: string): Promise<string[]> {
    try {
      return readdirSync(realPath).sort();
    } catch (e) {
      const code = errnoOf(e);
      if (code === 'ENOENT' || code === 'ENOTDIR') return [];
      throw hostReadError(this, realPath, e);
    }
  }

  /**
   * `list` with each entry's type as the directory itself tells it (d_type; node asks lstat only where a
   * file system leaves it unknown): no lstat per entry, a system call each on /etc/mdevctl.d's hundreds.
   */
  listEntries(realPath: string): Dirent[] {
    try {
      return readdirSync(realPath, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } catch (e) {
      const code = errnoOf(e);
      if (code === 'ENOENT' || code === 'ENOTDIR') return [];
      throw hostReadError(this, realPath, e);
    }
  }

  /** A sysfs attribute without its trailing newline; null when absent. */
  async readAttr(realPath: string): Promise<string | null> {
    return this.readAttrSync(realPath);
  }

  /** readAttr without a promise, for loops over thousands of attributes (mdev types). */
  readAttrSync(realPath: string): string | null {
    const sys = this.isSystemRoot ? '/sys/' : `${this.root}/sys/`;
    const attribute = realPath.startsWith(sys);
    try {
      const text = readFileText(realPath, attribute);
      return text.replace(/\n+$/, '');
    } catch (e) {
      const code = errnoOf(e);
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      throw hostReadError(this, realPath, e);
    }
  }

  async readRequiredAttr(realPath: string): Promise<string> {
    const value = await this.readAttr(realPath);
    if (value === null) {
      throw new VgpuctlError('host-read', `${this.hostPathOf(realPath)} is missing; the sysfs tree is incomplete`);
    }
    return value;
  }

  /** A decimal integer attribute (available_instances, sriov_numvfs, numa_node). */
  async readIntAttr(realPath: string): Promise<number | null> {
    return this.readIntAttrSync(realPath);
  }

  readIntAttrSync(realPath: string): number | null {
    const text = this.readAttrSync(realPath);
    if (text === null) return null;
    const trimmed = text.trim();
    if (!/^-?\d+$/.test(trimmed)) {
      throw new VgpuctlError(
        'host-read',
        `cannot read ${this.hostPathOf(realPath)}: expected a whole number, found ${JSON.stringify(trimmed.slice(0, 40))}; ` +
          'the file is garbled (check the driver, or the tree given with --root)',
      );
    }
    return Number.parseInt(trimmed, 10);
  }
}

export function hostReadError(host: HostRoot, realPath: string, cause: unknown): VgpuctlError {
  const code = errnoOf(cause) ?? 'error';
  const what =
    code === 'EACCES' || code === 'EPERM'
      ? 'permission denied (run as root)'
      : code === 'EISDIR'
        ? 'it is a directory, not a file'
        : `${code}`;
  return new VgpuctlError('host-read', `cannot read ${host.hostPathOf(realPath)}: ${what}`, { cause });
}

/** Checks that a --root directory looks like a host before anything reads it. */
export async function openHostRoot(root: string): Promise<HostRoot> {
  const host = new HostRoot(root);
  let stat;
  try {
    stat = await fs.stat(host.root);
  } catch {
    throw new VgpuctlError('not-a-host-tree', `--root ${root} does not exist; give the directory that holds the host's sys/ and etc/`);
  }
  if (!stat.isDirectory()) {
    throw new VgpuctlError('not-a-host-tree', `--root ${root} is not a directory`);
  }
  if (!host.isSystemRoot && !(await host.exists(host.path('/sys')))) {
    throw new VgpuctlError(
      'not-a-host-tree',
      `--root ${root} is not a host tree: it has no sys/ directory (lay one out with 'vgpuctl sim init <fixture> ${root}')`,
    );
  }
  return host;
}
