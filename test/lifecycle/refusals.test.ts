/**
 * Every refusal of a changing command: exit code 1, one sentence on stderr naming the cause, and the host
 * tree byte for byte what it was (no device, no definition, no lock directory left behind).
 */
import { describe, expect, it } from 'vitest';
import type { HostRoot } from '../../src/host/host-root.js';
import { snapshotTree } from '../helpers/hosts.js';
import type { CliResult } from '../helpers/cli.js';
import {
  U,
  avail,
  domainXml,
  expectActive,
  expectFailure,
  expectInactive,
  fixtureHost,
  mdevctlBytes,
  put,
  putQemu,
  readDef,
  sim,
  simJson,
  treeDiff,
} from './lifecycle-helpers.js';

/** Runs a command that must be refused with exit 1 and leave the tree exactly as it was. */
async function refused(host: HostRoot, args: string[], message: RegExp, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const before = await snapshotTree(host.root);
  const r = await sim(host, args, env);
  expectFailure(r, 1, message);
  expect(treeDiff(before, await snapshotTree(host.root)), `${args.join(' ')} changed the tree`).toEqual({ added: [], removed: [], changed: [] });
  return r;
}

const P40 = '0000:82:00.0';
const LEFT_RUNNING = '334855e2-079b-11ee-9fc9-83e0dccb6713'; // y-k8s-n-1, running (domain + qemu 41977)
const LEFT_OFF = '33485650-079b-11ee-9fca-8f6415d2734c'; // defined auto, named by shut-off y-k8s-n-2
const LEFT_UNDEFINED = '3348556a-079b-11ee-9fc8-7fb0c612aedd'; // active, never defined
const LEFT_ORPHAN = '69dd62f7-7825-4dc6-89a2-be4c9bcea5bc'; // defined under 0000:83:00.0, which is gone
const T4_IN_VM = 'a02e5c35-5a0b-48fa-a11d-21e9747cf09e';

describe('not an mdev parent', () => {
  it('a passthrough GPU, a missing address, an SR-IOV physical function, a sample device', async () => {
    const t4 = await fixtureHost('t4x4-seed001');
    await refused(t4, ['create', '--profile', 'T4-8Q', '-p', '0000:86:00.0'], /^vgpuctl: error: 0000:86:00\.0 is not an mdev parent; see 'vgpuctl types' for the parents of this host\n$/);
    await refused(t4, ['create', '-t', 'nvidia-233', '-p', '99:00.0'], /0000:99:00\.0 is not an mdev parent/);
    const a100 = await fixtureHost('a100d-sriov-seed002');
    await refused(a100, ['create', '--profile', 'A100D-4C', '-p', '0000:21:00.0'], /0000:21:00\.0 is not an mdev parent/);
    const samples = await fixtureHost('samples-mtty');
    await refused(samples, ['create', '-t', 'mtty-1', '-p', 'mtty0'], /mtty0 is not an mdev parent/);
  });

  it('start of a definition whose parent is gone (leftovers)', async () => {
    const host = await fixtureHost('leftovers');
    await refused(host, ['start', '-u', LEFT_ORPHAN], /the parent 0000:83:00\.0 of 69dd62f7-7825-4dc6-89a2-be4c9bcea5bc is not present: the GPU is missing, its driver is not loaded, or SR-IOV is not enabled \(vgpuctl gpus\)/);
    await refused(host, ['create', '--profile', 'P40-6Q', '-p', '0000:83:00.0'], /0000:83:00\.0 is not an mdev parent/);
  });
});

