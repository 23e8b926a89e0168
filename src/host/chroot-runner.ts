/**
 * Runs a host program (mdevctl) inside a host tree, for simulated roots. Started by mdevctl-runner.ts
 * under `unshare --mount --propagation private`, so the read-only bind mounts of /usr, /lib, /lib64 and
 * /bin exist only in this private namespace and vanish with it, even if we are killed: a later `rm -rf`
 * of the tree can never walk into the machine's /usr.
 *
 * argv: <root> <program> [args...]
 */
import { execa } from 'execa';
import { promises as fs } from 'node:fs';
import path from 'node:path';

const SYSTEM_DIRS = ['usr', 'lib', 'lib64', 'bin'];

async function main(): Promise<number> {
  const [root, program, ...args] = process.argv.slice(2);
  if (!root || !program || root === '/') {
    process.stderr.write('chroot-runner: usage: chroot-runner <root other than /> <program> [args...]\n');
    return 2;
  }
  const made: string[] = [];
  const mounted: string[] = [];
  try {
    for (const d of SYSTEM_DIRS) {
      const source = `/${d}`;
      const stat = await fs.stat(source).catch(() => null);
      if (!stat?.isDirectory()) continue;
      const target = path.join(root, d);
      if (!(await fs.stat(target).catch(() => null))) {
        await fs.mkdir(target, { recursive: true });
        made.push(target);
      }
      await execa('mount', ['--bind', source, target]);
      mounted.push(target);
      await execa('mount', ['-o', 'remount,bind,ro', target]);
    }
    const child = await execa('chroot', [root, program, ...args], { stdio: 'inherit', reject: false });
    return child.exitCode ?? 1;
  } finally {
    for (const m of mounted.reverse()) await execa('umount', [m], { reject: false });
    for (const d of made.reverse()) await fs.rmdir(d).catch(() => undefined);
  }
}

process.exitCode = await main();
