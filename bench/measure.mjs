/**
 * Measuring one command: wall time (hrtime around the spawn), CPU time and peak RSS (GNU time's %U %S %M,
 * the child's own rusage), and the files it opened (strace, in a separate run: tracing slows a process).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const TIME = '/usr/bin/time';
export const haveGnuTime = existsSync(TIME) && spawnSync(TIME, ['-f', '%M', 'true'], { stdio: 'ignore' }).status === 0;
export const haveStrace = spawnSync('strace', ['-V'], { stdio: 'ignore' }).status === 0;

const scratch = mkdtempSync(path.join(os.tmpdir(), 'vgpuctl-bench-measure-'));
export const cleanupScratch = () => rmSync(scratch, { recursive: true, force: true });

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * Runs argv once: { wall_ms, cpu_ms, rss_kb, code, stdout, stderr }. GNU time wraps every run (also the
 * baselines), so its own fork and exec cancel out of the differences.
 */
export function runOnce(argv, { env, input } = {}) {
  const out = path.join(scratch, 'time.out');
  const cmd = haveGnuTime ? [TIME, '-f', '%U %S %M', '-o', out, ...argv] : argv;
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd[0], cmd.slice(1), { env: env ?? process.env, input, maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' });
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  let cpu = null;
  let rss = null;
  if (haveGnuTime) {
    const last = readFileSync(out, 'utf8').trim().split('\n').pop() ?? '';
    const [u, s, m] = last.split(' ').map(Number);
    if (Number.isFinite(u) && Number.isFinite(s)) cpu = (u + s) * 1000;
    if (Number.isFinite(m)) rss = m;
  }
  return { wall_ms: wall, cpu_ms: cpu, rss_kb: rss, code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** `runs` runs of argv (after `warmup` unmeasured ones): medians of wall and CPU, the largest RSS. */
export function repeat(argv, { runs = 7, warmup = 1, env, expectCode = [0], before } = {}) {
  const samples = [];
  for (let i = 0; i < warmup + runs; i++) {
    before?.(i);
    const r = runOnce(argv, { env });
    if (!expectCode.includes(r.code)) {
      throw new Error(`${argv.join(' ')} exited with ${r.code ?? r.signal}: ${(r.stderr || r.stdout).trim().slice(0, 600)}`);
    }
    if (i >= warmup) samples.push(r);
  }
  return summarize(samples);
}

export function summarize(samples) {
  return {
    runs: samples.length,
    wall_ms: median(samples.map((s) => s.wall_ms)),
    wall_min_ms: Math.min(...samples.map((s) => s.wall_ms)),
    cpu_ms: haveGnuTime ? median(samples.map((s) => s.cpu_ms)) : null,
    rss_kb: haveGnuTime ? Math.max(...samples.map((s) => s.rss_kb)) : null,
  };
}

/**
 * Files a command opens, from strace: `host` are files of the host tree (under `tree` for vgpuctl; /sys,
 * /etc/mdevctl.d, /proc, /run, /dev inside the chroot for mdevctl), `program` everything else (the node
 * binary's libraries, the bundle; mdevctl's libraries and locale). Directories opened for listing and
 * files opened for writing are counted on their own. `keepPaths`: also the host paths read (host_paths).
 */
export function countFiles(argv, { tree, chrooted = false, env, keepPaths = false } = {}) {
  if (!haveStrace) return null;
  const dir = mkdtempSync(path.join(scratch, 'strace-'));
  const r = spawnSync('strace', ['-f', '-ff', '-qq', '-e', 'trace=open,openat,openat2', '-e', 'status=successful', '-o', path.join(dir, 'trace'), ...argv], {
    env: env ?? process.env,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  const counts = { host_files: 0, host_distinct: 0, host_dirs: 0, host_writes: 0, program_files: 0, code: r.status };
  const distinct = new Set();
  const re = /^open(?:at2?)?\((?:[^,]+, )?"((?:[^"\\]|\\.)*)", ([A-Z_|]+)/;
  for (const f of readdirSync(dir)) {
    for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      const m = re.exec(line);
      if (!m) continue;
      const file = m[1];
      const flags = m[2];
      let hostPath = null;
      if (chrooted) {
        if (/^\/(sys|proc|run|dev)\//.test(file) || file.startsWith('/etc/mdevctl.d')) hostPath = file;
      } else if (tree && file.startsWith(`${tree}/`)) {
        hostPath = file.slice(tree.length);
      }
      if (hostPath === null) {
        if (!flags.includes('O_DIRECTORY')) counts.program_files++;
        continue;
      }
      if (flags.includes('O_DIRECTORY')) counts.host_dirs++;
      else if (/O_WRONLY|O_RDWR|O_CREAT/.test(flags)) counts.host_writes++;
      else {
        counts.host_files++;
        distinct.add(hostPath);
      }
    }
  }
  counts.host_distinct = distinct.size;
  if (keepPaths) counts.host_paths = [...distinct].sort();
  rmSync(dir, { recursive: true, force: true });
  return counts;
}
