/**
 * src/nova/ini.ts reads nova.conf as oslo.config does: checked against oslo.config's own parser
 * (oslo_config.cfg.ConfigParser, from Debian python3-oslo.config, a dependency of python3-nova) on the
 * sample nova.conf and on a file full of oslo's corner cases.
 */
import { execa } from 'execa';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { tempDir } from '../helpers/hosts.js';
import { parseIni, parseList } from '../../src/nova/ini.js';
import { novaPython, skipWithoutNova } from './nova-python.js';

const skip = skipWithoutNova();
const SAMPLE = path.join(import.meta.dirname, 'fixtures', 'nova-compute.conf');

const TRICKY = [
  '[DEFAULT]',
  'a = 1',
  'b: two words ',
  'c = "quoted"',
  "d = 'single'",
  'e = x=y:z',
  'f: a=b',
  'g =',
  '; a semicolon comment',
  '# a hash comment',
  '[Devices]',
  'enabled_mdev_types = nvidia-1,',
  '  nvidia-2,',
  '\tnvidia-3',
  '# indented hash right after a key is part of its value:',
  'h = first',
  '  # second',
  '',
  '[pci]',
  'alias = {"name":"a"}',
  'alias: {"name":"b"}',
  'alias = {"name":"c"}   ',
  '[devices]',
  'enabled_mdev_types = nvidia-4',
].join('\r\n');

async function osloSections(file: string): Promise<Record<string, Record<string, string[]>>> {
  const code = [
    'import json, sys',
    'from oslo_config import cfg',
    'sections = {}',
    'cfg.ConfigParser(sys.argv[1], sections).parse()',
    'print(json.dumps(sections))',
  ].join('\n');
  const r = await execa(novaPython()!, ['-c', code, file]);
  return JSON.parse(r.stdout);
}

function ourSections(text: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  const doc = parseIni(text);
  for (const l of doc.lines) if (l.kind === 'section' && l.section !== null) out[l.section] ??= {};
  for (const a of doc.assignments) {
    out[a.section] ??= {};
    out[a.section]![a.key] = [...(out[a.section]![a.key] ?? []), a.value];
  }
  return out;
}

describe.skipIf(skip)('parseIni agrees with oslo.config', () => {
  it('on the sample nova.conf and on oslo corner cases (colons, quotes, continuations, repeated keys, CRLF)', async () => {
    const dir = tempDir();
    const tricky = path.join(dir, 'tricky.conf');
    writeFileSync(tricky, TRICKY);
    for (const [file, text] of [
      [SAMPLE, readFileSync(SAMPLE, 'utf8')],
      [tricky, TRICKY],
    ] as const) {
      expect(ourSections(text), file).toEqual(await osloSections(file));
    }
    const doc = parseIni(TRICKY);
    expect(doc.problems).toEqual([]);
    expect(doc.eol).toBe('\r\n');
    expect(parseList(doc.assignments.find((a) => a.group === 'devices')!.value)).toEqual(['nvidia-1', 'nvidia-2', 'nvidia-3']);
  });

  it('reports the lines oslo.config refuses, with its messages', async () => {
    const dir = tempDir();
    const bad: Array<[string, string]> = [
      ['key = before any section\n', 'Section must be started before assignment'],
      ['[a]\n\n  indented\n', 'Unexpected continuation line'],
      ['[a\n', 'Invalid section (must end with ])'],
      ['[]\n', 'Empty section name'],
      ['[a]\nno separator\n', "No ':' or '=' found in assignment"],
      ['[a]\n= value\n', 'Key cannot be empty'],
    ];
    for (const [i, [text, message]] of bad.entries()) {
      const file = path.join(dir, `bad${i}.conf`);
      writeFileSync(file, text);
      const oslo = await execa(novaPython()!, ['-c', 'import sys\nfrom oslo_config import cfg\ncfg.ConfigParser(sys.argv[1], {}).parse()', file], { reject: false });
      expect(oslo.exitCode, text).not.toBe(0);
      expect(oslo.stderr, text).toContain(message);
      expect(parseIni(text).problems.map((p) => p.message), text).toEqual([message]);
    }
  });
});

describe('every command has --help', () => {
  it('nova-config, flavor, libvirt-xml, vm-check', async () => {
    for (const c of ['nova-config', 'flavor', 'libvirt-xml', 'vm-check']) {
      const r = await cli([c, '--help']);
      expect(r.code, c).toBe(0);
      expect(r.stdout, c).toMatch(new RegExp(`^Usage: vgpuctl ${c} \\[options\\]`, 'm'));
      expect(r.stdout, c).toMatch(/Examples?:/);
    }
  });
});