describe('type or profile not offered', () => {
  it('on the parent: the message lists what the parent offers', async () => {
    const t4 = await fixtureHost('t4x4-seed001');
    const r = await refused(t4, ['create', '-t', 'nvidia-50', '-p', '3b:00.0'], /^vgpuctl: error: 0000:3b:00\.0 does not offer nvidia-50\. 0000:3b:00\.0 offers: nvidia-222 \(T4-1B\), nvidia-223 \(T4-2B\)/);
    expect(r.stderr).toContain('nvidia-233 (T4-8Q)');
    expect(r.stderr).toContain('nvidia-321 (T4-16C).');
    await refused(t4, ['create', '--profile', 'P40-6Q', '-p', '0000:3b:00.0'], /0000:3b:00\.0 does not offer P40-6Q\. 0000:3b:00\.0 offers: nvidia-222 \(T4-1B\)/);
  });

  it('on the parent, offered elsewhere: the message says which parents offer it', async () => {
    const host = await fixtureHost('samples-mtty');
    await refused(host, ['create', '-t', 'mdpy-vga', '-p', 'mtty'], /^vgpuctl: error: mtty does not offer mdpy-vga\. It is offered by mdpy\. mtty offers: mtty-1, mtty-2\.\n$/);
  });

  it('by no parent of the host', async () => {
    const p40 = await fixtureHost('p40-seed004');
    await refused(p40, ['create', '--profile', 'T4-8Q'], /no parent on this host offers T4-8Q; see 'vgpuctl types' for what the GPUs offer/);
    await refused(p40, ['create', '-t', 'nvidia-233', '--count', '2'], /no parent on this host offers nvidia-233/);
  });

  it('start of a definition whose type the parent does not offer (leftovers nvidia-999)', async () => {
    const host = await fixtureHost('leftovers');
    await refused(host, ['start', '-u', 'd5603837-d2d2-44e5-9e5b-1395873a6579'], /0000:82:00\.0 does not offer nvidia-999\. 0000:82:00\.0 offers: .*nvidia-50 \(P40-6Q\)/);
  });
});

describe('capacity', () => {
  it('no P40-12C left: the message names the VMs that hold them, each once', async () => {
    const host = await fixtureHost('p40-seed004');
    await simJson(host, ['create', '--profile', 'P40-12C', '--count', '2', '-u', U[0], U[1]]);
    // vm-a runs (libvirt status XML and its qemu process); vm-b runs under libvirt.
    await put(host, '/etc/libvirt/qemu/vm-a.xml', domainXml('vm-a', [U[0]], false));
    await put(host, '/run/libvirt/qemu/vm-a.xml', domainXml('vm-a', [U[0]], true));
    await putQemu(host, 7001, 'vm-a', [U[0]]);
    await put(host, '/etc/libvirt/qemu/vm-b.xml', domainXml('vm-b', [U[1]], false));
    await put(host, '/run/libvirt/qemu/vm-b.xml', domainXml('vm-b', [U[1]], true));
    await refused(host, ['create', '--profile', 'P40-12C'], /^vgpuctl: error: no instances of P40-12C left on 0000:82:00\.0: 2 of 2 in use by VMs vm-a, vm-b; free one, or pick another GPU \(vgpuctl types --available\)\n$/);
    await refused(host, ['create', '--profile', 'P40-12C', '-p', P40], /no instances of P40-12C left on 0000:82:00\.0: 2 of 2 in use by VMs vm-a, vm-b/);
  });

  it('a VM that is shut off is named as such', async () => {
    const host = await fixtureHost('p40-seed004');
    await simJson(host, ['create', '--profile', 'P40-24C', '-u', U[0]]);
    await put(host, '/etc/libvirt/qemu/idle.xml', domainXml('idle', [U[0]], false));
    await refused(host, ['create', '--profile', 'P40-24C'], /no instances of P40-24C left on 0000:82:00\.0: 1 of 1 in use by VMs idle \(off\)/);
  });

  it('T4: the running guest is named once although libvirt and /proc both show it', async () => {
    const host = await fixtureHost('t4x4-seed001');
    await refused(host, ['create', '--profile', 'T4-8Q', '-p', '18:00.0'], /^vgpuctl: error: no instances of T4-8Q left on 0000:18:00\.0: 2 of 2 in use by VMs vdi-t4-01; free one, or pick another GPU \(vgpuctl types --available\)\n$/);
  });

  it('--count over what is available is refused whole: nothing is created', async () => {
    const host = await fixtureHost('p40-seed004');
    await refused(host, ['create', '--profile', 'P40-12C', '--count', '3'], /cannot place 3 x P40-12C: only 2 fit \(0000:82:00\.0: 2 free\); lower --count or free devices first/);
    await refused(host, ['create', '--profile', 'P40-12C', '--count', '3', '-p', '82:00.0'], /cannot place 3 x P40-12C: only 2 fit/);
    const left = await fixtureHost('leftovers');
    await refused(left, ['create', '--profile', 'P40-6Q', '--count', '3'], /cannot place 3 x P40-6Q: only 2 fit/);
    expect(await avail(left, P40, 'nvidia-50')).toBe(2);
  });

  it('the driver itself refusing (EUSERS) is a sentence too, and nothing is left', async () => {
    const host = await fixtureHost('p40-seed004');
    await refused(host, ['create', '--profile', 'P40-12C', '-u', U[0]], /no instances of P40-12C \(nvidia-286\) left on 0000:82:00\.0: 0 of 2 in use; free one, or pick another GPU/, {
      VGPUCTL_SIM_FAULTS: 'create#1=EUSERS',
    });
    await expectInactive(host, U[0]);
  });

  it('sample driver type at 0', async () => {
    const host = await fixtureHost('samples-mtty');
    await simJson(host, ['create', '-t', 'mbochs-large', '--count', '4']);
    await refused(host, ['create', '-t', 'mbochs-large'], /no instances of mbochs-large left on mbochs: 4 in use/);
  });
});

