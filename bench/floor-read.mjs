#!/usr/bin/env node
/**
 * The floor of `types` for any Node.js program: node starts, then opens, reads and closes each file named
 * in the list (one path a line) with the cheapest calls node has (openSync/readSync/closeSync into one
 * buffer; no parsing, no output). scripts/bench.mjs gives it the files mdevctl's `types --dumpjson` read
 * (from strace), so its time is what reading the same information costs in node before any other work.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

const files = readFileSync(process.argv[2], 'utf8').split('\n').filter((f) => f !== '');
const buf = Buffer.allocUnsafe(4096);
let bytes = 0;
for (const f of files) {
  const fd = openSync(f, 'r');
  bytes += readSync(fd, buf, 0, buf.length, null);
  closeSync(fd);
}
if (process.argv[3] === '--print') process.stdout.write(`${files.length} files, ${bytes} bytes\n`);
