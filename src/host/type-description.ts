/**
 * Parses an mdev type's `description` attribute. NVIDIA writes one line of `key=value` pairs separated by
 * commas (`num_heads=4, frl_config=60, framebuffer=6144M, max_resolution=7680x4320, max_instance=4`);
 * other drivers write free text or nothing. Unknown keys are kept, free text is not an error.
 */
export interface TypeDescription {
  numHeads: number | null;
  frlConfig: number | null;
  framebufferMib: number | null;
  maxResolution: { width: number; height: number } | null;
  maxInstance: number | null;
  /** Every key=value pair as written, including unknown keys. */
  fields: Record<string, string>;
}

const EMPTY: TypeDescription = {
  numHeads: null,
  frlConfig: null,
  framebufferMib: null,
  maxResolution: null,
  maxInstance: null,
  fields: {},
};

/** A whole number the driver wrote; null for anything else, including digits too many to be exact. */
const intOrNull = (v: string | undefined): number | null => (v !== undefined && /^\d+$/.test(v) && Number.isSafeInteger(Number(v)) ? Number(v) : null);

/** framebuffer=6144M, 6G, 1048576K or a byte count; the driver uses M. */
export function parseFramebufferMib(v: string | undefined): number | null {
  if (v === undefined) return null;
  const m = /^(\d+)\s*([KMG]?)i?B?$/i.exec(v.trim());
  if (!m) return null;
  const n = Number(m[1]);
  if (!Number.isSafeInteger(n)) return null;
  const mib = (() => {
    switch ((m[2] ?? '').toUpperCase()) {
      case 'G':
        return n * 1024;
      case 'M':
        return n;
      case 'K':
        return Math.floor(n / 1024);
      default:
        return Math.floor(n / (1024 * 1024));
    }
  })();
  return Number.isSafeInteger(mib) ? mib : null;
}

export function parseTypeDescription(text: string | null | undefined): TypeDescription {
  if (!text) return { ...EMPTY, fields: {} };
  const fields: Record<string, string> = {};
  // mdevctl joins multi-line descriptions with ", "; accept commas and newlines alike.
  for (const part of text.split(/[,\n]/)) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) fields[key] = value;
  }
  const res = /^(\d{1,9})x(\d{1,9})$/.exec(fields['max_resolution'] ?? '');
  return {
    numHeads: intOrNull(fields['num_heads']),
    frlConfig: intOrNull(fields['frl_config']),
    framebufferMib: parseFramebufferMib(fields['framebuffer']),
    maxResolution: res ? { width: Number(res[1]), height: Number(res[2]) } : null,
    maxInstance: intOrNull(fields['max_instance']),
    fields,
  };
}