describe('placement: a second type on a one-type-per-GPU board', () => {
  it('P40: P40-12C next to P40-6Q', async () => {
    const host = await fixtureHost('p40-seed004');
    await simJson(host, ['create', '--profile', 'P40-6Q', '-u', U[0]]);
    await refused(host, ['create', '--profile', 'P40-12C'], /^vgpuctl: error: no instances of P40-12C left on 0000:82:00\.0: the GPU already carries nvidia-50 and allows one vGPU type per GPU; free one, or pick another GPU \(vgpuctl types --available\)\n$/);
    await refused(host, ['create', '-t', 'nvidia-286', '-p', P40, '--count', '1'], /the GPU already carries nvidia-50 and allows one vGPU type per GPU/);
    // start of a definition of another type is refused the same way
    await simJson(host, ['define', '-u', U[1], '-p', P40, '-t', 'nvidia-287']);
    await refused(host, ['start', '-u', U[1]], /no instances of P40-24C \(nvidia-287\) left on 0000:82:00\.0: the GPU already carries nvidia-50 and allows one vGPU type per GPU/);
  });

  it('T4: T4-4Q on the GPU that carries two T4-8Q', async () => {
    const host = await fixtureHost('t4x4-seed001');
    await refused(host, ['create', '--profile', 'T4-4Q', '-p', '0000:18:00.0'], /no instances of T4-4Q left on 0000:18:00\.0: the GPU already carries nvidia-233 and allows one vGPU type per GPU/);
  });
});

