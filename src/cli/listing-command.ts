/**
 * A read-only sub-command that lists what the host has (`pci list`, `sriov status`): the rows under one key in
 * JSON, else a table, or one sentence when there is nothing to list.
 */
import type { Command } from 'commander';
import type { CommandSetup } from './command-setup.js';
import type { Context } from './context.js';
import { printJson, renderTable, type Cell } from './output.js';

export interface Listing<T> {
  name: string;
  description: string;
  read: (ctx: Context) => Promise<T[]>;
  /** The JSON object's key for the rows. */
  key: string;
  /** A row as JSON (default: as read). */
  json?: (row: T) => unknown;
  /** What the table says when there are no rows. */
  empty: string;
  columns: string[];
  cells: (row: T) => Cell[];
}

export function registerListing<T>(parent: Command, setup: CommandSetup, l: Listing<T>): Command {
  return parent
    .command(l.name)
    .description(l.description)
    .action(
      setup.action(async (ctx) => {
        const rows = await l.read(ctx);
        if (ctx.output === 'json') return printJson(setup.io, { [l.key]: l.json ? rows.map(l.json) : rows });
        setup.io.out(rows.length === 0 ? l.empty : await renderTable(l.columns, rows.map(l.cells)));
      }),
    );
}
