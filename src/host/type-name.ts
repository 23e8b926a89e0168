/**
 * Parses an NVIDIA mdev type `name` (`GRID P40-12C`, `NVIDIA A40-2Q`, `GRID A100D-2-20C`,
 * `GRID P40-2B4`, `GRID A100D-1-10CME`) into the profile it names. The profile is the last token;
 * anything else (the sample drivers' "Single port serial") is not a vGPU profile and yields null.
 */
import type { Series } from '../catalogue/schema.js';

export interface ParsedProfile {
  /** `P40-12C` */
  profile: string;
  /** `P40` */
  board: string;
  series: Series;
  /** Size in GiB as the name says it (12 for P40-12C, 20 for A100D-2-20C). */
  framebufferGib: number;
  /** MIG-backed: the GPU-instance slices (2 for A100D-2-20C), else null. */
  migSlices: number | null;
  /** What follows the series letter: `4` in 2B4 (4 heads), `ME` in 1-10CME (media extensions). */
  suffix: string;
}

const PROFILE = /^([A-Z0-9]+)-(?:(\d+)-)?(\d+)([ABCQ])([A-Z0-9]*)$/;

export function parseProfileName(profile: string): ParsedProfile | null {
  const m = PROFILE.exec(profile.trim());
  if (!m) return null;
  const [, board, slices, size, series, suffix] = m;
  // Sizes are a few digits; a name with more is not one NVIDIA wrote (and would not be an exact number).
  if (!Number.isSafeInteger(Number(size)) || (slices !== undefined && !Number.isSafeInteger(Number(slices)))) return null;
  return {
    profile: profile.trim(),
    board: board!,
    series: series as Series,
    framebufferGib: Number(size),
    migSlices: slices === undefined ? null : Number(slices),
    suffix: suffix ?? '',
  };
}

export function parseTypeName(name: string | null | undefined): ParsedProfile | null {
  if (!name) return null;
  const tokens = name.trim().split(/\s+/);
  const last = tokens[tokens.length - 1];
  if (last === undefined) return null;
  // Only names in NVIDIA's form count: a prefix word (GRID, NVIDIA) or the bare profile.
  if (tokens.length > 2) return null;
  if (tokens.length === 2 && !/^(GRID|NVIDIA|Tesla)$/i.test(tokens[0]!)) return null;
  return parseProfileName(last);
}