describe('UUID already in use, on any parent', () => {
  it('active (leftovers, upper case accepted)', async () => {
    const host = await fixtureHost('leftovers');
    await refused(host, ['create', '--profile', 'P40-6Q', '-u', LEFT_UNDEFINED.toUpperCase()], /UUID 3348556a-079b-11ee-9fc8-7fb0c612aedd is already used by an active mdev \(nvidia-50 on 0000:82:00\.0\); choose another UUID/);
  });

  it('defined under a parent that is gone (leftovers)', async () => {
    const host = await fixtureHost('leftovers');
    await refused(host, ['create', '--profile', 'P40-6Q', '-u', LEFT_ORPHAN], /UUID 69dd62f7-7825-4dc6-89a2-be4c9bcea5bc is already defined \(nvidia-50 on 0000:83:00\.0, \/etc\/mdevctl\.d\/0000:83:00\.0\/69dd62f7-7825-4dc6-89a2-be4c9bcea5bc\)/);
  });

  it('defined, not active (leftovers y-k8s-n-2), and one of several in --count', async () => {
    const host = await fixtureHost('leftovers');
    await refused(host, ['create', '--profile', 'P40-6Q', '--count', '2', '-u', U[0], LEFT_OFF], /UUID 33485650-079b-11ee-9fca-8f6415d2734c is already defined \(nvidia-50 on 0000:82:00\.0/);
    await expectInactive(host, U[0]);
  });

  it('active on another VF (a100d)', async () => {
    const host = await fixtureHost('a100d-sriov-seed002');
    await refused(host, ['create', '--profile', 'A100D-1-10C', '-p', '0000:81:01.0', '-u', '5c630867-a673-5d75-aa31-a499e6c7cb19'], /UUID 5c630867-a673-5d75-aa31-a499e6c7cb19 is already used by an active mdev \(nvidia-700 on 0000:21:00\.4\)/);
  });

  it('define of an active UUID as something else', async () => {
    const host = await fixtureHost('leftovers');
    await refused(host, ['define', '-u', LEFT_UNDEFINED, '-p', P40, '-t', 'nvidia-286'], /3348556a-079b-11ee-9fc8-7fb0c612aedd is active as nvidia-50 on 0000:82:00\.0; define it as it is \(vgpuctl define -u 3348556a-079b-11ee-9fc8-7fb0c612aedd\) or stop it first/);
  });
});

describe('a device a VM uses is never stopped or destroyed', () => {
  it('running libvirt domain and qemu (leftovers y-k8s-n-1): stop and destroy refused, even with --force', async () => {
    const host = await fixtureHost('leftovers');
    const why = 'it is in use by domain y-k8s-n-1, qemu y-k8s-n-1 \\(pid 41977\\); shut the VM down first \\(--force does not override this\\)';
    for (const verb of ['stop', 'destroy']) {
      await refused(host, [verb, '-u', LEFT_RUNNING], new RegExp(`^vgpuctl: error: will not ${verb} ${LEFT_RUNNING}: ${why}\\n$`));
      await refused(host, [verb, '-u', LEFT_RUNNING, '--force'], new RegExp(`will not ${verb} ${LEFT_RUNNING}: ${why}`));
    }
    await refused(host, ['destroy', '-u', LEFT_RUNNING, '--keep-definition', '--force'], /will not destroy/);
    await expectActive(host, LEFT_RUNNING, P40, 'nvidia-50');
  });

  it('T4 guest vdi-t4-01', async () => {
    const host = await fixtureHost('t4x4-seed001');
    await refused(host, ['stop', '-u', T4_IN_VM, '--force'], /will not stop a02e5c35-5a0b-48fa-a11d-21e9747cf09e: it is in use by domain vdi-t4-01, qemu vdi-t4-01 \(pid 48213\)/);
    await refused(host, ['destroy', '-u', T4_IN_VM, '--force'], /will not destroy a02e5c35-5a0b-48fa-a11d-21e9747cf09e: it is in use by domain vdi-t4-01/);
  });

  it('a qemu process alone (no libvirt) holding the device', async () => {
    const host = await fixtureHost('p40-seed004');
    await simJson(host, ['create', '--profile', 'P40-6Q', '-u', U[0]]);
    await putQemu(host, 5151, 'hand-made', [U[0]]);
    for (const args of [['stop', '-u', U[0]], ['stop', '-u', U[0], '--force'], ['destroy', '-u', U[0], '--force']]) {
      await refused(host, args, new RegExp(`will not (stop|destroy) ${U[0]}: it is in use by qemu hand-made \\(pid 5151\\); shut the VM down first`));
    }
    await expectActive(host, U[0], P40, 'nvidia-50');
  });

  it('a running libvirt domain alone (no qemu in /proc)', async () => {
    const host = await fixtureHost('p40-seed004');
    await simJson(host, ['create', '--profile', 'P40-6Q', '-u', U[0], '--define']);
    await put(host, '/run/libvirt/qemu/win11.xml', domainXml('win11', [U[0]], true));
    await refused(host, ['stop', '-u', U[0], '--force'], new RegExp(`will not stop ${U[0]}: it is in use by domain win11; shut the VM down first`));
    await refused(host, ['destroy', '-u', U[0], '--force'], new RegExp(`will not destroy ${U[0]}: it is in use by domain win11`));
    expect(await readDef(host, P40, U[0])).toBe(mdevctlBytes('nvidia-50', 'manual'));
  });

  it('named only by an inactive domain: refused without --force, naming the domain; allowed with --force', async () => {
    const host = await fixtureHost('leftovers');
    await refused(
      host,
      ['destroy', '-u', LEFT_OFF],
      /^vgpuctl: error: will not destroy 33485650-079b-11ee-9fca-8f6415d2734c: libvirt domain y-k8s-n-2 is defined with it and would fail to start; remove it from the domain first, or use --force\n$/,
    );
    const forced = await simJson(host, ['destroy', '-u', LEFT_OFF, '--force']);
    expect(forced.destroyed).toEqual({ uuid: LEFT_OFF, stopped: false, undefined: [P40], units_removed: [] });
    expect(await readDef(host, P40, LEFT_OFF)).toBeNull();
  });

  it('an active device named by an inactive domain: stop and destroy need --force', async () => {
    const host = await fixtureHost('p40-seed004');
    await simJson(host, ['create', '--profile', 'P40-6Q', '-u', U[0], '--define']);
    await put(host, '/etc/libvirt/qemu/spare.xml', domainXml('spare', [U[0]], false));
    await refused(host, ['stop', '-u', U[0]], new RegExp(`will not stop ${U[0]}: libvirt domain spare is defined with it`));
    await refused(host, ['destroy', '-u', U[0]], new RegExp(`will not destroy ${U[0]}: libvirt domain spare is defined with it`));
    await simJson(host, ['stop', '-u', U[0], '--force']);
    await expectInactive(host, U[0]);
    await simJson(host, ['start', '-u', U[0]]);
    await simJson(host, ['destroy', '-u', U[0], '--force']);
    await expectInactive(host, U[0]);
    expect(await readDef(host, P40, U[0])).toBeNull();
  });
});

describe('define over an existing definition', () => {
  it('refused without --force (leftovers, a100d), and the file is untouched', async () => {
    const left = await fixtureHost('leftovers');
    await refused(
      left,
      ['define', '-u', LEFT_OFF, '-p', P40, '-t', 'nvidia-50', '--manual'],
      /^vgpuctl: error: 33485650-079b-11ee-9fca-8f6415d2734c is already defined \(nvidia-50 on 0000:82:00\.0, start auto, \/etc\/mdevctl\.d\/0000:82:00\.0\/33485650-079b-11ee-9fca-8f6415d2734c\); use --force to replace the definition\n$/,
    );
    await refused(left, ['define', '-u', LEFT_RUNNING, '--auto'], /334855e2-079b-11ee-9fc9-83e0dccb6713 is already defined \(nvidia-50 on 0000:82:00\.0, start auto/);
    // defined under a parent that is gone: still "already defined", whatever parent is asked for
    await refused(left, ['define', '-u', LEFT_ORPHAN, '-p', P40, '-t', 'nvidia-50'], /69dd62f7-7825-4dc6-89a2-be4c9bcea5bc is already defined \(nvidia-50 on 0000:83:00\.0/);
    const a100 = await fixtureHost('a100d-sriov-seed002');
    await refused(a100, ['define', '-u', '5c630867-a673-5d75-aa31-a499e6c7cb19'], /already defined \(nvidia-700 on 0000:21:00\.4, start manual.*use --force/);
  });
});

describe('nothing to act on', () => {
  it('unknown UUIDs for start, stop, modify, undefine, destroy', async () => {
    const host = await fixtureHost('p40-seed004');
    await refused(host, ['start', '-u', U[4]], new RegExp(`no definition of ${U[4]}; see 'vgpuctl list --defined'`));
    await refused(host, ['stop', '-u', U[4]], new RegExp(`no mdev ${U[4]} on this host, active or defined`));
    await refused(host, ['modify', '-u', U[4], '--auto'], new RegExp(`no definition of ${U[4]}`));
    await refused(host, ['undefine', '-u', U[4]], new RegExp(`no definition of ${U[4]}`));
    await refused(host, ['destroy', '-u', U[4]], new RegExp(`no mdev ${U[4]} on this host: not active, not defined, no boot unit`));
  });

  it('modify of an active device that has no definition says how to define it', async () => {
    const host = await fixtureHost('leftovers');
    await refused(host, ['modify', '-u', LEFT_UNDEFINED, '--auto'], /3348556a-079b-11ee-9fc8-7fb0c612aedd is active \(nvidia-50 on 0000:82:00\.0\) but not defined; persist it with 'vgpuctl define -u 3348556a-079b-11ee-9fc8-7fb0c612aedd'/);
  });
});
