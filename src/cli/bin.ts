#!/usr/bin/env node
import { isPlainVersion, run } from './main.js';

/*
 * V8 doubles the young generation each time a scavenge finds much of it alive, up to 16 MB per half
 * (32 MB): a create or apply on a 160-parent host reached 84 MB of RSS that way with ~10 MB of live heap.
 * Keeping it at its starting size costs more, smaller scavenges (no change in wall time measured) and keeps
 * every command under 80 MB (README "Performance"). Set here rather than on node's command line, so that it
 * holds however vgpuctl is started (`node bin/vgpuctl`, a shebang without `env -S`); V8 reads it each time
 * it would grow the space. (--max-semi-space-size=1 on the command line did the same but cost ~9 ms of
 * start-up: scavenges while the modules load.) A bare --version skips even the import of node:v8.
 */
const argv = process.argv.slice(2);
if (!isPlainVersion(argv)) (await import('node:v8')).setFlagsFromString('--semi-space-growth-factor=1');

// `vgpuctl types | head` closes the pipe early: that is not an error worth a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

process.exitCode = await run(argv);
