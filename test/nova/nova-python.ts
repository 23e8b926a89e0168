/**
 * nova's own parser as an oracle: check_nova_conf.py run by a Python that imports Debian's python3-nova
 * (the system /usr/bin/python3; a pyenv or venv python3 earlier on PATH does not see it). In CI a missing
 * nova fails loudly, on a developer machine the tests are skipped with a note, as skipWithout does.
 */
import { execa, execaSync } from 'execa';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from '../helpers/hosts.js';

const inCi = (): boolean => process.env['CI'] === 'true' || process.env['CI'] === '1';
export const CHECKER = path.join(import.meta.dirname, 'check_nova_conf.py');

function importsNova(python: string): boolean {
  try {
    execaSync(python, ['-c', 'import nova.conf, nova.virt.libvirt.driver']);
    return true;
  } catch {
    return false;
  }
}

let found: string | null | undefined;
export function novaPython(): string | null {
  if (found !== undefined) return found;
  found = ['/usr/bin/python3', 'python3'].find(importsNova) ?? null;
  return found;
}

/** True when the nova oracle tests must be skipped (never in CI). */
export function skipWithoutNova(): boolean {
  if (novaPython() !== null) return false;
  if (inCi()) throw new Error('CI needs python3-nova for these tests; scripts/install-test-deps.sh should have installed it');
  process.stderr.write('[skip] python3-nova not importable by /usr/bin/python3: run scripts/install-test-deps.sh\n');
  return true;
}

export interface NovaCase {
  file: string;
  devices?: Array<{ address: string; vendor_id: string; product_id: string; parent_addr?: string | null }>;
  flavors?: string[];
  options?: Array<[string, string]>;
}

export interface NovaResult {
  file: string;
  nova_version: string | null;
  parse_error?: string;
  checker_error?: string;
  enabled_mdev_types?: string[];
  driver?: { supported_types: string[]; pgpu_type_mapping: Record<string, string>; mdev_class_mapping: Record<string, string>; mdev_classes: string[] };
  driver_error?: string;
  groups?: Record<string, { device_addresses?: string[]; device_addresses_error?: string; mdev_class?: string; mdev_class_error?: string }>;
  device_spec?: string[];
  whitelist_specs?: number;
  whitelist_error?: string;
  assignable?: Record<string, boolean>;
  aliases?: Record<string, { numa_policy: string; specs: Array<Record<string, string>> }>;
  alias_error?: string;
  flavors?: Record<string, Array<{ alias_name: string; count: number; spec: Array<Record<string, string>> }> | { error: string }>;
  options?: Record<string, unknown>;
}

/** Runs nova's parser over every case in one Python process (nova is imported once, each file in a fork). */
export async function novaCheck(cases: NovaCase[]): Promise<NovaResult[]> {
  const py = novaPython();
  if (py === null) throw new Error('python3-nova is not available');
  const file = path.join(tempDir('vgpuctl-nova-'), 'cases.json');
  writeFileSync(file, JSON.stringify(cases));
  const r = await execa(py, [CHECKER, file], { reject: false });
  if (r.exitCode !== 0) throw new Error(`check_nova_conf.py failed (${r.exitCode}): ${r.stderr}`);
  const results = JSON.parse(r.stdout) as NovaResult[];
  for (const x of results) if (x.checker_error) throw new Error(`check_nova_conf.py: ${x.file}: ${x.checker_error}`);
  return results;
}
