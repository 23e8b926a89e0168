/**
 * Helpers for the hardening tests: fresh host trees, the host state the invariants are about (active
 * mdevs, definition files, boot units, lock, journal), a consistency check that returns its findings
 * instead of failing at the first one (so each test can print how many runs were inconsistent), file
 * write faults injected at the fs call (the simulator's VGPUCTL_SIM_FAULTS covers sysfs writes only), and
 * the real CLI bundled from src/ for the tests that must run it in a child process.
 */
import { execFileSync, spawn } from 'node:child_process';
import { promises as fs, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HostRoot } from '../../src/host/host-root.js';
import { isUuid } from '../../src/host/identifiers.js';
import { parseDefinition } from '../../src/host/definitions.js';
import { cli, type CliResult } from '../helpers/cli.js';
import { hostFrom, tempDir } from '../helpers/hosts.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const LOCK = '/run/vgpuctl/lock';
export const JOURNAL = '/var/lib/vgpuctl/apply-journal.json';
export const INTENT = '/var/lib/vgpuctl/intent.json';
export const P40 = '0000:82:00.0';

// Fresh random v4 UUIDs (as uuidgen makes them) for the devices the tests ask for.
export const U = [
  '0b6f3c1e-5a2d-4e8f-9c71-3d5e7a9b1c20',
  '1c7a4d2f-6b3e-4f90-8d82-4e6f8b0c2d31',
  '2d8b5e30-7c4f-4a01-9e93-5f709c1d3e42',
  '3e9c6f41-8d50-4b12-af04-60819d2e4f53',
  '4fad7052-9e61-4c23-b015-7192ae3f5064',
] as const;

const templates = new Map<string, Promise<string>>();

/** A fresh copy of a bundled fixture (laid out once per test file, then copied with cp -a). */
export async function fixtureHost(fixture: string): Promise<HostRoot> {
  let t = templates.get(fixture);
  if (!t) {
    t = hostFrom(fixture).then((h) => h.root);
    templates.set(fixture, t);
  }
  return copyHost(new HostRoot(await t));
}

/** A byte-for-byte copy of a host tree (links, modes) in a new temporary directory. */
export function copyHost(host: HostRoot): HostRoot {
  const dest = path.join(tempDir('vgpuctl-hard-'), 'root');
  execFileSync('cp', ['-a', '--', host.root, dest]);
  return new HostRoot(dest);
}

/** `vgpuctl --root R --simulate ARGS` in-process. */
export const sim = (host: HostRoot, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> => cli(['--root', host.root, '--simulate', ...args], env);

export const lexists = (p: string): Promise<boolean> =>
  fs.lstat(p).then(
    () => true,
    () => false,
  );

/** What the invariants are about, read straight from the tree (not through vgpuctl). */
export interface TreeState {
  /** "uuid parent type" of every active mdev, sorted. */
  active: string[];
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

export async function readState(host: HostRoot): Promise<TreeState> {
  const [active, defs, units, lock, journal, intent] = await Promise.all([
    activeDevices(host),
    walkFiles(host.path('/etc/mdevctl.d'), host.root, (rel) => rel === 'etc/mdevctl.d/scripts.d'),
    walkFiles(host.path('/etc/systemd/system'), host.root, (rel) => !/@[0-9a-f-]{36}\.service$|\.wants$|system$/.test(rel)),
    lexists(host.path(LOCK)),
    lexists(host.path(JOURNAL)),
    lexists(host.path(INTENT)),
  ]);
  return { active, defs, units, lock, journal, intent };
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
    await build({ entryPoints: [path.join(REPO, 'src/cli/bin.ts')], bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile: bin, packages: 'external', logLevel: 'error' });
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

/**
 * `node BIN --root R --simulate ARGS` in a child process. `killAfterMs`: SIGKILL that long after the
 * child took the host lock (polled), or after its spawn when it never takes the lock in time.
 */
export function spawnCli(bin: string, host: HostRoot, args: string[], opts: { env?: NodeJS.ProcessEnv; killAfterMs?: number; shell?: string } = {}): Promise<ChildResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('VGPUCTL_')) delete env[k];
  Object.assign(env, opts.env ?? {});
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
    const lock = host.path(LOCK);
    const started = Date.now();
    const arm = () => {
      if (poll) clearInterval(poll);
      poll = undefined;
      armedAt = Date.now();
      timer = setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs);
    };
    poll = setInterval(() => {
      void lexists(lock).then((there) => {
        if (poll && (there || Date.now() - started > 5000)) arm();
      });
    }, 2);
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

export function writePlanFile(text: string): string {
  const file = path.join(tempDir('vgpuctl-hard-plan-'), 'plan.yaml');
  writeFileSync(file, text);
  return file;
}
