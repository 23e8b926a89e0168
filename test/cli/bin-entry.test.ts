/**
 * bin/vgpuctl is what operators run (and what npm links): executed directly, its first line starts node
 * with the GC flag that keeps the peak RSS of large runs under the 80 MB (see the file's comment).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { VERSION } from '../../src/version.js';

const BIN = path.join(import.meta.dirname, '../../bin/vgpuctl');

describe('bin/vgpuctl', () => {
  it('runs when executed directly (env -S passes node its flags) and prints the version', () => {
    expect(readFileSync(BIN, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env -S node --max-semi-space-size=1');
    expect(execFileSync(BIN, ['--version'], { encoding: 'utf8' }).trim()).toBe(VERSION);
  });

  it('node really runs with the flag: the process sees it in process.execArgv', () => {
    // A preload (NODE_OPTIONS --import) prints the flags node was started with, then vgpuctl runs as usual.
    // (NODE_OPTIONS takes no quotes or backslashes: the newline is built.)
    const probe = 'data:text/javascript,process.stderr.write(JSON.stringify(process.execArgv)+String.fromCharCode(10))';
    const r = spawnSync(BIN, ['--version'], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: `--import=${probe}` } });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stderr.trim().split('\n')[0]!)).toContain('--max-semi-space-size=1');
    expect(r.stdout.trim()).toBe(VERSION);
  });
});
