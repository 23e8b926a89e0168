/**
 * The one helper for the tests that judge vgpuctl from outside (test/hardening, the plan crash tests,
 * cleanup's fake tools): fresh host trees, the host state the invariants are about (active
 * mdevs, definition files, boot units, lock, journal), a consistency check that returns its findings
 * instead of failing at the first one (so each test can print how many runs were inconsistent), file
 * write faults injected at the fs call (the simulator's VGPUCTL_SIM_FAULTS covers sysfs writes only), and
 * the real CLI bundled from src/ for the tests that must run it in a child process (and kill it: at a
 * simulator kill point, or a delay after its spawn, its lock or its journal), the simulated kernel put
 * back in a state a real one could be in after a random kill, temporary-file litter, and fake external
 * tools (small shell scripts) for PATH or --nvidia-smi.
 */
import { spawn } from 'node:child_process';
import { chmodSync, promises as fs, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HostRoot } from '../../src/host/host-root.js';
import { isUuid } from '../../src/host/identifiers.js';
import { parseDefinition } from '../../src/host/definitions.js';
import { recomputeAllCapacity } from '../../src/simulator/kernel.js';
import { recomputeAllVendor } from '../../src/simulator/vendor-vfio.js';
import { vfHandle } from '../../src/vendor-vfio/discovery.js';
import { VENDOR_STATE_PATH } from '../../src/vendor-vfio/state.js';
import type { CliResult } from './cli.js';
import { tempDir } from './hosts.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const LOCK = '/run/vgpuctl/lock';
export const JOURNAL = '/var/lib/vgpuctl/apply-journal.json';
export const INTENT = '/var/lib/vgpuctl/intent.json';
export const P40 = '0000:82:00.0';

// Fresh random v4 UUIDs (as uuidgen makes them) for the devices the tests ask for.
/** The plan the fault and crash tests apply to p40-seed004: two P40-12C on its GPU. */
export const P40_12C_PLAN_TEXT = `version: 1
gpus:
  - select: { address: "${P40}" }
    profile: P40-12C
    count: 2
`;
export const U = [
  '0b6f3c1e-5a2d-4e8f-9c71-3d5e7a9b1c20',
  '1c7a4d2f-6b3e-4f90-8d82-4e6f8b0c2d31',
  '2d8b5e30-7c4f-4a01-9e93-5f709c1d3e42',
  '3e9c6f41-8d50-4b12-af04-60819d2e4f53',
  '4fad7052-9e61-4c23-b015-7192ae3f5064',
] as const;

export { copyHost, fixtureCopy as fixtureHost } from './hosts.js';
export { sim } from './cli.js';

export const lexists = (p: string): Promise<boolean> =>
  fs.lstat(p).then(
    () => true,
    () => false,
  );

/** What the invariants are about, read straight from the tree (not through vgpuctl). */
export interface TreeState {
  /** "uuid parent type" of every active mdev and vendor-VFIO vGPU ("handle VF nvidia-ID"), sorted. */
  active: string[];
  /** /etc/vgpuctl/vendor-vgpus.json as it is (null: absent). */
  vendorDefs: string | null;
  /** Every file under etc/mdevctl.d except scripts.d, relative to the root, with its content ("-> target" for a link). */
  defs: Record<string, string>;
  /** Per-device boot units and their links under etc/systemd/system. */
  units: Record<string, string>;
  lock: boolean;
  journal: boolean;
  /** The intent record of an interrupted lifecycle command (src/lifecycle/intent.ts). */
  intent: boolean;
}

async function walkFiles(base: string, root: string, skip: (rel: string) => boolean = () => false): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string): Promise<void> => {
    for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(dir, e.name);
      const rel = path.relative(root, p);
      if (skip(rel)) continue;
      if (e.isSymbolicLink()) out[rel] = `-> ${await fs.readlink(p)}`;
      else if (e.isDirectory()) await walk(p);
      else out[rel] = await fs.readFile(p, 'utf8');
    }
  };
  await walk(base);
  return out;
}

