/**
 * One error type for everything vgpuctl reports to an operator: a sentence that says what is wrong and
 * what to do, a machine-readable code, and the exit status the CLI uses (1 refused/failed, 2 bad input).
 */
export type ErrorCode =
  | 'usage' // bad flag or argument
  | 'invalid-input' // malformed value (uuid, parent, profile)
  | 'not-a-host-tree' // --root does not look like a host
  | 'not-found' // parent, type, profile or device does not exist
  | 'host-read' // a sysfs or /etc file could not be read or parsed
  | 'refused' // a rule forbids the operation
  | 'kernel' // a sysfs write failed
  | 'command' // an external command failed
  | 'internal';

export const exitCodeFor = (code: ErrorCode): 1 | 2 =>
  code === 'usage' || code === 'invalid-input' || code === 'not-a-host-tree' ? 2 : 1;

export class VgpuctlError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: 1 | 2;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'VgpuctlError';
    this.code = code;
    this.exitCode = exitCodeFor(code);
    this.details = options.details ?? {};
  }
}

export const isVgpuctlError = (e: unknown): e is VgpuctlError => e instanceof VgpuctlError;

import { constants } from 'node:os';

// Linux errnos Node's table lacks; EUSERS (87) is what mdev core returns when no instance is left.
const LINUX_ONLY: Record<string, number> = { EUSERS: 87, EREMOTEIO: 121 };
const ERRNO_NAMES = new Map<number, string>(Object.entries({ ...constants.errno, ...LINUX_ONLY }).map(([name, n]) => [n, name]));

/**
 * errno code of a Node fs error, if any. libuv names only the errnos it knows; the kernel's mdev core
 * answers a full type with EUSERS, which Node reports as "Unknown system error -87": name it from the
 * number instead.
 */
export const errnoOf = (e: unknown): string | undefined => {
  if (typeof e !== 'object' || e === null) return undefined;
  const { code, errno } = e as { code?: unknown; errno?: unknown };
  if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return code;
  if (typeof errno === 'number') return ERRNO_NAMES.get(Math.abs(errno)) ?? (typeof code === 'string' ? code : undefined);
  const unknown = typeof code === 'string' ? /^Unknown system error -(\d+)$/.exec(code) : null;
  if (unknown) return ERRNO_NAMES.get(Number(unknown[1])) ?? unknown[0];
  return typeof code === 'string' ? code : undefined;
};
