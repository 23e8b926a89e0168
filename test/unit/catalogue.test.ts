import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bundledCatalogue, loadCatalogue } from '../../src/catalogue/catalogue.js';
import { parseProfileName } from '../../src/host/type-name.js';
import { typeRecord } from '../../src/host/inventory.js';
import type { MdevType } from '../../src/host/mdev.js';
import { parseTypeDescription } from '../../src/host/type-description.js';
import { parseTypeName } from '../../src/host/type-name.js';

const REQUIRED = ['P4', 'P40', 'T4', 'V100D', 'A10', 'A16', 'A40', 'A100', 'A100D', 'L4', 'L40S', 'H100'];

describe('profile catalogue', () => {
  const cat = bundledCatalogue();

  it('has every required board', () => {
    for (const b of REQUIRED) expect(cat.board(b), b).toBeDefined();
  });

  it('knows the seed-004 and seed-002 type ids', () => {
    expect(cat.profile('P40-12C')?.profile).toMatchObject({ type_id: 'nvidia-286', framebuffer_mib: 12288, max_per_gpu: 2, series: 'C' });
    expect(cat.profile('P40-6Q')?.profile.type_id).toBe('nvidia-50');
    expect(cat.profile('A100D-2-20C')?.profile).toMatchObject({ type_id: 'nvidia-700', max_per_gpu: 3, mig_slices: 2 });
    expect(cat.profile('A100D-1-10C')?.profile).toMatchObject({ type_id: 'nvidia-699', max_per_gpu: 7 });
    expect(cat.profile('T4-16Q')?.profile.type_id).toBe('nvidia-234');
    expect(cat.boardForDeviceId('0x1b38')?.board).toBe('P40');
    expect(cat.boardForDeviceId('0x1eb8')?.board).toBe('T4');
  });

  it('is self-consistent: names parse, sizes and counts fit the board, ids unique per board', () => {
    for (const b of cat.boards) {
      const ids = b.profiles.map((p) => p.type_id).filter(Boolean);
      expect(new Set(ids).size, `${b.board} type ids`).toBe(ids.length);
      for (const p of b.profiles) {
        const parsed = parseProfileName(p.name);
        expect(parsed?.board, p.name).toBe(b.board);
        expect(parsed?.series, p.name).toBe(p.series);
        expect(p.max_per_gpu * p.framebuffer_mib, p.name).toBeLessThanOrEqual(b.framebuffer_mib);
        if (p.mig_slices !== undefined) expect(parsed?.migSlices, p.name).toBe(p.mig_slices);
      }
    }
  });

  it('Pascal allows several vGPUs in one VM only for the full-card profiles (seed 004)', () => {
    const p40 = cat.board('P40')!;
    expect(p40.profiles.filter((p) => p.multi_vgpu_per_vm).map((p) => p.name).sort()).toEqual(['P40-24C', 'P40-24Q']);
    expect(p40.placement).toBe('same-type');
  });

  it('refuses an invalid catalogue file with a message naming the file and field', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cat-'));
    writeFileSync(path.join(dir, 'x.json'), JSON.stringify({ board: 'X1', product: 'x', architecture: 'Pascal', pci_device_ids: ['0x1234'], framebuffer_mib: 1, sriov: false, placement: 'anything', mixed_size_capable: false, profiles: [], sources: ['s'] }));
    expect(() => loadCatalogue(dir)).toThrow(/x\.json is invalid: placement/);
  });

  it('live sysfs wins over the catalogue and a disagreement is a warning', () => {
    const desc = 'num_heads=1, frl_config=60, framebuffer=12288M, max_resolution=4096x2160, max_instance=3';
    const t: MdevType = {
      parent: '0000:82:00.0', id: 'nvidia-999', name: 'GRID P40-12C', description: desc, deviceApi: 'vfio-pci',
      availableInstances: 3, profile: parseTypeName('GRID P40-12C'), parsedDescription: parseTypeDescription(desc), sysfsPath: '/x',
    };
    const warnings: Array<{ code: string; message: string }> = [];
    const rec = typeRecord(t, cat, warnings);
    expect(rec.max_instances).toBe(3);
    expect(warnings.map((w) => w.message)).toEqual([
      expect.stringMatching(/driver allows 3 per GPU, the catalogue says 2/),
      expect.stringMatching(/P40-12C is nvidia-999 on this driver, the catalogue knows it as nvidia-286/),
    ]);
  });
});