export async function activeDevices(host: HostRoot): Promise<string[]> {
  const dir = host.path('/sys/bus/mdev/devices');
  const out: string[] = [];
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    const real = await fs.realpath(path.join(dir, name)).catch(() => null);
    if (real === null) continue;
    const type = await fs.realpath(path.join(real, 'mdev_type')).catch(() => null);
    out.push(`${name} ${path.basename(path.dirname(real))} ${type === null ? '?' : path.basename(type)}`);
  }
  return out.sort();
}

/** "handle VF nvidia-ID" of every VF whose nvidia/current_vgpu_type is not 0. */
export async function activeVendorVgpus(host: HostRoot): Promise<string[]> {
  const dir = host.path('/sys/bus/pci/devices');
  const out: string[] = [];
  for (const vf of await fs.readdir(dir).catch(() => [] as string[])) {
    const cur = await fs.readFile(path.join(dir, vf, 'nvidia/current_vgpu_type'), 'utf8').catch(() => null);
    if (cur !== null && cur.trim() !== '0') out.push(`${vfHandle(vf)} ${vf} nvidia-${cur.trim()}`);
  }
  return out.sort();
}

export async function readState(host: HostRoot): Promise<TreeState> {
  const [mdevs, vendor, vendorDefs, defs, units, lock, journal, intent] = await Promise.all([
    activeDevices(host),
    activeVendorVgpus(host),
    fs.readFile(host.path(VENDOR_STATE_PATH), 'utf8').catch(() => null),
    walkFiles(host.path('/etc/mdevctl.d'), host.root, (rel) => rel === 'etc/mdevctl.d/scripts.d'),
    walkFiles(host.path('/etc/systemd/system'), host.root, (rel) => !/@[0-9a-f-]{36}\.service$|\.wants$|system$/.test(rel)),
    lexists(host.path(LOCK)),
    lexists(host.path(JOURNAL)),
    lexists(host.path(INTENT)),
  ]);
  return { active: [...mdevs, ...vendor].sort(), vendorDefs, defs, units, lock, journal, intent };
}

/**
 * Every file under etc/mdevctl.d must be a complete definition under a UUID name: a torn, truncated or
 * temporary file is a lost definition as far as mdevctl is concerned. Returns one line per problem.
 */
