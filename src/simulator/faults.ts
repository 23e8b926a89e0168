/**
 * Fault injection for the simulator: make the k-th write of a kind fail with an errno, the way a driver
 * or a vanishing GPU would. Set with VGPUCTL_SIM_FAULTS, e.g. "create#2=EIO,remove#1=EBUSY" (the second
 * write to any `create` fails with EIO). Honoured only with --simulate.
 */
import { z } from 'zod';
import { VgpuctlError } from '../errors/vgpuctl-error.js';

export const faultSchema = z.object({
  target: z.enum(['create', 'remove', 'any']),
  nth: z.number().int().positive(),
  errno: z.string().regex(/^E[A-Z0-9]+$/),
});
export type Fault = z.infer<typeof faultSchema>;

export function parseFaults(spec: string | undefined): Fault[] {
  if (!spec) return [];
  return spec.split(',').map((part) => {
    const m = /^\s*([a-z]+)#(\d+)=([A-Z0-9]+)\s*$/.exec(part);
    const r = m ? faultSchema.safeParse({ target: m[1], nth: Number(m[2]), errno: m[3] }) : null;
    if (!r?.success) {
      throw new VgpuctlError('usage', `VGPUCTL_SIM_FAULTS: cannot read ${JSON.stringify(part)}; write e.g. create#2=EIO (targets: create, remove, any)`);
    }
    return r.data;
  });
}

/**
 * VGPUCTL_SIM_CRASH_AFTER: where the process kills itself (SIGKILL), for the crash tests.
 *   n       right after its n-th simulated sysfs write;
 *   step:n  right after its n-th step: a changing command's steps are writing its intent record, then each
 *           of its actions (sysfs write, definition file written or removed, link, mdevctl run) — so file
 *           writes are kill points too.
 */
export interface CrashPoint {
  after: 'write' | 'step';
  n: number;
}

export function parseCrashAfter(spec: string | undefined): CrashPoint | null {
  if (spec === undefined || spec === '') return null;
  const m = /^(step:)?(.*)$/.exec(spec)!;
  const r = z.coerce.number().int().positive().safeParse(m[2]);
  if (!r.success) throw new VgpuctlError('usage', `VGPUCTL_SIM_CRASH_AFTER must be a positive whole number (sysfs writes) or step:N, not ${JSON.stringify(spec)}`);
  return { after: m[1] ? 'step' : 'write', n: r.data };
}
