/**
 * Small inline hosts for focused tests. Strings are real ones (P40 types from seed 004's host, the A100D
 * SR-IOV layout of seed 002); the bundled fixtures in fixtures/ carry the complete hosts.
 */
import type { FixtureSpec } from '../../src/simulator/fixture-spec.js';

export const P40_TYPES = [
  { id: 'nvidia-50', name: 'GRID P40-6Q', description: 'num_heads=4, frl_config=60, framebuffer=6144M, max_resolution=7680x4320, max_instance=4' },
  { id: 'nvidia-286', name: 'GRID P40-12C', description: 'num_heads=1, frl_config=60, framebuffer=12288M, max_resolution=4096x2160, max_instance=2' },
  { id: 'nvidia-287', name: 'GRID P40-24C', description: 'num_heads=1, frl_config=60, framebuffer=24576M, max_resolution=4096x2160, max_instance=1' },
];

export const A100D_VF_TYPES = [
  { id: 'nvidia-692', name: 'GRID A100D-4C', description: 'num_heads=1, frl_config=60, framebuffer=4096M, max_resolution=4096x2400, max_instance=20' },
  { id: 'nvidia-699', name: 'GRID A100D-1-10C', description: 'num_heads=1, frl_config=60, framebuffer=10240M, max_resolution=4096x2400, max_instance=7' },
  { id: 'nvidia-700', name: 'GRID A100D-2-20C', description: 'num_heads=1, frl_config=60, framebuffer=20480M, max_resolution=4096x2400, max_instance=3' },
];

export const miniP40: Partial<FixtureSpec> = {
  name: 'mini-p40',
  summary: 'one P40 (seed 004 address) with three of its types',
  type_sets: { P40: P40_TYPES },
  pci: [
    {
      address: '0000:82:00.0',
      path: ['pci0000:80', '0000:80:02.0'],
      vendor: '0x10de',
      device: '0x1b38',
      subsystem_vendor: '0x10de',
      subsystem_device: '0x11d9',
      class: '0x030200',
      driver: 'nvidia',
      iommu_group: 41,
      numa_node: 1,
      types: 'P40',
    },
  ],
};

export const miniA100D: Partial<FixtureSpec> = {
  name: 'mini-a100d',
  summary: 'one A100D-80GB with four SR-IOV VFs as mdev parents (seed 002 addresses)',
  type_sets: { A100D: A100D_VF_TYPES },
  pci: [
    {
      address: '0000:21:00.0',
      path: ['pci0000:20', '0000:20:03.1'],
      vendor: '0x10de',
      device: '0x20b5',
      subsystem_vendor: '0x10de',
      subsystem_device: '0x1533',
      class: '0x030200',
      driver: 'nvidia',
      iommu_group: 30,
      numa_node: 0,
      sriov: { totalvfs: 20, numvfs: 4, offset: 4, stride: 1, vf_device: '0x20b5', vf_types: 'A100D', vf_driver: 'nvidia', vf_iommu_group_base: 100 },
    },
  ],
};