export function definitionProblems(s: TreeState): string[] {
  const out: string[] = [];
  for (const [rel, text] of Object.entries(s.defs)) {
    if (!isUuid(path.basename(rel))) {
      out.push(`${rel}: not a definition file name (temporary file left behind?)`);
      continue;
    }
    if (text.startsWith('-> ')) {
      out.push(`${rel}: a symbolic link`);
      continue;
    }
    try {
      parseDefinition(text);
    } catch (e) {
      out.push(`${rel}: does not parse (${(e as Error).message.split('\n')[0]}): ${JSON.stringify(text.slice(0, 60))}`);
    }
  }
  return out;
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

export interface Verdict {
  /** Devices active that were neither there before nor asked for and kept. */
  leaked: string[];
  /** Definitions lost, truncated, unparsable, or a definition set that is neither the one before nor the one asked for. */
  lost: string[];
  /** Anything else wrong (exit code, message, lock, journal). */
  other: string[];
}

export const clean = (v: Verdict): boolean => v.leaked.length === 0 && v.lost.length === 0 && v.other.length === 0;

export function verdictLines(v: Verdict): string[] {
  return [...v.leaked.map((x) => `leaked: ${x}`), ...v.lost.map((x) => `lost: ${x}`), ...v.other];
}

/**
 * The state after a failed (or killed) run, against the state before and the state a successful run
 * reaches: no active device outside before ∪ asked; every definition file parses; the definition set is
 * the one before or the one asked for (unless `defsAnyOf` is false: then only parsing is checked).
 */
export function judge(after: TreeState, before: TreeState, target: TreeState, opts: { defsAnyOf?: boolean } = {}): Verdict {
  const v: Verdict = { leaked: [], lost: [], other: [] };
  const allowed = new Set([...before.active, ...target.active]);
  for (const a of after.active) if (!allowed.has(a)) v.leaked.push(a);
  v.lost.push(...definitionProblems(after));
  if ((opts.defsAnyOf ?? true) && !same(after.defs, before.defs) && !same(after.defs, target.defs)) {
    const keys = new Set([...Object.keys(before.defs), ...Object.keys(target.defs), ...Object.keys(after.defs)]);
    const diff = [...keys].filter((k) => after.defs[k] !== before.defs[k] && after.defs[k] !== target.defs[k]);
    v.lost.push(`definitions are neither those before nor those asked for: ${diff.join(', ') || '(mixed)'}`);
  }
  return v;
}

/** A failure as an operator sees it: exit 1, one `vgpuctl: error:` line, no stack trace, nothing on stdout. */
export function failureProblems(r: CliResult, cause: RegExp): string[] {
  const out: string[] = [];
  if (r.code !== 1) out.push(`exit ${r.code}, not 1`);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('vgpuctl: error: '));
  if (errors.length !== 1) out.push(`expected one error line, got: ${JSON.stringify(r.stderr)}`);
  if (/internal error|\n\s+at /.test(r.stderr)) out.push(`internal error or stack trace: ${JSON.stringify(r.stderr)}`);
  if (!cause.test(r.stderr)) out.push(`the error does not name the cause ${cause}: ${JSON.stringify(r.stderr)}`);
  if (r.stdout !== '') out.push(`stdout not empty: ${JSON.stringify(r.stdout)}`);
  return out;
}

/** Sentence (or errno) a sysfs write refused with `errno` is reported with (kernel-errors.ts). */
export const SYSFS_CAUSE: Record<string, RegExp> = {
  EIO: /\(EIO\)/,
  ENOSPC: /no instances of .* left on/,
  EBUSY: /is busy \(EBUSY\)/,
  EINVAL: /\(EINVAL\)/,
  ENODEV: /went away \(ENODEV\): the GPU was removed or SR-IOV was disabled/,
};

// ---------------------------------------------------------------------------------------------------
// File write faults. vgpuctl writes a definition through a temporary file and a rename, and removes one
// with rm; a fault makes one of those calls fail with an errno, once, for one target path.

export type FileStage = 'open' | 'write' | 'rename' | 'rm' | 'symlink';

export interface FileFault {
  /** Real path of the file the action writes or removes. */
  file: string;
  stage: FileStage;
  errno: string;
}

const errnoError = (code: string, syscall: string, p: string): NodeJS.ErrnoException =>
  Object.assign(new Error(`${code}: injected fault, ${syscall} '${p}'`), { code, syscall, path: p });

const isTmpFor = (p: string, file: string): boolean =>
  path.dirname(p) === path.dirname(file) && path.basename(p).startsWith(`.${path.basename(file)}.vgpuctl-`) && p.endsWith('.tmp');

/**
 * Arms one file fault for the duration of `fn`: the first matching call fails with the errno, later ones
 * pass (the undo of a failed step writes the same path and must work). Returns whether it fired.
 */
