#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';
import { run } from './main.js';

/*
 * V8 doubles the young generation each time a scavenge finds much of it alive, up to 16 MB per half
 * (32 MB): a create or apply on a 160-parent host reached 84 MB of RSS that way with ~10 MB of live heap.
 * Keeping it at its starting size costs more, smaller scavenges (no change in wall time measured) and keeps
 * every command under 80 MB (README "Performance"). Set here, not as a flag on node's command line: any
 * V8 flag there costs 7-9 ms of start-up; this one is read by V8 each time it would grow the space.
 */
setFlagsFromString('--semi-space-growth-factor=1');

// `vgpuctl types | head` closes the pipe early: that is not an error worth a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

process.exitCode = await run(process.argv.slice(2));
