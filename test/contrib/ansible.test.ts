/**
 * The Ansible example applies a plan on a simulated host through Debian's ansible-core (connection local)
 * and reports `changed` correctly: changed on the first run, ok on the second.
 */
import { execa } from 'execa';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostFrom, tempDir } from '../helpers/hosts.js';
import { skipWithout } from '../helpers/tools.js';

const skip = skipWithout('ansible-playbook');
const repo = path.resolve(import.meta.dirname, '../..');

function recap(stdout: string): { ok: number; changed: number; failed: number } {
  const m = /localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)/.exec(stdout);
  if (!m) throw new Error(`no PLAY RECAP in:\n${stdout}`);
  return { ok: Number(m[1]), changed: Number(m[2]), failed: Number(m[3]) };
}

describe.skipIf(skip)('contrib/ansible/vgpuctl-apply.yml', () => {
  it('applies the plan once, then reports no change', async () => {
    const host = await hostFrom('p40-seed004');
    const dir = tempDir();
    const vars = {
      vgpuctl_plan: { version: 1, defaults: { autostart: true }, gpus: [{ select: { address: '0000:82:00.0' }, profile: 'P40-12C', count: 2 }] },
      vgpuctl_plan_file: path.join(dir, 'plan.yaml'),
      vgpuctl_bin: path.join(repo, 'bin', 'vgpuctl'),
      vgpuctl_global_args: ['--root', host.root, '--simulate'],
    };
    const varsFile = path.join(dir, 'vars.json');
    writeFileSync(varsFile, JSON.stringify(vars));
    const play = () =>
      execa('ansible-playbook', ['-i', 'localhost,', '-c', 'local', path.join(repo, 'contrib/ansible/vgpuctl-apply.yml'), '-e', `@${varsFile}`], {
        reject: false,
        env: { ANSIBLE_NOCOLOR: '1', ANSIBLE_HOST_KEY_CHECKING: 'False', ANSIBLE_LOCAL_TEMP: path.join(dir, 'tmp'), ANSIBLE_REMOTE_TEMP: path.join(dir, 'tmp') },
      });
    const first = await play();
    expect(first.exitCode, first.stdout + first.stderr).toBe(0);
    expect(recap(first.stdout)).toMatchObject({ failed: 0 });
    // plan dir + plan file + apply: three changed tasks on the first run
    expect(recap(first.stdout).changed).toBe(3);
    const second = await play();
    expect(second.exitCode, second.stdout + second.stderr).toBe(0);
    expect(recap(second.stdout)).toMatchObject({ changed: 0, failed: 0 });
    const list = await execa(path.join(repo, 'bin', 'vgpuctl'), ['--root', host.root, 'list', '--all', '-o', 'json']);
    expect(JSON.parse(list.stdout).devices.filter((d: any) => d.active && d.defined && d.autostart)).toHaveLength(2);
  }, 120_000);
});