export async function withFileFault<T>(fault: FileFault, fn: () => Promise<T>): Promise<{ result: T; fired: boolean }> {
  const p = fs as unknown as Record<string, (...a: any[]) => Promise<any>>;
  const orig = { open: p['open']!, rename: p['rename']!, rm: p['rm']!, symlink: p['symlink']! };
  let fired = false;
  const fire = (syscall: string, at: string) => {
    fired = true;
    throw errnoError(fault.errno, syscall, at);
  };
  p['open'] = async function (file: string, ...rest: any[]) {
    const target = String(file);
    if (!fired && (fault.stage === 'open' || fault.stage === 'write') && isTmpFor(target, fault.file)) {
      if (fault.stage === 'open') fire('open', target);
      const handle = await orig.open.call(this, file, ...rest);
      fired = true;
      // The temporary file exists now; writing into it fails (a full disk, an I/O error).
      handle.writeFile = async () => {
        throw errnoError(fault.errno, 'write', target);
      };
      return handle;
    }
    return orig.open.call(this, file, ...rest);
  };
  p['rename'] = async function (from: string, to: string) {
    if (!fired && fault.stage === 'rename' && String(to) === fault.file) fire('rename', String(to));
    return orig.rename.call(this, from, to);
  };
  p['rm'] = async function (file: string, ...rest: any[]) {
    if (!fired && fault.stage === 'rm' && String(file) === fault.file) fire('rm', String(file));
    return orig.rm.call(this, file, ...rest);
  };
  p['symlink'] = async function (target: string, file: string) {
    if (!fired && fault.stage === 'symlink' && String(file) === fault.file) fire('symlink', String(file));
    return orig.symlink.call(this, target, file);
  };
  try {
    return { result: await fn(), fired };
  } finally {
    Object.assign(p, orig);
  }
}

/** The write sequence of a command, from its --dry-run: one entry per sysfs write or file change. */
export interface WritePoint {
  kind: 'sysfs-write' | 'write-file' | 'remove-file' | 'write-link';
  path: string;
  summary: string;
  /** For sysfs writes: the ordinal among sysfs writes (VGPUCTL_SIM_FAULTS any#n). */
  sysfsIndex?: number;
}

export function writePoints(actions: Array<{ kind: string; path?: string; summary: string }>): WritePoint[] {
  let n = 0;
  return actions.map((a) => {
    if (a.kind === 'sysfs-write') return { kind: 'sysfs-write', path: a.path!, summary: a.summary, sysfsIndex: ++n };
    if (a.kind === 'write-file' || a.kind === 'remove-file' || a.kind === 'write-link') return { kind: a.kind, path: a.path!, summary: a.summary };
    throw new Error(`unexpected action kind ${a.kind}`);
  });
}

export const stagesOf = (w: WritePoint): FileStage[] =>
  w.kind === 'write-file' ? ['open', 'write', 'rename'] : w.kind === 'remove-file' ? ['rm'] : w.kind === 'write-link' ? ['symlink'] : [];

// ---------------------------------------------------------------------------------------------------
// The real CLI in a child process.

let bundled: Promise<string> | null = null;

/**
 * Bundles src/cli/bin.ts with esbuild into a private directory (profiles/, fixtures/ and node_modules
 * linked beside it, as in the repository): the child runs exactly the code under test, and a stale or
 * half-rebuilt dist/ (other work in the repository) can neither fail nor pass these tests.
 */
export function buildCli(): Promise<string> {
  bundled ??= (async () => {
    const { build } = await import('esbuild');
    const dir = tempDir('vgpuctl-hard-cli-');
    const bin = path.join(dir, 'dist/cli/bin.js');
    const common = { bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'error' } as const;
    await build({ ...common, entryPoints: [path.join(REPO, 'src/cli/bin.ts')], outfile: bin });
    // The --backend mdevctl runner, where the bundled CLI looks for it (as scripts/build-bundle.mjs places it).
    await build({ ...common, entryPoints: [path.join(REPO, 'src/host/chroot-runner.ts')], outfile: path.join(dir, 'dist/chroot-runner.mjs') });
    for (const name of ['profiles', 'fixtures', 'node_modules']) symlinkSync(path.join(REPO, name), path.join(dir, name));
    writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }\n');
    return bin;
  })();
  return bundled;
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  pid: number;
  /** With killAfterMs: ms from the moment the lock was seen (or the poll gave up) to the child's end. */
  afterLockMs: number | null;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** VGPUCTL_SIM_CRASH_AFTER: the child kills itself after that many sysfs writes (a number) or steps ("step:N"). */
  crashAfter?: number | string;
  /** SIGKILL the child this long after `from`. */
  killAfterMs?: number;
  /**
   * spawn: its start; lock (default): the moment it holds the host lock (polled; after 5 s without it,
   * from then); journal: the moment apply wrote its intent journal (just before its first change).
   */
  from?: 'spawn' | 'lock' | 'journal';
  /** Shell commands run before the CLI in the child (ulimit, umask). */
  shell?: string;
}

