/**
 * zod's small build (zod/mini) for the schemas on the way of every command: the global options, the flags
 * of the read-only commands, mdevctl's definition files, vgpuctl's vendor definitions and the catalogue.
 * Classic zod is ~290 kB of code that node compiles at every start (~20 ms, most of a `list`); zod/mini is
 * the same validator (the same core and messages) and, imported as `import * as z from 'zod/mini'` so the
 * bundler keeps only the functions used, a few dozen kB (scripts/build-bundle.mjs gives it a core of its
 * own). Commands that change the host keep classic zod for their flags.
 *
 * Every module with a zod/mini schema imports isZodError from here, which also makes sure English
 * messages are configured before its first parse.
 */
import * as z from 'zod/mini';
import { $ZodError } from 'zod/v4/core';
import en from 'zod/v4/locales/en.js';

// Classic zod sets English when its first schema is built; zod/mini leaves the messages to the caller.
z.config(en());

/** A validation failure of either build (both carry the $ZodError trait). */
export const isZodError = (e: unknown): e is $ZodError => e instanceof $ZodError;
