/**
 * Bad input to the changing commands: exit 2, one sentence that says what is wrong, and nothing written
 * (the tree is compared with snapshotTree before and after, byte for byte).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { HostRoot } from '../../src/host/host-root.js';
import { snapshotTree } from '../helpers/hosts.js';
import { U, expectFailure, fixtureHost, sim } from './lifecycle-helpers.js';

const P40 = '0000:82:00.0';

type Case = [name: string, args: string[], message: RegExp, env?: NodeJS.ProcessEnv];

const cases: Case[] = [
  // UUIDs
  ['bad UUID for create', ['create', '--profile', 'P40-6Q', '-u', 'nope'], /^vgpuctl: error: "nope" is not a UUID; expected the form 334852fe-079b-11ee-9fc7-77463608f467 \(generate one with uuidgen, or omit -u\)\n$/],
  ['UUID one digit short', ['create', '--profile', 'P40-6Q', '-u', U[0].slice(0, -1)], /is not a UUID/],
  ['path as UUID for destroy', ['destroy', '-u', '../../etc/passwd'], /"\.\.\/\.\.\/etc\/passwd" is not a UUID/],
  ['bad UUID for define', ['define', '-u', 'x', '-p', P40, '-t', 'nvidia-50'], /"x" is not a UUID/],
  ['bad UUID for start', ['start', '-u', '1234'], /"1234" is not a UUID/],
  ['bad UUID for stop', ['stop', '-u', 'zzzzzzzz-079b-11ee-9fc7-77463608f467'], /is not a UUID/],
  ['bad UUID for modify', ['modify', '-u', '', '--auto'], /"" is not a UUID/],
  ['bad UUID for undefine', ['undefine', '-u', 'all'], /"all" is not a UUID/],
  ['the same UUID twice', ['create', '--profile', 'P40-6Q', '--count', '2', '-u', U[0], U[0].toUpperCase()], new RegExp(`UUID ${U[0]} is given twice; each device needs its own`)],
  ['-u count not matching --count (fewer)', ['create', '--profile', 'P40-6Q', '--count', '2', '-u', U[0]], /^vgpuctl: error: --count 2 but 1 UUID\(s\) given with -u; give one UUID per device, or leave out -u\n$/],
  ['-u count not matching --count (more)', ['create', '--profile', 'P40-6Q', '--count', '1', '-u', U[0], U[1]], /--count 1 but 2 UUID\(s\) given with -u/],
  // profiles and types
  ['unknown profile', ['create', '--profile', 'P40-99Q'], /^vgpuctl: error: unknown profile "P40-99Q"; profiles look like P40-12C \(see 'vgpuctl profiles'\)\n$/],
  ['unknown profile with -p', ['create', '--profile', 'P40-99Q', '-p', '82:00.0'], /0000:82:00\.0 does not offer P40-99Q\. "P40-99Q" is not a known vGPU profile \(see 'vgpuctl profiles'\)\. 0000:82:00\.0 offers: nvidia-156 \(P40-2B\)/],
  ['unknown profile for define', ['define', '-u', U[0], '-p', P40, '--profile', 'Q40-1Q'], /"Q40-1Q" is not a known vGPU profile/],
  ['profile that is no name', ['create', '--profile', '../P40-6Q'], /"\.\.\/P40-6Q" is not a profile name; profiles look like P40-12C/],
  ['-t ../x', ['create', '-t', '../x'], /^vgpuctl: error: "\.\.\/x" is not an mdev type id; type ids look like nvidia-286 \(see 'vgpuctl types'\)\n$/],
  ['-t with a slash', ['create', '-t', 'nvidia-50/../../../../etc', '-p', P40], /is not an mdev type id/],
  ['-t for define', ['define', '-u', U[0], '-p', P40, '-t', '..'], /"\.\." is not an mdev type id/],
  ['both -t and --profile', ['create', '-t', 'nvidia-50', '--profile', 'P40-6Q'], /^vgpuctl: error: give either -t TYPE or --profile PROFILE, not both\n$/],
  ['neither -t nor --profile', ['create', '--count', '2'], /say what to create: -t TYPE \(e\.g\. nvidia-286\) or --profile PROFILE/],
  // parents
  ['path-like --parent', ['create', '--profile', 'P40-6Q', '-p', '../../etc'], /^vgpuctl: error: "\.\.\/\.\.\/etc" is not a parent device name; give a PCI address such as 0000:82:00\.0 \(see 'vgpuctl types'\)\n$/],
  ['absolute path as --parent', ['define', '-u', U[0], '-p', '/etc', '-t', 'nvidia-50'], /"\/etc" is not a parent device name/],
  ['.. as --parent', ['undefine', '-u', U[0], '-p', '..'], /"\.\." is not a parent device name/],
  ['incomplete PCI address', ['create', '--profile', 'P40-6Q', '-p', '82:00'], /"82:00" is not a complete PCI address; write it as domain:bus:slot\.function/],
  // counts
  ['--count 0', ['create', '--profile', 'P40-6Q', '--count', '0'], /^vgpuctl: error: invalid --count: must be at least 1\n$/],
  ['--count abc', ['create', '--profile', 'P40-6Q', '--count', 'abc'], /^vgpuctl: error: invalid --count: must be a whole number\n$/],
  ['--count -1', ['create', '--profile', 'P40-6Q', '--count=-1'], /invalid --count: must be at least 1/],
  ['--count 1.5', ['create', '--profile', 'P40-6Q', '--count', '1.5'], /invalid --count: must be a whole number/],
  ['--count 1025', ['create', '--profile', 'P40-6Q', '--count', '1025'], /invalid --count: must be at most 1024/],
  // start modes and option combinations
  ['--auto without --define', ['create', '--profile', 'P40-6Q', '--auto'], /^vgpuctl: error: --auto and --manual go with --define\n$/],
  ['--manual without --define', ['create', '--profile', 'P40-6Q', '--manual'], /--auto and --manual go with --define/],
  ['--auto with --manual', ['define', '-u', U[0], '-p', P40, '-t', 'nvidia-50', '--auto', '--manual'], /--auto and --manual exclude each other/],
  ['modify without a start mode', ['modify', '-u', U[0]], /say how it should start: --auto or --manual/],
  ['start without -u', ['start'], /say which device: -u UUID, or --autostart for every auto definition/],
  ['start --autostart with -u', ['start', '--autostart', '-u', U[0]], /--autostart starts every auto definition; leave out -u/],
  ['start --autostart --dry-run', ['start', '--autostart', '--dry-run'], /--autostart has no --dry-run/],
  ['define of an inactive UUID without parent and type', ['define', '-u', U[0]], new RegExp(`${U[0]} is not active, so its parent and type must be given: -p PARENT and -t TYPE \\(or --profile\\)`)],
  ['define -p without a type of an inactive UUID', ['define', '-u', U[0], '-p', P40], new RegExp(`${U[0]} is not active on ${P40}; give its type with -t TYPE or --profile`)],
  // common options
  ['--backend foo', ['create', '--profile', 'P40-6Q', '--backend', 'foo'], /invalid --backend: .*"sysfs"\|"mdevctl"/],
  ['--lock-timeout 0', ['create', '--profile', 'P40-6Q', '--lock-timeout', '0'], /^vgpuctl: error: invalid --lock-timeout: /],
  ['--lock-timeout abc', ['stop', '-u', U[0], '--lock-timeout', 'abc'], /^vgpuctl: error: invalid --lock-timeout: must be a number of seconds\n$/],
  ['bad fault spec', ['create', '--profile', 'P40-6Q'], /VGPUCTL_SIM_FAULTS: cannot read "create#x=EIO"; write e\.g\. create#2=EIO/, { VGPUCTL_SIM_FAULTS: 'create#x=EIO' }],
];

describe('bad input: exit 2, one clear sentence, nothing written', () => {
  let host: HostRoot;
  let pristine: Map<string, string>;
  beforeAll(async () => {
    host = await fixtureHost('p40-seed004');
    pristine = await snapshotTree(host.root);
  });

  it.each(cases)('%s', async (_name, args, message, env) => {
    for (const json of [false, true]) {
      const r = await sim(host, json ? [...args, '-o', 'json'] : args, env ?? {});
      expectFailure(r, 2, message);
      expect(await snapshotTree(host.root)).toEqual(pristine);
    }
  });

  it('unknown options are usage errors from the parser', async () => {
    const r = await sim(host, ['create', '--profile', 'P40-6Q', '--colour']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown option '--colour'/);
    expect(await snapshotTree(host.root)).toEqual(pristine);
  });

  it('the same bad input on the other fixtures', async () => {
    for (const fixture of ['t4x4-seed001', 'a100d-sriov-seed002', 'leftovers', 'samples-mtty']) {
      const h = await fixtureHost(fixture);
      const before = await snapshotTree(h.root);
      expectFailure(await sim(h, ['create', '--profile', 'X-1Q']), 2, /unknown profile "X-1Q"/);
      expectFailure(await sim(h, ['create', '-t', 'mtty-1', '-p', '../mtty']), 2, /not a parent device name/);
      expectFailure(await sim(h, ['create', '-t', 'mtty-1', '--count', '0']), 2, /must be at least 1/);
      expectFailure(await sim(h, ['destroy', '-u', 'feb0b955']), 2, /not a UUID/);
      expect(await snapshotTree(h.root), fixture).toEqual(before);
    }
  });
});
