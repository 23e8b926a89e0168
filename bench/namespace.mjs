/**
 * mdevctl runs inside the simulated trees by chroot, with the machine's /usr, /lib, /lib64 and /bin bound
 * read-only into the tree. The benchmark does those bind mounts itself (src/host/chroot-runner.ts does them
 * per command, which would add a node start and four mounts to every mdevctl figure), and only ever inside
 * a private mount namespace: the whole benchmark re-executes itself under `unshare --mount --propagation
 * private`, so the mounts exist for this process tree alone and vanish with it, even if it is killed; a
 * later `rm -rf` of a tree can never walk into the machine's /usr.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import path from 'node:path';

export const IN_NAMESPACE_ENV = 'VGPUCTL_BENCH_PRIVATE_MOUNT_NS';
const SYSTEM_DIRS = ['usr', 'lib', 'lib64', 'bin'];

/** Re-runs this script in a private mount namespace; returns its exit code, or null when that is impossible. */
export function reexecInPrivateNamespace(script, args) {
  const probe = spawnSync('unshare', ['--mount', '--propagation', 'private', 'true'], { stdio: 'ignore' });
  if (probe.status !== 0) return null;
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', process.execPath, script, ...args], {
    stdio: 'inherit',
    env: { ...process.env, [IN_NAMESPACE_ENV]: '1' },
  });
  return r.status ?? 1;
}

export const inPrivateNamespace = () => process.env[IN_NAMESPACE_ENV] === '1';

/** Mount points at or below `dir`, from this namespace's mount table. */
export function mountsUnder(dir) {
  const prefix = path.resolve(dir);
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m) => m !== undefined)
    .map((m) => m.replace(/\\040/g, ' '))
    .filter((m) => m === prefix || m.startsWith(`${prefix}/`));
}

const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr.trim()}`);
};

/** Binds the machine's system directories read-only into `tree`, so that `chroot tree mdevctl` runs. */
export function mountSystemDirs(tree) {
  if (!inPrivateNamespace()) throw new Error('refusing to bind-mount into a tree outside a private mount namespace');
  const made = [];
  const mounted = [];
  for (const d of SYSTEM_DIRS) {
    const source = `/${d}`;
    if (!existsSync(source) || !statSync(source).isDirectory()) continue;
    const target = path.join(tree, d);
    if (!existsSync(target)) {
      mkdirSync(target, { recursive: true });
      made.push(target);
    }
    run('mount', ['--bind', source, target]);
    mounted.push(target);
    run('mount', ['-o', 'remount,bind,ro', target]);
  }
  return () => {
    for (const m of mounted.reverse()) spawnSync('umount', [m], { stdio: 'ignore' });
    for (const d of made.reverse()) {
      try {
        rmdirSync(d);
      } catch {
        /* left for the final check */
      }
    }
    const left = mountsUnder(tree);
    if (left.length > 0) throw new Error(`could not unmount ${left.join(', ')}`);
  };
}