/** `node BIN --root R --simulate ARGS` in a child process, killed as `opts` says. */
export function spawnCli(bin: string, host: HostRoot, args: string[], opts: SpawnOptions = {}): Promise<ChildResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('VGPUCTL_')) delete env[k];
  Object.assign(env, opts.env ?? {});
  if (opts.crashAfter !== undefined) env['VGPUCTL_SIM_CRASH_AFTER'] = String(opts.crashAfter);
  const argv = [bin, '--root', host.root, '--simulate', ...args];
  const child = opts.shell
    ? spawn('sh', ['-c', `${opts.shell}; exec "$0" "$@"`, process.execPath, ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  let timer: NodeJS.Timeout | undefined;
  let poll: NodeJS.Timeout | undefined;
  let armedAt: number | null = null;
  if (opts.killAfterMs !== undefined) {
    const started = Date.now();
    const arm = () => {
      if (poll) clearInterval(poll);
      poll = undefined;
      armedAt = Date.now();
      timer = setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs);
    };
    if (opts.from === 'spawn') arm();
    else {
      const marker = host.path(opts.from === 'journal' ? JOURNAL : LOCK);
      poll = setInterval(() => {
        void lexists(marker).then((there) => {
          if (poll && (there || Date.now() - started > 5000)) arm();
        });
      }, 2);
    }
  }
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    // 'close' comes after the child was reaped: its pid is free, so a lock it left is seen as stale.
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (poll) clearInterval(poll);
      resolve({ code, signal, stdout, stderr, pid: child.pid ?? -1, afterLockMs: armedAt === null ? null : Date.now() - armedAt });
    });
  });
}

