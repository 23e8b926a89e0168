/**
 * Printing: JSON (the stable contract) or a table for people. Commands return data; only the CLI prints.
 */
import type { Warning } from '../host/inventory.js';

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

export const processIo: Io = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
};

export const printJson = (io: Io, value: unknown): void => io.out(JSON.stringify(value, null, 2));

export type Cell = string | number | boolean | null | undefined;

/**
 * cli-table3 (with its colour and emoji-width dependencies) is loaded when a table is printed, not by the
 * JSON output of scripts and cron jobs: it was a fifth of a small command's start-up.
 */
export async function renderTable(head: string[], rows: Cell[][]): Promise<string> {
  const { default: Table } = await import('cli-table3');
  const table = new Table({
    head,
    style: { head: [], border: [], compact: true },
    chars: {
      top: '', 'top-mid': '', 'top-left': '', 'top-right': '',
      bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
      left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  ',
    },
  });
  for (const r of rows) table.push(r.map((c) => (c === null || c === undefined ? '-' : String(c))));
  return table
    .toString()
    .split('\n')
    .map((l) => l.trimEnd().replace(/^ /, ''))
    .join('\n');
}

export function printWarnings(io: Io, warnings: Warning[]): void {
  for (const w of warnings) io.err(`vgpuctl: warning: ${w.message}`);
}
