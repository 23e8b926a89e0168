#!/usr/bin/env node
/**
 * `npm run bench`: vgpuctl against the real mdevctl on the same large simulated hosts.
 *
 * Hosts (bench/hosts.mjs): 8 x A100D-80GB with 20 SR-IOV VFs each (160 mdev parents x 13 types, one
 * definition per VF) and 16 x Tesla T4 (16 parents x 17 types, 64 definitions); for the scaling curve also
 * 1, 10 and 40 A100D parents. Every tree is laid out by the simulator (layOutFixture) on tmpfs when there is
 * one (sysfs is in memory too), and every write-measurement runs on a fresh copy.
 *
 * mdevctl runs as `chroot TREE mdevctl ...` with the machine's /usr, /lib, /lib64, /bin bound read-only into
 * the tree; the script re-executes itself in a private mount namespace first (bench/namespace.mjs).
 *
 * Figures: wall time (median of several runs, interleaved vgpuctl/mdevctl; the cost of spawning, and for
 * mdevctl of the chroot exec, is measured on its own and subtracted), peak RSS (GNU time), files opened
 * (strace). Loops of mdevctl: each `mdevctl start` is followed by the simulator's settle (the kernel's part:
 * carrying out the write, as vgpuctl's own simulated writes do in-process), counted in the loop's time;
 * the time of mdevctl alone is reported beside it.
 *
 * Options: --runs N (default 7), --quick (3 runs, loops once), --no-mdevctl, --out FILE
 * (default bench-results/latest.json), --update-readme (rewrite the table in README.md's "## Performance").
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, accessSync, constants } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { a100dSpec, benchUuid, layOut, parentsOf, REPO, t4Spec } from '../bench/hosts.mjs';
import { cleanupScratch, countFiles, haveGnuTime, haveStrace, median, repeat, runOnce, summarize } from '../bench/measure.mjs';
import { inPrivateNamespace, mountSystemDirs, mountsUnder, reexecInPrivateNamespace } from '../bench/namespace.mjs';
import { renderReport, updateReadme } from '../bench/report.mjs';

const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const quick = flag('--quick');
const RUNS = Number(option('--runs', quick ? 3 : 7));
const LOOP_RUNS = quick ? 1 : 3;
const OUT = path.resolve(option('--out', path.join(REPO, 'bench-results/latest.json')));

const log = (m) => process.stderr.write(`bench: ${m}\n`);

// --- mdevctl needs root, unshare and a private mount namespace --------------------------------------
const mdevctlPath = spawnSync('sh', ['-c', 'command -v mdevctl'], { encoding: 'utf8' }).stdout.trim();
let withMdevctl = !flag('--no-mdevctl') && mdevctlPath !== '' && process.getuid?.() === 0;
if (withMdevctl && !inPrivateNamespace()) {
  const code = reexecInPrivateNamespace(fileURLToPath(import.meta.url), args);
  if (code !== null) process.exit(code);
  log('cannot create a private mount namespace (unshare); measuring vgpuctl alone');
  withMdevctl = false;
}
if (!withMdevctl) log(mdevctlPath === '' ? 'mdevctl is not installed: measuring vgpuctl alone' : 'measuring vgpuctl alone (mdevctl needs root and unshare)');
if (!haveGnuTime) log('/usr/bin/time (GNU time) is missing: no CPU or RSS figures (apt-get install time)');
if (!haveStrace) log('strace is missing: no file counts (apt-get install strace)');

const BUNDLE = path.join(REPO, 'dist/vgpuctl.mjs');
if (!existsSync(BUNDLE)) {
  log('dist/vgpuctl.mjs is missing: run `npm run build` first (npm run bench does)');
  process.exit(1);
}
const BIN = path.join(REPO, 'bin/vgpuctl');
const { HostRoot } = await import(path.join(REPO, 'dist/host/host-root.js'));
const { settle } = await import(path.join(REPO, 'dist/simulator/kernel.js'));
const { discoverActiveMdevs } = await import(path.join(REPO, 'dist/host/mdev.js'));

// --- work directory: tmpfs when there is one ---------------------------------------------------------
const shm = '/dev/shm';
let base = os.tmpdir();
try {
  accessSync(shm, constants.W_OK);
  base = shm;
} catch {
  /* no tmpfs: the system's temporary directory */
}
const WORK = mkdtempSync(path.join(base, 'vgpuctl-bench-'));
const unmounts = new Map();
let cleanedUp = false;
function cleanup() {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const [tree, undo] of unmounts) {
    try {
      undo();
    } catch (e) {
      log(String(e.message));
    }
    unmounts.delete(tree);
  }
  const left = mountsUnder(WORK);
  if (left.length > 0) log(`not removing ${WORK}: still mounted: ${left.join(', ')} (the mounts end with this process; remove it afterwards)`);
  else rmSync(WORK, { recursive: true, force: true });
  cleanupScratch();
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

