import { describe, expect, it } from 'vitest';
import { parseFramebufferMib, parseTypeDescription } from '../../src/host/type-description.js';

describe('parseTypeDescription', () => {
  it('reads the NVIDIA description of P40-6Q (seed 004)', () => {
    const d = parseTypeDescription('num_heads=4, frl_config=60, framebuffer=6144M, max_resolution=7680x4320, max_instance=4');
    expect(d).toMatchObject({ numHeads: 4, frlConfig: 60, framebufferMib: 6144, maxInstance: 4, maxResolution: { width: 7680, height: 4320 } });
  });

  it('reads a C-series description (one head, 4096x2160)', () => {
    const d = parseTypeDescription('num_heads=1, frl_config=60, framebuffer=12288M, max_resolution=4096x2160, max_instance=2');
    expect(d.numHeads).toBe(1);
    expect(d.framebufferMib).toBe(12288);
    expect(d.maxInstance).toBe(2);
  });

  it('reads a B-series description with frl_config=45', () => {
    expect(parseTypeDescription('num_heads=4, frl_config=45, framebuffer=2048M, max_resolution=5120x2880, max_instance=12').frlConfig).toBe(45);
  });

  it('accepts newline-separated fields as mdevctl joins them', () => {
    const d = parseTypeDescription('num_heads=1\nframebuffer=10240M\nmax_instance=7');
    expect(d.framebufferMib).toBe(10240);
    expect(d.maxInstance).toBe(7);
  });

  it('keeps unknown keys and ignores free text of other drivers', () => {
    const d = parseTypeDescription('low resolution, virtual display 640x480, future_key=abc');
    expect(d.maxInstance).toBeNull();
    expect(d.fields).toEqual({ future_key: 'abc' });
    expect(parseTypeDescription(null).fields).toEqual({});
    expect(parseTypeDescription('').maxInstance).toBeNull();
  });

  it('does not take a garbled number for a number', () => {
    const d = parseTypeDescription('num_heads=four, framebuffer=lots, max_instance=-1, max_resolution=big');
    expect(d).toMatchObject({ numHeads: null, framebufferMib: null, maxInstance: null, maxResolution: null });
  });

  it('converts framebuffer units', () => {
    expect(parseFramebufferMib('6144M')).toBe(6144);
    expect(parseFramebufferMib('2G')).toBe(2048);
    expect(parseFramebufferMib('1048576K')).toBe(1024);
    expect(parseFramebufferMib('1073741824')).toBe(1024);
    expect(parseFramebufferMib('M')).toBeNull();
  });
});
