import { describe, expect, it } from 'vitest';
import { normalizeBusId, parseVgpuQuery } from '../../src/cleanup/nvidia-smi-vgpu.js';
import { SEED004_VGPU_Q, vgpuBlock, vgpuQuery } from './fake-tools.js';

describe('parseVgpuQuery', () => {
  it("reads seed 004's real `nvidia-smi vgpu -q`: two vGPUs, N/A as null, the GPU's bus id in the kernel's form", () => {
    expect(parseVgpuQuery(SEED004_VGPU_Q)).toEqual([
      {
        gpu: '0000:82:00.0',
        vgpuId: '3251634329',
        vmUuid: '10a12241-1e83-4b70-bc59-a33d7c6d063c',
        vmName: 'y-k8s-n-1',
        vgpuName: 'GRID P40-6Q',
        vgpuType: '50',
        mdevUuid: '334855e2-079b-11ee-9fc9-83e0dccb6713',
      },
      {
        gpu: '0000:82:00.0',
        vgpuId: '3251634341',
        vmUuid: '10a12241-1e83-4b70-bc59-a33d7c6d063c',
        vmName: 'y-k8s-n-1',
        vgpuName: 'GRID P40-6Q',
        vgpuType: '50',
        mdevUuid: '33485650-079b-11ee-9fca-8f6415d2734c',
      },
    ]);
  });

  it('does not take the vGPU\'s own "Bus Id" (00000000:00:00.0, under PCI) for the GPU', () => {
    expect(parseVgpuQuery(SEED004_VGPU_Q).map((v) => v.gpu)).toEqual(['0000:82:00.0', '0000:82:00.0']);
  });

  it('keeps vGPUs apart per GPU, skips the log header, and tolerates CRLF line ends', () => {
    const two = vgpuQuery([
      { busId: '00000000:21:00.0', vgpus: [{ vgpuId: '1', vmUuid: 'N/A', vmName: 'N/A', name: 'GRID A100D-2-20C', type: '700', mdevUuid: '5c630867-a673-5d75-aa31-a499e6c7cb19' }] },
      { busId: '00000000:81:00.0', vgpus: [{ vgpuId: '2', vmUuid: 'N/A', vmName: 'N/A', name: 'GRID A100D-1-10C', type: '699', mdevUuid: 'EF50AADB-13BC-5A2A-AF66-BC6A7080D1D2' }] },
    ]);
    const withHeader = `\n==============NVSMI LOG==============\n\nTimestamp                                 : Tue Jun 13 10:22:04 2023\nDriver Version                            : 525.105.14\n\n${two}`;
    const parsed = parseVgpuQuery(withHeader.replace(/\n/g, '\r\n'));
    expect(parsed.map((v) => [v.gpu, v.vgpuId, v.vmName, v.vgpuType, v.mdevUuid])).toEqual([
      ['0000:21:00.0', '1', null, '700', '5c630867-a673-5d75-aa31-a499e6c7cb19'],
      ['0000:81:00.0', '2', null, '699', 'ef50aadb-13bc-5a2a-af66-bc6a7080d1d2'],
    ]);
  });

  it('gives a null MDEV UUID when the driver prints N/A or something that is not a UUID', () => {
    const block = vgpuBlock({ vgpuId: '7', vmUuid: 'N/A', vmName: 'N/A', name: 'GRID P40-6Q', type: '50', mdevUuid: 'N/A' });
    expect(parseVgpuQuery(`GPU 00000000:82:00.0\n${block}\n`)).toEqual([
      { gpu: '0000:82:00.0', vgpuId: '7', vmUuid: null, vmName: null, vgpuName: 'GRID P40-6Q', vgpuType: '50', mdevUuid: null },
    ]);
    const bad = block.replace(/(MDEV UUID\s+: )N\/A/, '$1334855e2-079b-11ee-9fc9');
    expect(bad).toContain(': 334855e2-079b-11ee-9fc9\n');
    expect(parseVgpuQuery(`GPU 00000000:82:00.0\n${bad}`)[0]!.mdevUuid).toBeNull();
  });

  it('returns nothing, without throwing, for garbage, errors and GPUs without vGPUs', () => {
    const garbage = [
      '',
      '\n\n',
      'NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n',
      'No devices were found\n',
      'vGPU ID : 1\n    MDEV UUID : 334855e2-079b-11ee-9fc9-83e0dccb6713\n', // fields before any GPU line
      '\u0000\u0001\u00ff binary \u001b[31m junk :::: : :\n',
      'GPU 00000000:82:00.0\n    Active vGPUs                          : 0\n',
      '{"gpus": [{"vgpus": []}]}',
      ':'.repeat(10_000),
    ];
    for (const g of garbage) {
      expect(() => parseVgpuQuery(g)).not.toThrow();
      expect(parseVgpuQuery(g)).toEqual([]);
    }
  });
});

describe('normalizeBusId', () => {
  it("writes nvidia-smi's 8-digit PCI domain as the kernel does", () => {
    expect(normalizeBusId('00000000:82:00.0')).toBe('0000:82:00.0');
    expect(normalizeBusId('00000000:AF:00.0')).toBe('0000:af:00.0');
    expect(normalizeBusId('0000:3b:00.0')).toBe('0000:3b:00.0');
    expect(normalizeBusId(' 00000001:21:00.4 ')).toBe('0001:21:00.4');
  });
});