const toolEnv = { ...process.env };
for (const k of Object.keys(toolEnv)) if (k.startsWith('VGPUCTL_')) delete toolEnv[k];
delete toolEnv['NODE_OPTIONS'];

const vg = (tree, ...a) => [process.execPath, BIN, '--root', tree, ...a];
const md = (tree, ...a) => ['chroot', tree, 'mdevctl', ...a];

/** A fresh copy of a template tree (templates never carry mounts, so a copy never copies /usr). */
function fresh(template, name) {
  if (mountsUnder(template).length > 0) throw new Error(`internal: ${template} has mounts; refusing to copy it`);
  const dir = path.join(WORK, name);
  rmSync(dir, { recursive: true, force: true });
  const r = spawnSync('cp', ['-a', template, dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cp -a ${template} ${dir}: ${r.stderr.trim()}`);
  return dir;
}
function mount(tree) {
  if (!withMdevctl || unmounts.has(tree)) return;
  unmounts.set(tree, mountSystemDirs(tree));
}
function discard(tree) {
  const undo = unmounts.get(tree);
  if (undo) {
    undo();
    unmounts.delete(tree);
  }
  if (mountsUnder(tree).length > 0) throw new Error(`internal: ${tree} still has mounts; not removing it`);
  rmSync(tree, { recursive: true, force: true });
}

// --- hosts -------------------------------------------------------------------------------------------
const started = Date.now();
const loadStart = os.loadavg();
const specs = {
  a160: a100dSpec({ gpus: 8, vfs: 20 }),
  t4: t4Spec({ cards: 16, definitions: 4 }),
  c1: a100dSpec({ gpus: 1, vfs: 1 }),
  c10: a100dSpec({ gpus: 1, vfs: 10 }),
  c40: a100dSpec({ gpus: 2, vfs: 20 }),
};
const templates = {};
const layoutMs = {};
for (const [key, spec] of Object.entries(specs)) {
  const t0 = performance.now();
  await layOut(spec, path.join(WORK, `template-${key}`));
  layoutMs[key] = performance.now() - t0;
  templates[key] = path.join(WORK, `template-${key}`);
  log(`laid out ${spec.summary} in ${(layoutMs[key] / 1000).toFixed(1)} s`);
}
/** The same tree without definitions (for apply, which then creates and defines every device). */
function withoutDefinitions(key) {
  const dir = fresh(templates[key], `template-${key}-nodefs`);
  for (const p of parentsOf(specs[key])) rmSync(path.join(dir, 'etc/mdevctl.d', p), { recursive: true, force: true });
  return dir;
}
const noDefs = { a160: withoutDefinitions('a160'), c1: withoutDefinitions('c1'), c10: withoutDefinitions('c10'), c40: withoutDefinitions('c40') };
const planFile = path.join(WORK, 'plan-a100d-max.yaml');
writeFileSync(planFile, 'version: 1\ndefaults: { autostart: true }\ngpus:\n  - select: { board: A100D }\n    type: nvidia-692\n    count: max\n');

// --- spawn overheads ---------------------------------------------------------------------------------
const overhead = { spawn_ms: repeat(['/bin/true'], { runs: 15, warmup: 2 }).wall_ms, chroot_ms: 0 };
const roA = fresh(templates.a160, 'ro-a160');
mount(roA);
if (withMdevctl) overhead.chroot_ms = repeat(['chroot', roA, '/bin/true'], { runs: 15, warmup: 2 }).wall_ms;
const net = (s, tool) => ({ ...s, wall_ms: Math.max(0, s.wall_ms - (tool === 'mdevctl' ? overhead.chroot_ms : overhead.spawn_ms)), wall_min_ms: Math.max(0, s.wall_min_ms - (tool === 'mdevctl' ? overhead.chroot_ms : overhead.spawn_ms)) });

/** vgpuctl and mdevctl runs alternating, so that a change in the machine's load hits both alike. */
function compare(a, b, { runs = RUNS, expectA = [0], expectB = [0] } = {}) {
  const sa = [];
  const sb = [];
  for (let i = 0; i < runs + 1; i++) {
    const ra = runOnce(a, { env: toolEnv });
    if (!expectA.includes(ra.code)) throw new Error(`${a.join(' ')}: exit ${ra.code}: ${ra.stderr.slice(0, 500)}`);
    if (i > 0) sa.push(ra);
    if (b) {
      const rb = runOnce(b, { env: toolEnv });
      if (!expectB.includes(rb.code)) throw new Error(`${b.join(' ')}: exit ${rb.code}: ${rb.stderr.slice(0, 500)}`);
      if (i > 0) sb.push(rb);
    }
  }
  return { vgpuctl: net(summarize(sa), 'vgpuctl'), mdevctl: b ? net(summarize(sb), 'mdevctl') : null };
}

const results = {
  date: new Date().toISOString(),
  machine: {
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
    kernel: os.release(),
    mdevctl: withMdevctl ? spawnSync('mdevctl', ['--version'], { encoding: 'utf8' }).stdout.trim() || 'installed' : null,
    tree_filesystem: base === shm ? 'tmpfs (/dev/shm)' : base,
    loadavg_start: loadStart.map((x) => Number(x.toFixed(2))),
  },
  settings: { runs: RUNS, loop_runs: LOOP_RUNS, quick, overhead, layout_ms: layoutMs },
  startup: {},
  floors: {},
  comparisons: [],
  curve: null,
  targets: [],
};

// --- start-up ------------------------------------------------------------------------------------------
log('start-up: node -e 0, vgpuctl --version');
{
  const nodeE0 = [];
  const version = [];
  for (let i = 0; i < Math.max(RUNS, 9) * 2 + 1; i++) {
    const a = runOnce([process.execPath, '-e', '0'], { env: toolEnv });
    const b = runOnce([process.execPath, BIN, '--version'], { env: toolEnv });
    if (i > 0) {
      nodeE0.push(a);
      version.push(b);
    }
  }
  results.startup.node_e0 = net(summarize(nodeE0), 'vgpuctl');
  results.startup.version = net(summarize(version), 'vgpuctl');
}

function record(id, label, host, pair, files) {
  const ratio = (a, b) => (a === null || b === null || b === undefined || b === 0 ? null : a / b);
  const row = {
    id,
    label,
    host,
    vgpuctl: { ...pair.vgpuctl, files: files?.vgpuctl ?? null },
    mdevctl: pair.mdevctl ? { ...pair.mdevctl, files: files?.mdevctl ?? null } : null,
  };
  row.ratio = pair.mdevctl
    ? {
        wall: ratio(pair.vgpuctl.wall_ms, pair.mdevctl.wall_ms),
        rss: ratio(pair.vgpuctl.rss_kb, pair.mdevctl.rss_kb),
        files: ratio(files?.vgpuctl?.host_files ?? null, files?.mdevctl?.host_files ?? null),
      }
    : null;
  results.comparisons.push(row);
  return row;
}

/**
 * What reading the files mdevctl's `types` read costs before any other work: a bare node script that only
 * opens, reads and closes them (bench/floor-read.mjs), node's start-up included. Where that figure alone
 * is above a target's ratio, no Node.js program reading those files meets it.
 */
function readFloor(tree, hostPaths, mdevctlMs) {
  const listFile = path.join(WORK, 'floor-files.txt');
  const paths = hostPaths.map((p) => path.join(tree, p));
  writeFileSync(listFile, `${paths.join('\n')}\n`);
  const nodeRead = net(repeat([process.execPath, path.join(REPO, 'bench/floor-read.mjs'), listFile], { runs: RUNS, env: toolEnv }), 'vgpuctl');
  return {
    files: hostPaths.length,
    node_read_ms: nodeRead.wall_ms,
    node_read_ratio: mdevctlMs ? nodeRead.wall_ms / mdevctlMs : null,
    node_e0_ms: results.startup.node_e0.wall_ms,
  };
}

// --- read-only commands ----------------------------------------------------------------------------
const A160 = '8x A100D, 160 parents x 13 types, 160 definitions';
const T16 = '16x T4, 16 parents x 17 types, 64 definitions';
const roT = fresh(templates.t4, 'ro-t4');
mount(roT);
for (const [tree, host, suffix] of [
  [roA, A160, 'a160'],
  [roT, T16, 't4'],
]) {
  log(`types, list --defined, health on ${host}`);
  const types = compare(vg(tree, 'types', '-o', 'json'), withMdevctl ? md(tree, 'types', '--dumpjson') : null);
  const mdevctlTypesFiles = withMdevctl ? countFiles(md(tree, 'types', '--dumpjson'), { chrooted: true, env: toolEnv, keepPaths: true }) : null;
  if (mdevctlTypesFiles?.host_paths) {
    results.floors[`types-${suffix}`] = readFloor(tree, mdevctlTypesFiles.host_paths, types.mdevctl.wall_ms);
    delete mdevctlTypesFiles.host_paths;
  }
  record(`types-${suffix}`, '`types` (`mdevctl types --dumpjson`)', host, types, {
    vgpuctl: countFiles(vg(tree, 'types', '-o', 'json'), { tree, env: toolEnv }),
    mdevctl: mdevctlTypesFiles,
  });
  const list = compare(vg(tree, 'list', '--defined', '-o', 'json'), withMdevctl ? md(tree, 'list', '--defined', '--dumpjson') : null);
  record(`list-defined-${suffix}`, '`list --defined` (`mdevctl list --defined --dumpjson`)', host, list, {
    vgpuctl: countFiles(vg(tree, 'list', '--defined', '-o', 'json'), { tree, env: toolEnv }),
    mdevctl: withMdevctl ? countFiles(md(tree, 'list', '--defined', '--dumpjson'), { chrooted: true, env: toolEnv }) : null,
  });
  // health exits 0-3 by design (Nagios); the simulated host has no nvidia-smi, so it is not all OK.
  const health = compare(vg(tree, 'health', '-o', 'json'), null, { expectA: [0, 1, 2, 3] });
  record(`health-${suffix}`, '`health` (no mdevctl counterpart)', host, health, {
    vgpuctl: countFiles(vg(tree, 'health', '-o', 'json'), { tree, env: toolEnv }),
  });
}

// --- creating devices --------------------------------------------------------------------------------
/** `vgpuctl --simulate create` on fresh copies: times, and the files of one more (traced) run. */
function vgpuctlCreate(template, name, createArgs, expectCount, runs) {
  const samples = [];
  for (let i = 0; i < runs; i++) {
    const tree = fresh(template, `${name}-${i}`);
    const r = runOnce(vg(tree, '--simulate', ...createArgs, '-o', 'json'), { env: toolEnv });
    if (r.code !== 0) throw new Error(`vgpuctl ${createArgs.join(' ')}: exit ${r.code}: ${r.stderr.slice(0, 600)}`);
    const made = JSON.parse(r.stdout);
    const n = made.created?.length ?? made.changes?.filter((c) => c.action === 'create').length;
    if (n !== expectCount) throw new Error(`vgpuctl ${createArgs.join(' ')} made ${n} devices, expected ${expectCount}`);
    samples.push(r);
    discard(tree);
  }
  const tree = fresh(template, `${name}-strace`);
  const files = countFiles(vg(tree, '--simulate', ...createArgs, '-o', 'json'), { tree, env: toolEnv });
  discard(tree);
  return { summary: net(summarize(samples), 'vgpuctl'), files };
}

/**
 * A loop of mdevctl commands (what operators and the Ansible roles run) on a fresh copy, each create
 * followed by the simulator's settle; returns the loop's time with and without the settles.
 */
async function mdevctlLoop(template, name, steps, expectActive, runs) {
  const loops = [];
  let files = null;
  for (let i = 0; i < runs + (haveStrace ? 1 : 0); i++) {
    const tracing = i === runs;
    const tree = fresh(template, `${name}-${i}`);
    mount(tree);
    const host = new HostRoot(tree);
    let mdevctlMs = 0;
    let settleMs = 0;
    let rss = 0;
    let cpu = 0;
    const counted = { host_files: 0, host_distinct: 0, host_dirs: 0, host_writes: 0, program_files: 0 };
    const invocations = steps.reduce((n, s) => n + s.commands.length, 0);
    for (const step of steps) {
      for (const c of step.commands) {
        if (tracing) {
          const f = countFiles(md(tree, ...c), { chrooted: true, env: toolEnv });
          for (const k of Object.keys(counted)) counted[k] += f[k];
          if (f.code !== 0) throw new Error(`mdevctl ${c.join(' ')} failed under strace`);
          continue;
        }
        const r = runOnce(md(tree, ...c), { env: toolEnv });
        if (r.code !== 0) throw new Error(`mdevctl ${c.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
        mdevctlMs += Math.max(0, r.wall_ms - overhead.chroot_ms);
        rss = Math.max(rss, r.rss_kb ?? 0);
        cpu += r.cpu_ms ?? 0;
      }
      if (step.settle) {
        const t0 = performance.now();
        const s = await settle(host);
        settleMs += performance.now() - t0;
        if (s.refused.length > 0) throw new Error(`settle refused: ${JSON.stringify(s.refused[0])}`);
      }
    }
    const active = (await discoverActiveMdevs(host)).length;
    if (active !== expectActive) throw new Error(`${name}: ${active} devices after the mdevctl loop, expected ${expectActive}`);
    if (tracing) files = counted;
    else loops.push({ wall_ms: mdevctlMs + settleMs, mdevctl_ms: mdevctlMs, settle_ms: settleMs, cpu_ms: cpu, rss_kb: rss, invocations });
    discard(tree);
  }
  const m = (k) => median(loops.map((l) => l[k]));
  return {
    summary: {
      runs: loops.length,
      wall_ms: m('wall_ms'),
      wall_min_ms: Math.min(...loops.map((l) => l.wall_ms)),
      mdevctl_only_ms: m('mdevctl_ms'),
      settle_ms: m('settle_ms'),
      cpu_ms: haveGnuTime ? m('cpu_ms') : null,
      rss_kb: haveGnuTime ? Math.max(...loops.map((l) => l.rss_kb)) : null,
      invocations: loops[0]?.invocations ?? null,
    },
    files,
  };
}

