import { describe, expect, it } from 'vitest';
import { VgpuctlError } from '../../src/errors/vgpuctl-error.js';
import { normalizeParent, normalizeUuid, validateProfileName, validateTypeId } from '../../src/host/identifiers.js';

const refusal = (fn: () => unknown): VgpuctlError => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(VgpuctlError);
    return e as VgpuctlError;
  }
  throw new Error('expected a refusal');
};

describe('identifiers', () => {
  it('normalises PCI parents to the kernel spelling', () => {
    expect(normalizeParent('0000:82:00.0')).toBe('0000:82:00.0');
    expect(normalizeParent('82:00.0')).toBe('0000:82:00.0');
    expect(normalizeParent('0000:AF:00.0')).toBe('0000:af:00.0');
    expect(normalizeParent('mtty')).toBe('mtty');
    expect(normalizeParent('0.0.0123')).toBe('0.0.0123');
  });

  it.each(['../../etc', '/sys/class', '0000:82:00', '82:00', 'a/b', '..', '.', 'x\0y', 'mtty\n', ' ', 'a b'])('refuses parent %j with exit 2', (bad) => {
    const e = refusal(() => normalizeParent(bad));
    expect(e.exitCode).toBe(2);
    expect(e.message).toMatch(/parent|PCI address/);
  });

  it('normalises UUIDs and refuses malformed ones', () => {
    expect(normalizeUuid('334852FE-079B-11EE-9FC7-77463608F467')).toBe('334852fe-079b-11ee-9fc7-77463608f467');
    for (const bad of ['334852fe079b11ee9fc777463608f467', '334852fe-079b-11ee-9fc7', '../334852fe-079b-11ee-9fc7-77463608f467', 'x']) {
      expect(refusal(() => normalizeUuid(bad)).exitCode).toBe(2);
    }
  });

  it('accepts type ids and refuses path-like ones', () => {
    expect(validateTypeId('nvidia-286')).toBe('nvidia-286');
    expect(validateTypeId('mtty-1')).toBe('mtty-1');
    for (const bad of ['../nvidia-286', 'nvidia/286', '..', '', 'a b']) expect(refusal(() => validateTypeId(bad)).exitCode).toBe(2);
  });

  it('refuses white space around every kind of identifier with the same sentence and the bare value (as mdevctl refuses it)', () => {
    const cases: Array<[(s: string) => string, string]> = [
      [normalizeUuid, '334852fe-079b-11ee-9fc7-77463608f467'],
      [normalizeParent, '0000:82:00.0'],
      [normalizeParent, 'mtty'],
      [validateTypeId, 'nvidia-286'],
      [validateProfileName, 'P40-12C'],
    ];
    for (const [fn, good] of cases) {
      expect(fn(good)).toBe(good);
      for (const bad of [` ${good}`, `${good}\n`, `\t${good}\r\n`]) {
        const e = refusal(() => fn(bad));
        expect(e.exitCode).toBe(2);
        expect(e.message).toContain(`${JSON.stringify(bad)} has white space around it`);
        expect(e.message).toContain(`did you mean ${JSON.stringify(good)}?`);
      }
    }
  });
});
