/**
 * The kernel answers a refused sysfs write with an errno; operators get a sentence that says what
 * happened and what to do.
 */
import { VgpuctlError, errnoOf } from '../errors/vgpuctl-error.js';

export interface WriteContext {
  action: 'create' | 'remove' | 'write';
  path: string;
  uuid?: string;
  parent?: string;
  type?: string;
  profile?: string | null;
  /** For "no instances left": who uses the type's devices on that parent. */
  usage?: { inUse: number; max: number | null; vms: string[] };
}

export function translateWriteError(e: unknown, ctx: WriteContext): VgpuctlError {
  const errno = errnoOf(e) ?? 'EIO';
  const what = ctx.profile ? `${ctx.profile} (${ctx.type})` : ctx.type;
  let sentence: string;
  // "No instances left" is what the mdev core means by these only when a device is being created.
  switch (ctx.action !== 'create' && ['EUSERS', 'ENOSPC', 'EDQUOT'].includes(errno) ? 'other' : errno) {
    case 'EEXIST':
      sentence = `an mdev with UUID ${ctx.uuid} already exists; choose another UUID, or omit -u to have one generated`;
      break;
    case 'EUSERS':
    case 'ENOSPC':
    case 'EDQUOT': {
      const u = ctx.usage;
      const who = u && u.vms.length > 0 ? ` in use by VMs ${u.vms.join(', ')}` : '';
      const count = u ? `: ${u.inUse}${u.max !== null ? ` of ${u.max}` : ''} in use${who}` : '';
      sentence = `no instances of ${what} left on ${ctx.parent}${count}; free one, or pick another GPU (vgpuctl types --available)`;
      break;
    }
    case 'EINVAL':
      sentence = `the driver refused ${ctx.action === 'create' ? `to create ${ctx.uuid} as ${what} on ${ctx.parent}` : `the write to ${ctx.path}`} (EINVAL); check dmesg and 'journalctl -u nvidia-vgpu-mgr' for the driver's reason`;
      break;
    case 'EBUSY':
      sentence = `${ctx.uuid ? `mdev ${ctx.uuid}` : ctx.path} is busy (EBUSY): a VM or process still holds it; shut the VM down first`;
      break;
    case 'ENODEV':
    case 'ENXIO':
      sentence = `${ctx.parent ?? ctx.path} went away (${errno}): the GPU was removed or SR-IOV was disabled; check 'vgpuctl gpus'`;
      break;
    case 'ENOENT':
      sentence = `${ctx.path} does not exist: the ${ctx.action === 'remove' ? 'device is already gone' : 'parent or type vanished'}; check 'vgpuctl types'`;
      break;
    case 'EACCES':
    case 'EPERM':
      sentence = `permission denied writing ${ctx.path}: run vgpuctl as root`;
      break;
    case 'ENOSYS':
    case 'EOPNOTSUPP':
      sentence = `the driver does not support writing ${ctx.path} (${errno})`;
      break;
    default:
      sentence = `writing ${ctx.path} failed (${errno}); check dmesg and 'journalctl -u nvidia-vgpu-mgr'`;
  }
  return new VgpuctlError('kernel', sentence, { cause: e, details: { errno, path: ctx.path } });
}