const a160Parents = parentsOf(specs.a160);
const t4Parents = parentsOf(specs.t4);
const createRuns = quick ? 1 : 3;

log('64 creates on the 160-parent host: vgpuctl create --count 64 vs 64 x mdevctl start');
{
  const v = vgpuctlCreate(templates.a160, 'create-a160', ['create', '-t', 'nvidia-692', '--count', '64'], 64, createRuns);
  const m = withMdevctl
    ? await mdevctlLoop(templates.a160, 'mdevctl-start-a160', a160Parents.slice(0, 64).map((p, i) => ({ commands: [['start', '-u', benchUuid(`start ${i}`), '-p', p, '-t', 'nvidia-692']], settle: true })), 64, LOOP_RUNS)
    : null;
  record('create-64-a160', '64 creates: `--simulate create --count 64` vs 64 x `mdevctl start` + settle', A160, { vgpuctl: v.summary, mdevctl: m?.summary ?? null }, { vgpuctl: v.files, mdevctl: m?.files ?? null });
}

log('64 creates on the 16-card T4 host');
{
  const v = vgpuctlCreate(templates.t4, 'create-t4', ['create', '-t', 'nvidia-230', '--count', '64'], 64, createRuns);
  const m = withMdevctl
    ? await mdevctlLoop(templates.t4, 'mdevctl-start-t4', Array.from({ length: 64 }, (_, i) => ({ commands: [['start', '-u', benchUuid(`t4 start ${i}`), '-p', t4Parents[Math.floor(i / 16)], '-t', 'nvidia-230']], settle: true })), 64, LOOP_RUNS)
    : null;
  record('create-64-t4', '64 creates: `--simulate create --count 64` vs 64 x `mdevctl start` + settle', T16, { vgpuctl: v.summary, mdevctl: m?.summary ?? null }, { vgpuctl: v.files, mdevctl: m?.files ?? null });
}

