/**
 * The vGPU profile catalogue: profiles/<board>.json, validated once per process. Lookups by board, by
 * PCI device id and by profile name.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import { packageFile } from '../host/package-files.js';
import { boardSchema, type Board, type Profile } from './schema.js';

/** profiles/ at the package root (found from src/, dist/ and the bundle alike). */
export const PROFILES_DIR = packageFile(import.meta.url, 'profiles');

export class Catalogue {
  readonly boards: Board[];
  private readonly byBoard = new Map<string, Board>();
  private readonly byDeviceId = new Map<string, Board>();
  private readonly byProfile = new Map<string, { board: Board; profile: Profile }>();
  private readonly byTypeId = new Map<string, { board: Board; profile: Profile } | null>();

  constructor(boards: Board[]) {
    this.boards = [...boards].sort((a, b) => a.board.localeCompare(b.board));
    for (const b of this.boards) {
      this.byBoard.set(b.board.toUpperCase(), b);
      for (const id of b.pci_device_ids) if (!this.byDeviceId.has(id)) this.byDeviceId.set(id, b);
      for (const p of b.profiles) {
        this.byProfile.set(p.name.toUpperCase(), { board: b, profile: p });
        // A type id claimed by two boards is ambiguous: remember that, answer nothing for it.
        if (p.type_id !== undefined) this.byTypeId.set(p.type_id, this.byTypeId.has(p.type_id) ? null : { board: b, profile: p });
      }
    }
  }

  board(name: string): Board | undefined {
    return this.byBoard.get(name.toUpperCase());
  }

  boardForDeviceId(deviceId: string): Board | undefined {
    return this.byDeviceId.get(deviceId.toLowerCase());
  }

  /** The profile a public type id stands for, when exactly one board claims it. */
  profileByTypeId(typeId: string): { board: Board; profile: Profile } | undefined {
    return this.byTypeId.get(typeId) ?? undefined;
  }

  profile(name: string): { board: Board; profile: Profile } | undefined {
    return this.byProfile.get(name.toUpperCase());
  }
}

export function loadCatalogue(dir: string = PROFILES_DIR): Catalogue {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  } catch (e) {
    throw new VgpuctlError('internal', `the profile catalogue is missing: cannot read ${dir}`, { cause: e });
  }
  const boards = files.map((f) => {
    const file = path.join(dir, f);
    try {
      return boardSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
    } catch (e) {
      const why = e instanceof z.ZodError ? e.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') : (e as Error).message;
      throw new VgpuctlError('internal', `profile catalogue file ${file} is invalid: ${why}`, { cause: e });
    }
  });
  return new Catalogue(boards);
}

let cached: Catalogue | undefined;
/** The bundled catalogue, parsed on first use only. */
export function bundledCatalogue(): Catalogue {
  cached ??= loadCatalogue();
  return cached;
}