/** A small deterministic PRNG (mulberry32): a failing random run can be repeated from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs `fn` over `items` with at most `n` at a time, results in order. */
export async function pool<T, R>(items: T[], n: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

/** Writes a file into the host tree, making its directory. */
export async function put(host: HostRoot, hostPath: string, content: string): Promise<void> {
  const real = host.path(hostPath);
  await fs.mkdir(path.dirname(real), { recursive: true });
  await fs.writeFile(real, content);
}

/** A StackHPC-style boot unit for a device and its multi-user.target.wants link (seed 002). */
export async function putBootUnit(host: HostRoot, uuid: string): Promise<void> {
  const unit = `/etc/systemd/system/nvidia-mdev@${uuid}.service`;
  await put(host, unit, `[Unit]\nDescription=Create vGPU ${uuid}\n\n[Service]\nType=oneshot\nExecStart=/usr/sbin/mdevctl start -u ${uuid}\n\n[Install]\nWantedBy=multi-user.target\n`);
  const wants = host.path('/etc/systemd/system/multi-user.target.wants');
  await fs.mkdir(wants, { recursive: true });
  await fs.symlink(unit, path.join(wants, `nvidia-mdev@${uuid}.service`));
}

export { writePlanFile } from './hosts.js';

// ---------------------------------------------------------------------------------------------------
// The simulated kernel after a random kill.
/*
 * The simulator does the kernel's work inside the process that writes to sysfs, in several file-system
 * steps. A kill -9 at a random moment can therefore stop the *simulated kernel* half-way: a device
 * directory without its /sys/bus/mdev/devices link, an available_instances cut short, a driver link
 * without its back-link. A real kernel never shows that: a sysfs store completes or fails as a whole,
 * whatever happens to the writer. Before judging vgpuctl after a random kill, these helpers put the
 * simulated kernel back into a state a real one could be in (the half-done store taken as not done, or
 * for a driver binding as done when the device's own `driver` link already says so) and count what they
 * had to repair. They never touch /etc, /run or /var: vgpuctl's own files are judged as the kill left them.
 */

const resolves = (p: string) =>
  fs.stat(p).then(
    () => true,
    () => false,
  );
const readlink = (p: string) => fs.readlink(p).catch(() => null);

/** Repairs half-made or half-removed mdevs and stale capacity (mdev counters, vendor-VFIO creatable lists); returns what it repaired. */
export async function settleTornMdevs(host: HostRoot): Promise<string[]> {
  const repaired: string[] = [];
  const bus = host.path('/sys/bus/mdev/devices');
  // A device is whole when its bus link resolves to a directory that has its mdev_type link.
  for (const parent of await fs.readdir(host.path('/sys/class/mdev_bus')).catch(() => [] as string[])) {
    const dir = await fs.realpath(host.path(`/sys/class/mdev_bus/${parent}`)).catch(() => null);
    if (dir === null) continue;
    for (const uuid of (await fs.readdir(dir).catch(() => [] as string[])).filter(isUuid)) {
      const devDir = path.join(dir, uuid);
      const whole = (await fs.realpath(path.join(bus, uuid)).catch(() => null)) === devDir && (await resolves(path.join(devDir, 'mdev_type')));
      if (whole) continue;
      const group = await readlink(path.join(devDir, 'iommu_group'));
      if (group !== null) {
        const g = path.basename(group);
        await fs.rm(host.path(`/sys/kernel/iommu_groups/${g}`), { recursive: true, force: true });
        await fs.rm(host.path(`/dev/vfio/${g}`), { force: true });
      }
      await fs.rm(devDir, { recursive: true, force: true });
      repaired.push(`half-made or half-removed mdev ${uuid}`);
    }
  }
  // Links left pointing at nothing: the bus, the vendor driver, the types' devices/, the IOMMU groups.
  const dangling = async (dir: string, what: string): Promise<void> => {
    for (const name of (await fs.readdir(dir).catch(() => [] as string[])).filter(isUuid)) {
      const p = path.join(dir, name);
      if ((await readlink(p)) !== null && !(await resolves(p))) {
        await fs.rm(p, { force: true });
        repaired.push(`dangling ${what} link ${name}`);
      }
    }
  };
  await dangling(bus, 'bus');
  for (const drv of await fs.readdir(host.path('/sys/bus/mdev/drivers')).catch(() => [] as string[])) await dangling(host.path(`/sys/bus/mdev/drivers/${drv}`), 'driver');
  for (const parent of await fs.readdir(host.path('/sys/class/mdev_bus')).catch(() => [] as string[])) {
    const types = host.path(`/sys/class/mdev_bus/${parent}/mdev_supported_types`);
    for (const t of await fs.readdir(types).catch(() => [] as string[])) await dangling(path.join(types, t, 'devices'), 'type');
  }
  for (const g of await fs.readdir(host.path('/sys/kernel/iommu_groups')).catch(() => [] as string[])) {
    const devices = host.path(`/sys/kernel/iommu_groups/${g}/devices`);
    const names = await fs.readdir(devices).catch(() => [] as string[]);
    if (names.length > 0 && names.every(isUuid)) {
      const alive = await Promise.all(names.map((n) => resolves(path.join(devices, n))));
      if (!alive.some(Boolean)) {
        await fs.rm(host.path(`/sys/kernel/iommu_groups/${g}`), { recursive: true, force: true });
        await fs.rm(host.path(`/dev/vfio/${g}`), { force: true });
        repaired.push(`IOMMU group ${g} of a vanished mdev`);
      }
    }
  }
  // available_instances: cut short while rewritten, or not yet rewritten after the device came or went.
  const counters = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name === 'available_instances') counters.set(p, await fs.readFile(p, 'utf8'));
    }
  };
  await walk(host.path('/sys/devices'));
  for (const [p, v] of counters) if (!/^\d+\n$/.test(v)) await fs.writeFile(p, '0\n');
  await recomputeAllCapacity(host);
  for (const [p, v] of counters) if ((await fs.readFile(p, 'utf8')) !== v) repaired.push(`stale ${path.relative(host.root, p)}`);
  // vendor-VFIO: the driver computes creatable_vgpu_types when it is read; the simulator rewrites the lists
  // right after a current_vgpu_type write, and a kill between the two leaves them stale.
  const creatable = new Map<string, string>();
  for (const a of await fs.readdir(host.path('/sys/bus/pci/devices')).catch(() => [] as string[])) {
    const p = host.path(`/sys/bus/pci/devices/${a}/nvidia/creatable_vgpu_types`);
    const v = await fs.readFile(p, 'utf8').catch(() => null);
    if (v !== null) creatable.set(p, v);
  }
  if (creatable.size > 0) await recomputeAllVendor(host);
  for (const [p, v] of creatable) if ((await fs.readFile(p, 'utf8')) !== v) repaired.push(`stale ${path.relative(host.root, p)}`);
  return repaired;
}

