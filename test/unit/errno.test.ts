import { describe, expect, it } from 'vitest';
import { errnoOf } from '../../src/errors/vgpuctl-error.js';
import { translateWriteError } from '../../src/lifecycle/kernel-errors.js';

describe('errno names', () => {
  it('names EUSERS, which Node reports as "Unknown system error -87" (seen from the real mdev core)', () => {
    expect(errnoOf({ code: 'Unknown system error -87', errno: -87 })).toBe('EUSERS');
    expect(errnoOf({ code: 'Unknown system error -87' })).toBe('EUSERS');
    expect(errnoOf({ code: 'EEXIST', errno: -17 })).toBe('EEXIST');
    expect(errnoOf('x')).toBeUndefined();
  });
  it('turns a full type into the operator sentence', () => {
    const e = translateWriteError({ code: 'Unknown system error -87', errno: -87 }, { action: 'create', path: '/sys/x/create', uuid: 'u', parent: 'mdpy', type: 'mdpy-vga', profile: null, usage: { inUse: 4, max: null, vms: [] } });
    expect(e.message).toMatch(/^no instances of mdpy-vga left on mdpy: 4 in use; free one/);
  });
});
