/**
 * Validation of the identifiers an operator types: UUIDs, parent names, type ids, PCI addresses. Each
 * is checked before any path is built from it, so `../` or `/` never reaches the file system.
 *
 * White space is handled the same way for every identifier (-u, -p, -t, and plan files): it is refused,
 * never trimmed. mdevctl does the same (its UUID parser refuses " UUID", and a parent or type with a
 * blank is a name no device has), and a blank around an identifier usually means a quoting mistake in a
 * script, which the operator should see rather than have vgpuctl guess around. The refusal names the
 * identifier without the blanks, so the fix is a copy away.
 */
import { VgpuctlError } from '../errors/vgpuctl-error.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const FULL_PCI_RE = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/;
const SHORT_PCI_RE = /^[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/;
// Kernel device names of non-PCI parents (mtty, mdpy, mbochs, ccw/ap devices such as 0.0.0123).
const DEVICE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
const TYPE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}$/;

export const isUuid = (s: string): boolean => UUID_RE.test(s.toLowerCase());
export const isPciAddress = (s: string): boolean => FULL_PCI_RE.test(s);

/** Refuses an identifier with white space around it (exit 2), saying what it would be without. */
function refuseSurroundingSpace(input: string, what: string): void {
  const bare = input.trim();
  if (bare === input || bare === '') return;
  throw new VgpuctlError(
    'invalid-input',
    `${JSON.stringify(input)} has white space around it; vgpuctl takes ${what} exactly as written (as mdevctl does): did you mean ${JSON.stringify(bare)}? Check the quoting in your script`,
  );
}

export function normalizeUuid(input: string): string {
  refuseSurroundingSpace(input, 'a UUID');
  const s = input.toLowerCase();
  if (!UUID_RE.test(s)) {
    throw new VgpuctlError(
      'invalid-input',
      `${JSON.stringify(input)} is not a UUID; expected the form 334852fe-079b-11ee-9fc7-77463608f467 (generate one with uuidgen, or omit -u)`,
    );
  }
  return s;
}

/**
 * A device as `list -u` names it: an mdev's UUID, or the VF of a vendor-VFIO vGPU (which has no UUID of
 * its own; its `uuid` in listings is a handle derived from the VF, which is a UUID and matches too).
 */
export function normalizeDeviceRef(input: string): { uuid: string } | { vf: string } {
  refuseSurroundingSpace(input, 'a UUID or VF address');
  if (!isUuid(input)) {
    let asPci: string | null = null;
    try {
      asPci = normalizeParent(input);
    } catch {
      // Neither a UUID nor a device name: the UUID's error below says what -u takes.
    }
    if (asPci !== null && isPciAddress(asPci)) return { vf: asPci };
  }
  return { uuid: normalizeUuid(input) };
}

/**
 * A parent as the operator writes it. PCI addresses are accepted in full (0000:82:00.0), short
 * (82:00.0) or upper case and normalised to the kernel's spelling; other device names pass unchanged.
 */
export function normalizeParent(input: string): string {
  refuseSurroundingSpace(input, 'a parent device');
  const s = input;
  const lower = s.toLowerCase();
  if (FULL_PCI_RE.test(lower)) return lower;
  if (SHORT_PCI_RE.test(lower)) return `0000:${lower}`;
  if (s.includes('/') || s.includes('\0') || s.includes('..') || !DEVICE_NAME_RE.test(s)) {
    throw new VgpuctlError(
      'invalid-input',
      `${JSON.stringify(input)} is not a parent device name; give a PCI address such as 0000:82:00.0 (see 'vgpuctl types')`,
    );
  }
  if (/^[0-9a-f]{1,4}(:[0-9a-f]{1,2}){1,2}(\.[0-9a-f]*)?$/i.test(s)) {
    throw new VgpuctlError(
      'invalid-input',
      `${JSON.stringify(input)} is not a complete PCI address; write it as domain:bus:slot.function, e.g. 0000:82:00.0`,
    );
  }
  return s;
}

export function validateTypeId(input: string): string {
  refuseSurroundingSpace(input, 'a type id');
  const s = input;
  if (s.includes('/') || s.includes('..') || !TYPE_ID_RE.test(s)) {
    throw new VgpuctlError('invalid-input', `${JSON.stringify(input)} is not an mdev type id; type ids look like nvidia-286 (see 'vgpuctl types')`);
  }
  return s;
}

/** A vGPU profile name as the operator writes it (P40-12C, A100D-2-20C). */
export function validateProfileName(input: string): string {
  refuseSurroundingSpace(input, 'a profile name');
  if (!/^[A-Za-z0-9-]+$/.test(input)) throw new VgpuctlError('invalid-input', `${JSON.stringify(input)} is not a profile name; profiles look like P40-12C`);
  return input;
}
