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

/** errno code of a Node fs error, if any. */
export const errnoOf = (e: unknown): string | undefined =>
  typeof e === 'object' && e !== null && 'code' in e && typeof (e as { code: unknown }).code === 'string'
    ? (e as { code: string }).code
    : undefined;
