/**
 * The vGPU profile catalogue: profiles/<board>.json, validated once per process. Lookups by board, by
 * PCI device id and by profile name.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { isZodError } from '../validation/mini.js';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import { packageFile } from '../host/package-files.js';
import { boardSchema, type Board, type Profile } from './schema.js';

/** profiles/ at the package root (found from src/, dist/ and the bundle alike). */
export const PROFILES_DIR = packageFile(import.meta.url, 'profiles');

export class Catalogue {
  private loaded: {
    boards: Board[];
    byBoard: Map<string, Board>;
    byDeviceId: Map<string, Board>;
    byProfile: Map<string, { board: Board; profile: Profile }>;
    byTypeId: Map<string, { board: Board; profile: Profile } | null>;
  } | null = null;
  private readonly source: () => Board[];

  /** The boards, or a function that reads them: then they are read (and validated) at the first lookup. */
  constructor(boards: Board[] | (() => Board[])) {
    this.source = typeof boards === 'function' ? boards : () => boards;
    if (typeof boards !== 'function') this.index();
  }

  private index() {
    if (this.loaded) return this.loaded;
    // Not localeCompare: its first call builds an ICU collator, 6 ms of every command that asks the catalogue.
    const boards = [...this.source()].sort((a, b) => compareNames(a.board, b.board));
    const byBoard = new Map<string, Board>();
    const byDeviceId = new Map<string, Board>();
    const byProfile = new Map<string, { board: Board; profile: Profile }>();
    const byTypeId = new Map<string, { board: Board; profile: Profile } | null>();
    for (const b of boards) {
      byBoard.set(b.board.toUpperCase(), b);
      for (const id of b.pci_device_ids) if (!byDeviceId.has(id)) byDeviceId.set(id, b);
      for (const p of b.profiles) {
        byProfile.set(p.name.toUpperCase(), { board: b, profile: p });
        // A type id claimed by two boards is ambiguous: remember that, answer nothing for it.
        if (p.type_id !== undefined) byTypeId.set(p.type_id, byTypeId.has(p.type_id) ? null : { board: b, profile: p });
      }
    }
    this.loaded = { boards, byBoard, byDeviceId, byProfile, byTypeId };
    return this.loaded;
  }

  get boards(): Board[] {
    return this.index().boards;
  }

  board(name: string): Board | undefined {
    return this.index().byBoard.get(name.toUpperCase());
  }

  boardForDeviceId(deviceId: string): Board | undefined {
    return this.index().byDeviceId.get(deviceId.toLowerCase());
  }

  /** The profile a public type id stands for, when exactly one board claims it. */
  profileByTypeId(typeId: string): { board: Board; profile: Profile } | undefined {
    return this.index().byTypeId.get(typeId) ?? undefined;
  }

  profile(name: string): { board: Board; profile: Profile } | undefined {
    return this.index().byProfile.get(name.toUpperCase());
  }
}

/** Case-insensitive, then exact, by UTF-16 code units: board names are ASCII, and no collator is needed. */
function compareNames(a: string, b: string): number {
  const [x, y] = [a.toUpperCase(), b.toUpperCase()];
  if (x !== y) return x < y ? -1 : 1;
  return a === b ? 0 : a < b ? -1 : 1;
}

export function loadCatalogue(dir: string = PROFILES_DIR): Catalogue {
  return new Catalogue(readBoards(dir));
}

/** profiles/*.json of `dir`: file name and text. */
function readSources(dir: string): Array<[string, string]> {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  } catch (e) {
    throw new VgpuctlError('internal', `the profile catalogue is missing: cannot read ${dir}`, { cause: e });
  }
  return files.map((f) => {
    try {
      return [f, readFileSync(path.join(dir, f), 'utf8')];
    } catch (e) {
      throw new VgpuctlError('internal', `profile catalogue file ${path.join(dir, f)} is invalid: ${(e as Error).message}`, { cause: e });
    }
  });
}

/** profiles/*.json of `dir`, each validated (or, for the bundle's own profiles/, as its build validated them). */
function readBoards(dir: string): Board[] {
  const sources = readSources(dir);
  const validated = dir === PROFILES_DIR ? validatedAtBuild(sources) : null;
  if (validated !== null) return validated;
  return sources.map(([f, text]) => {
    const file = path.join(dir, f);
    try {
      return boardSchema.parse(JSON.parse(text));
    } catch (e) {
      const why = isZodError(e) ? e.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') : (e as Error).message;
      throw new VgpuctlError('internal', `profile catalogue file ${file} is invalid: ${why}`, { cause: e });
    }
  });
}

/*
 * Validating the catalogue with zod is a tenth of a small command's time, and its files change only with
 * a release. The build (scripts/build-bundle.mjs) validates them once and writes the result, with the texts
 * it read, to dist/catalogue-validated.json; the bundle it builds at the same time (and only that bundle:
 * its build id is compiled in) takes the boards from there while every file is still exactly what the
 * build read. Any difference (an edited or added profile) and the files are validated as always.
 */
declare const __VGPUCTL_BUILD_ID__: string | undefined;
const BUILD_ID: string | null = typeof __VGPUCTL_BUILD_ID__ === 'string' ? __VGPUCTL_BUILD_ID__ : null;
export const VALIDATED_CATALOGUE = 'catalogue-validated.json';

interface ValidatedCatalogue {
  build: string;
  sources: Record<string, string>;
  boards: Board[];
}

function validatedAtBuild(sources: Array<[string, string]>): Board[] | null {
  if (BUILD_ID === null) return null;
  let c: ValidatedCatalogue;
  try {
    c = JSON.parse(readFileSync(packageFile(import.meta.url, path.join('dist', VALIDATED_CATALOGUE)), 'utf8')) as ValidatedCatalogue;
  } catch {
    return null;
  }
  if (c.build !== BUILD_ID || Object.keys(c.sources).length !== sources.length) return null;
  if (sources.some(([f, text]) => c.sources[f] !== text)) return null;
  return c.boards;
}

/** For the build: the validated catalogue of `dir` (throws on an invalid file), tagged with the build id. */
export function validateCatalogueForBuild(build: string, dir: string = PROFILES_DIR): ValidatedCatalogue {
  const sources = readSources(dir);
  const boards = readBoards(dir);
  return { build, sources: Object.fromEntries(sources), boards };
}

let cached: Catalogue | undefined;
/**
 * The bundled catalogue, one per process, read and validated at its first lookup: a command that never
 * asks it anything (`list` on a host whose types name their profiles) does not pay for it.
 */
export function bundledCatalogue(): Catalogue {
  cached ??= new Catalogue(() => readBoards(PROFILES_DIR));
  return cached;
}
