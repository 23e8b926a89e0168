/**
 * Fake external tools for cleanup and health tests: small `#!/bin/sh` scripts that print what the real
 * tools print (`nvidia-smi vgpu -q` in the driver's own layout) or record how they were called (systemctl).
 */
import path from 'node:path';
import { fakeTool } from '../helpers/hardening.js';
import { tempDir } from '../helpers/hosts.js';

/**
 * `nvidia-smi vgpu -q` on seed 004's host, verbatim: huataihuang/cloud-atlas
 * source/kvm/vgpu/install_vgpu_manager/nvidia-smi_vgpu_-q_output @ 1cd1be77c4b03de854226d845492ff518c9a4dd4.
 */
export const SEED004_VGPU_Q = `GPU 00000000:82:00.0
    Active vGPUs                          : 2
    vGPU ID                               : 3251634329
        VM UUID                           : 10a12241-1e83-4b70-bc59-a33d7c6d063c
        VM Name                           : y-k8s-n-1
        vGPU Name                         : GRID P40-6Q
        vGPU Type                         : 50
        vGPU UUID                         : ed1f9055-0b20-11ee-90a2-c79b496fe3f9
        MDEV UUID                         : 334855e2-079b-11ee-9fc9-83e0dccb6713
        Guest Driver Version              : N/A
        License Status                    : N/A (Expiry: N/A)
        GPU Instance ID                   : N/A
        Accounting Mode                   : N/A
        ECC Mode                          : Disabled
        Accounting Buffer Size            : 4000
        Frame Rate Limit                  : N/A
        PCI
            Bus Id                        : 00000000:00:00.0
        FB Memory Usage
            Total                         : 6144 MiB
            Used                          : 0 MiB
            Free                          : 6144 MiB
        Utilization
            Gpu                           : 0 %
            Memory                        : 0 %
            Encoder                       : 0 %
            Decoder                       : 0 %
        Encoder Stats
            Active Sessions               : 0
            Average FPS                   : 0
            Average Latency               : 0
        FBC Stats
            Active Sessions               : 0
            Average FPS                   : 0
            Average Latency               : 0
    vGPU ID                               : 3251634341
        VM UUID                           : 10a12241-1e83-4b70-bc59-a33d7c6d063c
        VM Name                           : y-k8s-n-1
        vGPU Name                         : GRID P40-6Q
        vGPU Type                         : 50
        vGPU UUID                         : 00000000-0000-0000-0000-000000000000
        MDEV UUID                         : 33485650-079b-11ee-9fca-8f6415d2734c
        Guest Driver Version              : N/A
        License Status                    : N/A (Expiry: N/A)
        GPU Instance ID                   : N/A
        Accounting Mode                   : N/A
        ECC Mode                          : Disabled
        Accounting Buffer Size            : 4000
        Frame Rate Limit                  : N/A
        PCI
            Bus Id                        : 00000000:00:00.0
        FB Memory Usage
            Total                         : 6144 MiB
            Used                          : 0 MiB
            Free                          : 6144 MiB
        Utilization
            Gpu                           : 0 %
            Memory                        : 0 %
            Encoder                       : 0 %
            Decoder                       : 0 %
        Encoder Stats
            Active Sessions               : 0
            Average FPS                   : 0
            Average Latency               : 0
        FBC Stats
            Active Sessions               : 0
            Average FPS                   : 0
            Average Latency               : 0
`;

export interface FakeVgpu {
  vgpuId: string;
  vmUuid: string;
  vmName: string;
  /** `GRID P40-6Q` */
  name: string;
  /** `50` for nvidia-50 */
  type: string;
  mdevUuid: string;
}

/** One vGPU block in the layout of SEED004_VGPU_Q (same keys, same column). */
export function vgpuBlock(v: FakeVgpu): string {
  const kv = (indent: number, k: string, val: string) => `${' '.repeat(indent)}${k.padEnd(42 - indent)}: ${val}`;
  return [
    kv(4, 'vGPU ID', v.vgpuId),
    kv(8, 'VM UUID', v.vmUuid),
    kv(8, 'VM Name', v.vmName),
    kv(8, 'vGPU Name', v.name),
    kv(8, 'vGPU Type', v.type),
    kv(8, 'vGPU UUID', '00000000-0000-0000-0000-000000000000'),
    kv(8, 'MDEV UUID', v.mdevUuid),
    kv(8, 'Guest Driver Version', 'N/A'),
    kv(8, 'License Status', 'N/A (Expiry: N/A)'),
    kv(8, 'GPU Instance ID', 'N/A'),
    kv(8, 'Accounting Mode', 'N/A'),
    kv(8, 'ECC Mode', 'Disabled'),
    kv(8, 'Accounting Buffer Size', '4000'),
    kv(8, 'Frame Rate Limit', 'N/A'),
    '        PCI',
    kv(12, 'Bus Id', '00000000:00:00.0'),
    '        FB Memory Usage',
    kv(12, 'Total', '6144 MiB'),
    kv(12, 'Used', '0 MiB'),
    kv(12, 'Free', '6144 MiB'),
  ].join('\n');
}

/** `nvidia-smi vgpu -q` for GPUs given by their nvidia-smi bus id (00000000:82:00.0). */
export function vgpuQuery(gpus: Array<{ busId: string; vgpus: FakeVgpu[] }>): string {
  return (
    gpus
      .map((g) => [`GPU ${g.busId}`, `    Active vGPUs                          : ${g.vgpus.length}`, ...g.vgpus.map(vgpuBlock)].join('\n'))
      .join('\n\n') + '\n'
  );
}

/** A fake nvidia-smi that prints `output` for `vgpu -q` (and refuses anything else). */
export function fakeNvidiaSmi(output: string, dir = tempDir('vgpuctl-tools-')): string {
  return fakeTool(
    'nvidia-smi',
    `if [ "$1" != vgpu ] || [ "$2" != -q ]; then echo "fake nvidia-smi: unexpected arguments: $*" >&2; exit 2; fi
cat <<'NVSMI_EOF'
${output.replace(/\n$/, '')}
NVSMI_EOF
`,
    dir,
  );
}

/** A fake nvidia-smi that hangs (a wedged driver): a shell whose child sleeps 30 s. */
export function hangingNvidiaSmi(dir = tempDir('vgpuctl-tools-')): string {
  return fakeTool('nvidia-smi', 'sleep 30\necho never\n', dir);
}

/** A fake systemctl that appends its arguments to `log` and says every unit is active. */
export function fakeSystemctl(dir = tempDir('vgpuctl-tools-')): { path: string; log: string } {
  const log = path.join(dir, 'systemctl.log');
  const p = fakeTool('systemctl', `echo "$*" >> '${log}'\n[ "$1" = is-active ] && echo active\nexit 0\n`, dir);
  return { path: p, log };
}