/**
 * Repairs a PCI driver binding the kill cut half-way: the device's `driver` link is the truth; the
 * driver's back-link, the parked or registered mdev types of an nvidia GPU, its mdev_bus link and the
 * group's /dev/vfio node are made to agree with it; a driver_override cut short reads as "(null)".
 */
export async function settleTornPci(host: HostRoot, addresses: string[]): Promise<string[]> {
  const repaired: string[] = [];
  const drivers = host.path('/sys/bus/pci/drivers');
  const groups = new Set<string>();
  for (const addr of addresses) {
    const devLink = host.path(`/sys/bus/pci/devices/${addr}`);
    const dev = await fs.realpath(devLink);
    const drvLink = await readlink(path.join(dev, 'driver'));
    const drv = drvLink === null ? null : path.basename(drvLink);
    for (const d of await fs.readdir(drivers)) {
      const back = path.join(drivers, d, addr);
      const has = await lexists(back);
      if (d === drv && !has) {
        await fs.symlink(path.relative(path.dirname(back), dev), back);
        repaired.push(`back-link of ${addr} in ${d}`);
      } else if (d !== drv && has) {
        await fs.rm(back, { force: true });
        repaired.push(`stale back-link of ${addr} in ${d}`);
      }
    }
    const types = path.join(dev, 'mdev_supported_types');
    const parked = path.join(dev, '.sim-parked-mdev_supported_types');
    const bus = host.path(`/sys/class/mdev_bus/${addr}`);
    if (drv === 'nvidia') {
      if ((await lexists(parked)) && !(await lexists(types))) {
        await fs.rename(parked, types);
        repaired.push(`mdev types of ${addr} still parked`);
      }
      if ((await lexists(types)) && !(await lexists(bus))) {
        await fs.symlink(path.relative(path.dirname(bus), dev), bus);
        repaired.push(`mdev_bus link of ${addr} missing`);
      }
    } else {
      if ((await lexists(types)) && !(await lexists(parked))) {
        await fs.rename(types, parked);
        repaired.push(`mdev types of ${addr} not parked`);
      }
      if (await lexists(bus)) {
        await fs.rm(bus, { force: true });
        repaired.push(`stale mdev_bus link of ${addr}`);
      }
    }
    const override = path.join(dev, 'driver_override');
    if ((await fs.readFile(override, 'utf8').catch(() => '(null)\n')) === '') {
      await fs.writeFile(override, '(null)\n');
      repaired.push(`driver_override of ${addr} cut short`);
    }
    const g = await readlink(path.join(dev, 'iommu_group'));
    if (g !== null) groups.add(path.basename(g));
  }
  for (const g of groups) {
    const members = await fs.readdir(host.path(`/sys/kernel/iommu_groups/${g}/devices`));
    const onVfio = await Promise.all(members.map(async (m) => path.basename((await readlink(host.path(`/sys/bus/pci/devices/${m}/driver`))) ?? '') === 'vfio-pci'));
    const node = host.path(`/dev/vfio/${g}`);
    if (onVfio.some(Boolean) && !(await lexists(node))) {
      await fs.mkdir(path.dirname(node), { recursive: true });
      await fs.writeFile(node, '', { mode: 0o600 });
      repaired.push(`/dev/vfio/${g} missing`);
    } else if (!onVfio.some(Boolean) && (await lexists(node))) {
      await fs.rm(node, { force: true });
      repaired.push(`/dev/vfio/${g} stale`);
    }
  }
  return repaired;
}