log('apply of a 160-device plan vs 160 x (mdevctl define + mdevctl start)');
{
  const v = vgpuctlCreate(noDefs.a160, 'apply-a160', ['apply', '-f', planFile], 160, createRuns);
  const m = withMdevctl
    ? await mdevctlLoop(
        noDefs.a160,
        'mdevctl-apply-a160',
        a160Parents.map((p) => {
          const u = benchUuid(`apply ${p}`);
          return { commands: [['define', '-u', u, '-p', p, '-t', 'nvidia-692', '--auto'], ['start', '-u', u, '-p', p]], settle: true };
        }),
        160,
        1,
      )
    : null;
  record('apply-160-a160', 'apply of a 160-device plan vs 160 x (`mdevctl define` + `mdevctl start` + settle)', A160.replace(', 160 definitions', ', no definitions'), { vgpuctl: v.summary, mdevctl: m?.summary ?? null }, {
    vgpuctl: v.files,
    mdevctl: m?.files ?? null,
  });
}
discard(roA);
discard(roT);

// --- the curve: 1, 10, 40, 160 parents ---------------------------------------------------------------
log('scaling: 1, 10, 40, 160 parents');
{
  const sizes = [
    { parents: 1, key: 'c1' },
    { parents: 10, key: 'c10' },
    { parents: 40, key: 'c40' },
    { parents: 160, key: 'a160' },
  ];
  const commands = ['types', 'list --defined', 'health', 'create', 'apply'];
  const points = [];
  for (const { parents, key } of sizes) {
    const count = Math.max(1, Math.round(parents * 0.4));
    const point = { parents, types_per_parent: 13, parent_types: parents * 13, creates: count, apply_devices: parents, vgpuctl: {}, mdevctl: {} };
    const main = (id) => results.comparisons.find((c) => c.id === id);
    if (parents === 160) {
      for (const [cmd, id] of [
        ['types', 'types-a160'],
        ['list --defined', 'list-defined-a160'],
        ['health', 'health-a160'],
        ['create', 'create-64-a160'],
        ['apply', 'apply-160-a160'],
      ]) {
        const c = main(id);
        point.vgpuctl[cmd] = { wall_ms: c.vgpuctl.wall_ms, files: c.vgpuctl.files?.host_files ?? null };
        if (c.mdevctl && (cmd === 'types' || cmd === 'list --defined')) point.mdevctl[cmd] = { wall_ms: c.mdevctl.wall_ms, files: c.mdevctl.files?.host_files ?? null };
      }
      points.push(point);
      continue;
    }
    const tree = fresh(templates[key], `curve-${key}`);
    mount(tree);
    const runs = Math.min(RUNS, 5);
    for (const [cmd, v, m] of [
      ['types', ['types', '-o', 'json'], ['types', '--dumpjson']],
      ['list --defined', ['list', '--defined', '-o', 'json'], ['list', '--defined', '--dumpjson']],
      ['health', ['health', '-o', 'json'], null],
    ]) {
      const pair = compare(vg(tree, ...v), withMdevctl && m ? md(tree, ...m) : null, { runs, expectA: cmd === 'health' ? [0, 1, 2, 3] : [0] });
      point.vgpuctl[cmd] = { wall_ms: pair.vgpuctl.wall_ms, files: countFiles(vg(tree, ...v), { tree, env: toolEnv })?.host_files ?? null };
      if (pair.mdevctl) point.mdevctl[cmd] = { wall_ms: pair.mdevctl.wall_ms, files: countFiles(md(tree, ...m), { chrooted: true, env: toolEnv })?.host_files ?? null };
    }
    discard(tree);
    const c = vgpuctlCreate(templates[key], `curve-create-${key}`, ['create', '-t', 'nvidia-692', '--count', String(count)], count, 1);
    point.vgpuctl.create = { wall_ms: c.summary.wall_ms, files: c.files?.host_files ?? null };
    const a = vgpuctlCreate(noDefs[key], `curve-apply-${key}`, ['apply', '-f', planFile], parents, 1);
    point.vgpuctl.apply = { wall_ms: a.summary.wall_ms, files: a.files?.host_files ?? null };
    points.push(point);
  }
  // Linear: going from 40 to 160 parents (4x the parent-types) multiplies the files read by at most ~4
  // (fixed costs make it less); quadratic growth would multiply them by ~16.
  const growth = {};
  for (const tool of ['vgpuctl', 'mdevctl']) {
    for (const cmd of commands) {
      const f40 = points[2][tool][cmd]?.files;
      const f160 = points[3][tool][cmd]?.files;
      if (f40 == null || f160 == null || f40 === 0) continue;
      const factor = f160 / f40;
      growth[`${tool} ${cmd}`] = { files_40: f40, files_160: f160, factor: Number(factor.toFixed(2)), linear: factor <= 4 * 1.15 };
    }
  }
  results.curve = { commands, points, growth_40_to_160: growth };
}

