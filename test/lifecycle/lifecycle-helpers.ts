/**
 * Helpers shared by the lifecycle tests: run a changing command on the simulator, read what the simulated
 * kernel and /etc hold afterwards, and compare whole trees.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import type { HostRoot } from '../../src/host/host-root.js';
import { sim, type CliResult } from '../helpers/cli.js';
import { snapshotTree } from '../helpers/hosts.js';

export { fixtureCopy as fixtureHost } from '../helpers/hosts.js';
export { sim } from '../helpers/cli.js';

/** Runs a command that must succeed and returns its JSON output (fails the test with stderr otherwise). */
export async function simJson(host: HostRoot, args: string[], env: NodeJS.ProcessEnv = {}): Promise<any> {
  const r = await sim(host, [...args, '-o', 'json'], env);
  expect(r.stderr, `vgpuctl ${args.join(' ')}`).toBe('');
  expect(r.code, `vgpuctl ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.json();
}

/** available_instances of one type, read from the tree as the kernel shows it. */
export async function avail(host: HostRoot, parent: string, type: string): Promise<number> {
  const text = await fs.readFile(host.path(`/sys/class/mdev_bus/${parent}/mdev_supported_types/${type}/available_instances`), 'utf8');
  return Number.parseInt(text, 10);
}

/** available_instances of every type of a parent. */
export async function availAll(host: HostRoot, parent: string): Promise<Record<string, number>> {
  const dir = host.path(`/sys/class/mdev_bus/${parent}/mdev_supported_types`);
  const out: Record<string, number> = {};
  // Entries starting with a dot are not types (the simulator keeps its sample-driver pool file there).
  for (const t of (await fs.readdir(dir)).filter((n) => !n.startsWith('.')).sort()) out[t] = await avail(host, parent, t);
  return out;
}

export async function lexists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  );
}

/** The /sys/bus/mdev/devices/<uuid> link exists and resolves to a device under the given parent and type. */
export async function expectActive(host: HostRoot, uuid: string, parent: string, type: string): Promise<void> {
  const link = host.path(`/sys/bus/mdev/devices/${uuid}`);
  expect(await lexists(link), `${link} exists`).toBe(true);
  const dev = await fs.realpath(link);
  const parentDir = await fs.realpath(host.path(`/sys/class/mdev_bus/${parent}`));
  expect(path.dirname(dev)).toBe(parentDir);
  expect(path.basename(await fs.realpath(path.join(dev, 'mdev_type')))).toBe(type);
  expect(await lexists(host.path(`/sys/class/mdev_bus/${parent}/mdev_supported_types/${type}/devices/${uuid}`))).toBe(true);
}

export async function expectInactive(host: HostRoot, uuid: string): Promise<void> {
  expect(await lexists(host.path(`/sys/bus/mdev/devices/${uuid}`)), `/sys/bus/mdev/devices/${uuid} is gone`).toBe(false);
}

export const defPath = (host: HostRoot, parent: string, uuid: string): string => host.path(`/etc/mdevctl.d/${parent}/${uuid}`);

/** The definition file's bytes, or null when there is none. */
export async function readDef(host: HostRoot, parent: string, uuid: string): Promise<string | null> {
  return fs.readFile(defPath(host, parent, uuid), 'utf8').catch(() => null);
}

/**
 * The exact bytes mdevctl 1.2 writes (serde_json::to_string_pretty: two-space indent, no trailing newline).
 * Written out by hand here, independent of vgpuctl's formatDefinition.
 */
export function mdevctlBytes(type: string, start: 'auto' | 'manual', attrs: Array<[string, string]> = []): string {
  const a =
    attrs.length === 0
      ? '[]'
      : `[\n${attrs.map(([k, v]) => `    {\n      ${JSON.stringify(k)}: ${JSON.stringify(v)}\n    }`).join(',\n')}\n  ]`;
  return `{\n  "mdev_type": "${type}",\n  "start": "${start}",\n  "attrs": ${a}\n}`;
}

/** What differs between two snapshots: paths added, removed, and changed (content or link target). */
export function treeDiff(before: Map<string, string>, after: Map<string, string>): { added: string[]; removed: string[]; changed: string[] } {
  const added = [...after.keys()].filter((k) => !before.has(k)).sort();
  const removed = [...before.keys()].filter((k) => !after.has(k)).sort();
  const changed = [...after.keys()].filter((k) => before.has(k) && before.get(k) !== after.get(k)).sort();
  return { added, removed, changed };
}

/** Runs `fn` and asserts that the tree under the root is byte for byte what it was. */
export async function expectTreeUnchanged(host: HostRoot, fn: () => Promise<void>): Promise<void> {
  const before = await snapshotTree(host.root);
  await fn();
  const after = await snapshotTree(host.root);
  expect(treeDiff(before, after)).toEqual({ added: [], removed: [], changed: [] });
}

/** A run that must fail: exit code, one sentence on stderr matching `message`, no stack trace, nothing on stdout. */
export function expectFailure(r: CliResult, code: 1 | 2, message: RegExp): void {
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).toMatch(/^vgpuctl: error: /);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stderr).not.toMatch(/internal error/);
  expect(r.stdout).toBe('');
}

/** Libvirt domain XML naming mdevs, as /etc/libvirt/qemu (persistent) or /run/libvirt/qemu (running) hold it. */
export function domainXml(name: string, uuids: string[], running: boolean): string {
  const hostdevs = uuids
    .map((u) => `<hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci' display='off'><source><address uuid='${u}'/></source></hostdev>`)
    .join('');
  const domain = `<domain type='kvm'${running ? " id='7'" : ''}><name>${name}</name><devices>${hostdevs}</devices></domain>`;
  return running ? `<domstatus state='running' reason='booted' pid='4242'>${domain}</domstatus>` : domain;
}

/** Writes a file into the host tree (a VM definition, a process entry). */
export async function put(host: HostRoot, hostPath: string, content: string): Promise<void> {
  const real = host.path(hostPath);
  await fs.mkdir(path.dirname(real), { recursive: true });
  await fs.writeFile(real, content);
}

/** A qemu process in the tree's /proc whose command line holds the devices, as libvirt starts it. */
export async function putQemu(host: HostRoot, pid: number, guest: string, uuids: string[]): Promise<void> {
  const argv = ['/usr/bin/qemu-system-x86_64', '-name', `guest=${guest},debug-threads=on`];
  for (const u of uuids) argv.push('-device', `{"driver":"vfio-pci","id":"hostdev0","sysfsdev":"/sys/bus/mdev/devices/${u}","display":"off"}`);
  await put(host, `/proc/${pid}/cmdline`, `${argv.join('\0')}\0`);
  await put(host, `/proc/${pid}/comm`, 'qemu-system-x86\n');
}

// UUIDs for devices the tests make (fresh random v4, as uuidgen gives them).
export const U = [
  '5f0c3a2e-8b1d-4e6f-9a7c-2d4b6e8f0a13',
  '7c21e9d4-3f5a-4b8c-a1d2-6e9f0b3c5d27',
  '9a4d7e1b-2c6f-4a3e-8b5d-1f7c9e2a4b68',
  'b3e8f1c5-6d2a-4f9b-9c7e-3a5d8b1f6e49',
  'd6a2b9f4-1e7c-4d3a-b8f5-9c2e4a7d1b50',
] as const;