/** Temporary files (vgpuctl's .tmp, the lock's .new and .stale.) under the directories vgpuctl writes (or `dirs`). */
export async function listTmpLitter(host: HostRoot, dirs = ['/etc/mdevctl.d', '/etc/vgpuctl', '/run/vgpuctl', '/var/lib/vgpuctl']): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (/\.tmp$|\.new$|\.stale\./.test(e.name)) out.push(path.relative(host.root, p));
    }
  };
  for (const d of dirs) await walk(host.path(d));
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Fake external tools.

/** A `#!/bin/sh` script `name` with `body` in `dir` (a new temporary directory by default); returns its path. */
export function fakeTool(name: string, body: string, dir = tempDir('vgpuctl-tools-')): string {
  const p = path.join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}`);
  chmodSync(p, 0o755);
  return p;
}

// ---------------------------------------------------------------------------------------------------
// A kill inside a file write: a preload for the child (NODE_OPTIONS --import) that SIGKILLs it at one
// moment of vgpuctl's atomic write of one file (writeFileAtomic: open the temporary file, write, sync,
// rename). Deterministic, where a random-moment kill only sometimes lands inside the write.

export type WriteKillStage = 'open' | 'half-written' | 'synced';

const KILLER = `import { promises as fs } from 'node:fs';
import path from 'node:path';
const [stage, file] = (process.env.VGPUCTL_TEST_KILL_INSIDE_WRITE ?? '').split('@');
const isTmp = (p) => path.dirname(p) === path.dirname(file) && path.basename(p).startsWith('.' + path.basename(file) + '.vgpuctl-') && p.endsWith('.tmp');
const die = () => { process.kill(process.pid, 'SIGKILL'); return new Promise(() => {}); };
const open = fs.open;
fs.open = async function (p, ...rest) {
  const h = await open.call(this, p, ...rest);
  if (!file || !isTmp(String(p))) return h;
  if (stage === 'open') await die();
  const writeFile = h.writeFile.bind(h);
  const sync = h.sync.bind(h);
  h.writeFile = async (data, ...r) => {
    if (stage !== 'half-written') return writeFile(data, ...r);
    const s = String(data);
    await writeFile(s.slice(0, Math.floor(s.length / 2)));
    await sync();
    return die();
  };
  h.sync = async () => {
    await sync();
    if (stage === 'synced') await die();
  };
  return h;
};
`;

/** The env for spawnCli that kills the child at `stage` of its write of `realFile` (a real path). */
export function killInsideWriteEnv(realFile: string, stage: WriteKillStage): NodeJS.ProcessEnv {
  const preload = path.join(tempDir('vgpuctl-killer-'), 'kill-inside-write.mjs');
  writeFileSync(preload, KILLER);
  return { NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --import ${preload}`.trim(), VGPUCTL_TEST_KILL_INSIDE_WRITE: `${stage}@${realFile}` };
}
