/**
 * `nova-config --merge`: only what vgpuctl owns changes in an existing nova.conf.
 *
 * GNU diff says which lines changed; the test says, with its own reading of the file, which lines may:
 * the owned keys of [devices] (or [pci]) with their continuation lines, and runs of [mdev_*]/[vgpu_*]
 * sections from their header to their last key line. Everything else must be byte for byte the same
 * (line endings included), and nova's own parser must read every other option with the same value.
 */
import { execa } from 'execa';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { cli } from '../helpers/cli.js';
import { hostFrom, tempDir } from '../helpers/hosts.js';
import { skipWithout } from '../helpers/tools.js';
import { mergeIni } from '../../src/nova/merge.js';
import { unifiedDiff } from '../../src/nova/unified-diff.js';
import { novaCheck, skipWithoutNova } from './nova-python.js';

// Every test lays out host trees and runs the CLI many times; slow machines need the room.
vi.setConfig({ testTimeout: 180_000 });

const SAMPLE = path.join(import.meta.dirname, 'fixtures', 'nova-compute.conf');
const skipNova = skipWithoutNova();
const skipTools = skipWithout('diff', 'git');

/** Line numbers (1-based) of the original that a merge may change, read independently of src/nova. */
function ownedLines(text: string, mode: 'mdev' | 'pci'): Set<number> {
  const lines = text.split(/\r\n|\n/);
  const owned = new Set<number>();
  let section = '';
  let inOwnedKey = false;
  let runStart = -1;
  let lastKeyInRun = -1;
  const ownsSection = (s: string) => mode === 'mdev' && /^(mdev|vgpu)_/i.test(s);
  const closeRun = () => {
    if (runStart >= 0) for (let i = runStart; i <= lastKeyInRun; i++) owned.add(i + 1);
    runStart = -1;
  };
  lines.forEach((raw, i) => {
    const header = /^\[([^\]]+)\]\s*$/.exec(raw);
    if (header) {
      section = header[1]!;
      inOwnedKey = false;
      if (ownsSection(section)) {
        if (runStart < 0) runStart = i;
        lastKeyInRun = i;
      } else closeRun();
      return;
    }
    if (ownsSection(section)) {
      if (/^[^#;\s]/.test(raw) || /^[ \t]+\S/.test(raw)) lastKeyInRun = i;
      return;
    }
    const keys: Record<string, string[]> = mode === 'mdev' ? { devices: ['enabled_mdev_types', 'enabled_vgpu_types'] } : { pci: ['device_spec', 'passthrough_whitelist', 'alias'] };
    const wanted = keys[section.toLowerCase()] ?? [];
    const key = /^([A-Za-z0-9_]+)\s*[=:]/.exec(raw)?.[1];
    if (key !== undefined) inOwnedKey = wanted.includes(key);
    else if (!/^[ \t]+\S/.test(raw)) inOwnedKey = false;
    if (inOwnedKey) owned.add(i + 1);
  });
  closeRun();
  return owned;
}

/** Old-file line numbers that GNU diff reports as removed or changed. */
async function removedLines(dir: string, before: string, after: string): Promise<number[]> {
  writeFileSync(path.join(dir, 'before'), before);
  writeFileSync(path.join(dir, 'after'), after);
  const r = await execa('diff', ['--unchanged-line-format=', '--old-line-format=%dn\n', '--new-line-format=', 'before', 'after'], { cwd: dir, reject: false });
  expect(r.exitCode).toBeLessThan(2);
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

/** New-file lines GNU diff reports as added. */
async function addedLines(dir: string, before: string, after: string): Promise<string[]> {
  writeFileSync(path.join(dir, 'before'), before);
  writeFileSync(path.join(dir, 'after'), after);
  const r = await execa('diff', ['--unchanged-line-format=', '--old-line-format=', '--new-line-format=%L', 'before', 'after'], { cwd: dir, reject: false, stripFinalNewline: false });
  return r.stdout.split(/(?<=\n)/).filter((l) => l !== '');
}

const MDEV_ADDED = /^(enabled_mdev_types = .*|\[mdev_nvidia-\d+\]|device_addresses = .*|mdev_class = .*|max_instances = \d+|# vgpuctl: .*|)\r?\n?$/;
const PCI_ADDED = /^((device_spec|passthrough_whitelist) = \{.*\}|alias = \{.*\}|)\r?\n?$/;

async function placeConf(root: string, text: string, mode = 0o640): Promise<string> {
  const dir = path.join(root, 'etc', 'nova');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'nova.conf');
  writeFileSync(file, text);
  chmodSync(file, mode);
  return file;
}

describe.skipIf(skipTools)('nova-config --merge keeps everything it does not own', () => {
  it('replaces [devices] enabled_mdev_types and the [mdev_*]/[vgpu_*] run of the sample, nothing else', async () => {
    const host = await hostFrom('a100d-sriov-seed002');
    const original = readFileSync(SAMPLE, 'utf8');
    const file = await placeConf(host.root, original);
    const r = await cli(['--root', host.root, 'nova-config', '--release', '2024.1', '--merge', '/etc/nova/nova.conf']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Updated \/etc\/nova\/nova.conf for OpenStack 2024.1 caracal \(nova 29\)\.$/m);
    const merged = readFileSync(file, 'utf8');
    expect(statSync(file).mode & 0o777).toBe(0o640);
    const dir = tempDir();
    const removed = await removedLines(dir, original, merged);
    const owned = ownedLines(original, 'mdev');
    expect(removed.length).toBeGreaterThan(0);
    expect(removed.filter((n) => !owned.has(n))).toEqual([]);
    for (const l of await addedLines(dir, original, merged)) expect(l).toMatch(MDEV_ADDED);
    // The check itself catches a change outside: a comment dropped, a line ending changed.
    const tampered = merged.replace('; the scheduler on the controllers must know the aliases too\n', '').replace('[glance]\n', '[glance]\r\n');
    expect((await removedLines(dir, original, tampered)).filter((n) => !owned.has(n))).toEqual([14, 30]);
    // The result, section by section.
    expect(merged).toContain('[devices]\n# vGPU types this node offers (keep in step with the mdevctl definitions)\nenabled_mdev_types = nvidia-699, nvidia-700\n\n[mdev_nvidia-699]\n');
    expect(merged).toContain('max_instances = 6\n\n[libvirt]\n');
    expect(merged).not.toContain('vgpu_nvidia-11');
    expect(merged.endsWith('# end of file: kept as it is\n')).toBe(true);

    // Idempotent: the second merge finds nothing to do.
    const again = await cli(['--root', host.root, 'nova-config', '--release', '2024.1', '--merge', '/etc/nova/nova.conf']);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/already has this configuration; nothing to change/);
    expect(readFileSync(file, 'utf8')).toBe(merged);
  });

  it('--dry-run prints a diff that git apply turns into the merged file, and changes nothing', async () => {
    const host = await hostFrom('t4x4-seed001');
    const original = readFileSync(SAMPLE, 'utf8');
    const file = await placeConf(host.root, original);
    const r = await cli(['--root', host.root, 'nova-config', '--release', 'zed', '--merge', '/etc/nova/nova.conf', '--dry-run', '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const out = r.json();
    expect(out.merge).toMatchObject({ file: '/etc/nova/nova.conf', changed: true, dry_run: true, written: false });
    expect(readFileSync(file, 'utf8')).toBe(original);
    // zed with one type: nova ignores the group, so the file keeps none (the old ones go).
    const work = tempDir();
    mkdirSync(path.join(work, 'etc', 'nova'), { recursive: true });
    copyFileSync(SAMPLE, path.join(work, 'etc', 'nova', 'nova.conf'));
    writeFileSync(path.join(work, 'change.diff'), `${out.merge.diff}\n`);
    const applied = await execa('git', ['apply', '--unsafe-paths', 'change.diff'], { cwd: work, reject: false });
    expect(applied.exitCode, applied.stderr).toBe(0);
    const result = readFileSync(path.join(work, 'etc', 'nova', 'nova.conf'), 'utf8');
    const real = await cli(['--root', host.root, 'nova-config', '--release', 'zed', '--merge', '/etc/nova/nova.conf']);
    expect(real.code).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe(result);
    expect(result).toContain('[devices]\n# vGPU types this node offers (keep in step with the mdevctl definitions)\nenabled_mdev_types = nvidia-233\n\n[libvirt]\n');
    expect(result).not.toMatch(/^\[(mdev|vgpu)_/m);
    // The text form prints the same diff.
    writeFileSync(file, original);
    const text = await cli(['--root', host.root, 'nova-config', '--release', 'zed', '--merge', '/etc/nova/nova.conf', '--dry-run']);
    expect(text.stdout).toContain(out.merge.diff);
    expect(text.stdout).toMatch(/Dry run: \/etc\/nova\/nova.conf not changed\./);
  });

  it('keeps CRLF line endings and a last line without a newline', async () => {
    const host = await hostFrom('a100d-sriov-seed002');
    const original = readFileSync(SAMPLE, 'utf8').replace(/\n/g, '\r\n').replace(/\r\n$/, '');
    const file = await placeConf(host.root, original);
    expect((await cli(['--root', host.root, 'nova-config', '--release', '2025.1', '--merge', '/etc/nova/nova.conf'])).code).toBe(0);
    const merged = readFileSync(file, 'utf8');
    expect(merged.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
    expect(merged.endsWith('# end of file: kept as it is')).toBe(true);
    const dir = tempDir();
    const removed = await removedLines(dir, original, merged);
    const owned = ownedLines(original, 'mdev');
    expect(removed.filter((n) => !owned.has(n))).toEqual([]);
  });

  it('--pci replaces [pci] device specs and aliases (continuation lines included) and keeps the rest of [pci]', async () => {
    const host = await hostFrom('titanxp-seed001');
    const original = readFileSync(SAMPLE, 'utf8').replace('[pci]\n', '[pci]\nreport_in_placement = False\n');
    const file = await placeConf(host.root, original);
    const r = await cli(['--root', host.root, 'nova-config', '--pci', '--release', '2023.2', '--merge', '/etc/nova/nova.conf']);
    expect(r.code, r.stderr).toBe(0);
    const merged = readFileSync(file, 'utf8');
    const dir = tempDir();
    const removed = await removedLines(dir, original, merged);
    const owned = ownedLines(original, 'pci');
    expect(removed.filter((n) => !owned.has(n))).toEqual([]);
    for (const l of await addedLines(dir, original, merged)) expect(l).toMatch(PCI_ADDED);
    expect(merged).toContain(
      '[pci]\nreport_in_placement = False\n# whole cards for the CAD project\ndevice_spec = {"vendor_id":"10de","product_id":"1b02","address":"0000:86:00.0"}\ndevice_spec = {"vendor_id":"10de","product_id":"10ef","address":"0000:86:00.1"}\n',
    );
    expect(merged).not.toContain('passthrough_whitelist');
    expect(merged).toContain('[mdev_nvidia-697]'); // not owned by --pci
  });

  it('refuses a file oslo.config cannot parse, a missing file, and --dry-run without --merge', async () => {
    const host = await hostFrom('a100d-sriov-seed002');
    const broken = `${readFileSync(SAMPLE, 'utf8')}\n  indented after a blank line\n`;
    const file = await placeConf(host.root, broken);
    const r = await cli(['--root', host.root, 'nova-config', '--merge', '/etc/nova/nova.conf']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/nova.conf:\d+: oslo.config cannot parse this line \(Unexpected continuation line/);
    expect(readFileSync(file, 'utf8')).toBe(broken);
    const missing = await cli(['--root', host.root, 'nova-config', '--merge', '/etc/nova/nova-compute.conf']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/\/etc\/nova\/nova-compute.conf does not exist/);
    const usage = await cli(['--root', host.root, 'nova-config', '--dry-run']);
    expect(usage.code).toBe(2);
  });
});

describe.skipIf(skipNova || skipTools)('the merged sample, read by nova', () => {
  it('reads the new vGPU groups, and every other option as before', async () => {
    const host = await hostFrom('a100d-sriov-seed002');
    const original = readFileSync(SAMPLE, 'utf8');
    const file = await placeConf(host.root, original);
    expect((await cli(['--root', host.root, 'nova-config', '--release', '2023.2', '--merge', '/etc/nova/nova.conf'])).code).toBe(0);
    const options: Array<[string, string]> = [
      ['DEFAULT', 'my_ip'],
      ['DEFAULT', 'transport_url'],
      ['DEFAULT', 'reserved_host_memory_mb'],
      ['DEFAULT', 'instance_usage_audit_period'],
      ['vnc', 'novncproxy_base_url'],
      ['glance', 'api_servers'],
      ['libvirt', 'virt_type'],
      ['libvirt', 'cpu_mode'],
      ['libvirt', 'images_rbd_pool'],
      ['libvirt', 'disk_cachemodes'],
      ['pci', 'device_spec'],
      ['pci', 'alias'],
      ['notifications', 'notification_format'],
    ];
    const [before, after] = await novaCheck([
      { file: SAMPLE, options },
      { file, options },
    ]);
    expect(before!.parse_error).toBeUndefined();
    expect(after!.parse_error).toBeUndefined();
    expect(after!.options).toEqual(before!.options);
    expect(after!.options!['libvirt.virt_type']).toBe('kvm');
    expect(after!.options!['pci.device_spec']).toEqual(['[{ "vendor_id": "10de", "product_id": "1b02" },\n{ "vendor_id": "10de", "product_id": "10ef" }]']);
    expect(before!.enabled_mdev_types).toEqual(['nvidia-697']);
    expect(after!.enabled_mdev_types).toEqual(['nvidia-699', 'nvidia-700']);
    expect(after!.driver_error).toBeUndefined();
    expect(after!.groups!['nvidia-700']).toEqual({
      device_addresses: ['0000:21:00.4', '0000:21:00.5', '0000:21:00.6', '0000:81:00.4', '0000:81:00.5', '0000:81:00.6'],
      mdev_class: 'CUSTOM_VGPU_A100D_2_20C',
    });
  }, 120_000);
});

describe('the INI rewriter and the diff, without nova', () => {
  it('merging into an empty file or one without [devices] appends the sections', () => {
    const spec = {
      keys: [{ group: 'devices', keys: ['enabled_mdev_types'], lines: ['enabled_mdev_types = nvidia-50'] }],
      ownsGroup: (g: string) => g.startsWith('mdev_'),
      sections: [{ name: 'mdev_nvidia-50', lines: ['device_addresses = 0000:82:00.0'] }],
      anchorGroup: 'devices',
    };
    expect(mergeIni('', spec, 'x').text).toBe('[devices]\nenabled_mdev_types = nvidia-50\n\n[mdev_nvidia-50]\ndevice_addresses = 0000:82:00.0\n');
    expect(mergeIni('[DEFAULT]\ndebug = true', spec, 'x').text).toBe('[DEFAULT]\ndebug = true\n\n[devices]\nenabled_mdev_types = nvidia-50\n\n[mdev_nvidia-50]\ndevice_addresses = 0000:82:00.0\n');
    const withDevices = '[devices]\n# keep\n\n[libvirt]\nvirt_type = kvm\n';
    const once = mergeIni(withDevices, spec, 'x').text;
    expect(once).toBe('[devices]\nenabled_mdev_types = nvidia-50\n\n[mdev_nvidia-50]\ndevice_addresses = 0000:82:00.0\n\n# keep\n\n[libvirt]\nvirt_type = kvm\n');
    expect(mergeIni(once, spec, 'x')).toEqual({ text: once, changed: false });
  });

  it.skipIf(skipTools)('agrees with GNU diff -u on what changed', async () => {
    const a = readFileSync(SAMPLE, 'utf8');
    const b = a.replace('enabled_mdev_types = nvidia-697', 'enabled_mdev_types = nvidia-700').replace('virt_type = kvm\n', '').concat('[extra]\nx = 1\n');
    const dir = tempDir();
    writeFileSync(path.join(dir, 'a'), a);
    writeFileSync(path.join(dir, 'b'), b);
    const gnu = await execa('diff', ['-u', '--label', 'a', '--label', 'b', 'a', 'b'], { cwd: dir, reject: false });
    expect(gnu.exitCode).toBe(1);
    expect(unifiedDiff(a, b, 'a', 'b')).toBe(gnu.stdout);
    expect(unifiedDiff(a, a, 'a', 'b')).toBe('');
  });
});
