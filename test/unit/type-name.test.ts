import { describe, expect, it } from 'vitest';
import { parseProfileName, parseTypeName } from '../../src/host/type-name.js';

describe('parseTypeName', () => {
  it.each([
    ['GRID P40-12C', { profile: 'P40-12C', board: 'P40', series: 'C', framebufferGib: 12, migSlices: null, suffix: '' }],
    ['GRID P40-6Q', { profile: 'P40-6Q', board: 'P40', series: 'Q', framebufferGib: 6 }],
    ['NVIDIA A40-2Q', { profile: 'A40-2Q', board: 'A40', series: 'Q', framebufferGib: 2 }],
    ['GRID A100D-2-20C', { profile: 'A100D-2-20C', board: 'A100D', series: 'C', framebufferGib: 20, migSlices: 2 }],
    ['GRID A100D-1-10CME', { profile: 'A100D-1-10CME', board: 'A100D', migSlices: 1, suffix: 'ME' }],
    ['GRID P40-2B4', { profile: 'P40-2B4', board: 'P40', series: 'B', framebufferGib: 2, suffix: '4' }],
    ['GRID T4-16Q', { profile: 'T4-16Q', board: 'T4', framebufferGib: 16 }],
    ['GRID RTX6000-1Q', { profile: 'RTX6000-1Q', board: 'RTX6000' }],
    ['NVIDIA L40S-1B', { profile: 'L40S-1B', board: 'L40S', series: 'B' }],
    ['A100D-4C', { profile: 'A100D-4C', board: 'A100D' }],
  ])('%s', (name, expected) => {
    expect(parseTypeName(name)).toMatchObject(expected);
  });

  it.each(['Single port serial', 'Dual port serial', 'mdpy-vga', '', 'GRID', 'GRID P40', 'GRID P40-12X', 'my GRID P40-12C', '../P40-12C'])(
    'is not a vGPU profile: %j',
    (name) => {
      expect(parseTypeName(name)).toBeNull();
    },
  );

  it('parses a bare profile name and trims it', () => {
    expect(parseProfileName('  T4-8C ')?.profile).toBe('T4-8C');
    expect(parseProfileName('t4-8c')).toBeNull();
  });
});