// --- targets ---------------------------------------------------------------------------------------------
{
  const c = (id) => results.comparisons.find((x) => x.id === id);
  const node0 = results.startup.node_e0.wall_ms;
  const allRss = [results.startup.version.rss_kb, ...results.comparisons.map((x) => x.vgpuctl.rss_kb)].filter((x) => x !== null);
  const worstRss = allRss.length > 0 ? Math.max(...allRss) / 1024 : null;
  const t = (id, text, value, limit, met, unit) => results.targets.push({ id, text, value: value === null ? null : Number(value.toFixed(2)), limit, unit, met: value === null ? null : met });
  const typesRatio = c('types-a160').ratio?.wall ?? null;
  t('types', '`types` on the 160-parent host: at most 1.5x mdevctl\'s wall time', typesRatio, 1.5, typesRatio !== null && typesRatio <= 1.5, 'x mdevctl');
  const ver = results.startup.version.wall_ms - node0;
  t('version', '`vgpuctl --version`: at most 15 ms over a bare `node -e 0`', ver, 15, ver <= 15, 'ms over node -e 0');
  const list = c('list-defined-a160').vgpuctl.wall_ms - node0;
  t('list-defined', '`list --defined` with 160 definitions: at most 25 ms over `node -e 0`', list, 25, list <= 25, 'ms over node -e 0');
  const cr = c('create-64-a160');
  const speedup = cr.mdevctl ? cr.mdevctl.wall_ms / cr.vgpuctl.wall_ms : null;
  t('create-64', '64 creates at least 10x faster than 64 x `mdevctl start` (each followed by the simulator\'s settle)', speedup, 10, speedup !== null && speedup >= 10, 'x faster');
  const speedupBare = cr.mdevctl ? cr.mdevctl.mdevctl_only_ms / cr.vgpuctl.wall_ms : null;
  t('create-64-bare', '(for reference) the same against mdevctl alone, the settles left out', speedupBare, 10, speedupBare !== null && speedupBare >= 10, 'x faster');
  const apply = c('apply-160-a160').vgpuctl.wall_ms;
  t('apply-160', 'apply of a 160-device plan under 2 s', apply, 2000, apply < 2000, 'ms');
  const health = c('health-a160').vgpuctl.wall_ms;
  t('health', '`health` on the 160-parent host under 300 ms wall', health, 300, health < 300, 'ms');
  t('rss', 'peak RSS under 80 MB for any command', worstRss, 80, worstRss !== null && worstRss < 80, 'MB');
}

results.machine.loadavg_end = os.loadavg().map((x) => Number(x.toFixed(2)));
results.settings.duration_s = Number(((Date.now() - started) / 1000).toFixed(1));

mkdirSync(path.dirname(OUT), { recursive: true });
writeFileSync(OUT, `${JSON.stringify(results, null, 2)}\n`);
const report = renderReport(results);
process.stdout.write(`${report.text}\n`);
log(`wrote ${path.relative(process.cwd(), OUT) || OUT} (${results.settings.duration_s} s)`);
if (flag('--update-readme')) {
  updateReadme(path.join(REPO, 'README.md'), report.markdown);
  log('updated the table in README.md (## Performance)');
}
cleanup();
