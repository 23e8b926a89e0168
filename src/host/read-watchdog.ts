/**
 * A deadline for host reads that can hang. A sysfs attribute is answered by its driver's show() function:
 * a stuck driver (a wedged GPU, a lock held by a hung thread) never answers, and the read waits forever.
 * Host reads are synchronous system calls on the main thread (host-root.ts: 10-20x cheaper than
 * fs.promises, and a 160-VF host has 8,000+ attributes), so no timer of that thread can fire while one
 * hangs. A watchdog thread can: before each attribute read the main thread stores the path and bumps a
 * counter in shared memory (a few hundred nanoseconds); the watchdog looks every few hundred milliseconds
 * and, when the same read has been in progress longer than the limit, prints which file did not answer and
 * ends the process (SIGKILL: a thread blocked in the kernel cannot be unwound, and process.exit would wait
 * for it). The exit status is then 137; nothing after the hung read runs, so nothing more is changed.
 *
 * Only reads that can block are watched (mayBlock): an attribute whose value a driver computes when it is
 * read (available_instances, description, creatable_vgpu_types, sriov_numvfs under the device lock, ...).
 * What the kernel answers from its own memory is not: the PCI identity of a function (vendor, device,
 * class, ...) and, since Linux 6.1, an mdev type's name and device_api (struct mdev_type's pretty_name and
 * the driver's constant device_api). The thread starts at the first watched read (`list --defined`, which
 * reads type names, and `--version` never start it: it costs ~20 ms of CPU and 6 MB) and never keeps the
 * process alive. Limit: VGPUCTL_READ_TIMEOUT seconds (default 10).
 */
import { Worker } from 'node:worker_threads';
import * as z from 'zod/mini';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import '../validation/mini.js';

export const DEFAULT_READ_TIMEOUT_S = 10;
const MAX_READ_TIMEOUT_S = 3600;

// Shared memory: [0] read counter, [1] 1 while a read is in progress, [2] path length; the path from byte 16.
const HEADER = 16;
const SIZE = HEADER + 4096;

const WATCHDOG_SOURCE = `
const { workerData } = require('node:worker_threads');
const { writeSync } = require('node:fs');
const words = new Int32Array(workerData.memory, 0, 4);
const bytes = new Uint8Array(workerData.memory, ${HEADER});
let seen = -1;
let since = 0;
setInterval(() => {
  if (Atomics.load(words, 1) === 0) return;
  const n = Atomics.load(words, 0);
  const now = Date.now();
  if (n !== seen) { seen = n; since = now; return; }
  if (now - since < workerData.limitMs) return;
  let file = Buffer.from(bytes.subarray(0, Atomics.load(words, 2))).toString();
  if (workerData.root !== '/' && file.startsWith(workerData.root + '/')) file = file.slice(workerData.root.length);
  writeSync(2, 'vgpuctl: error: cannot read ' + file + ': no answer within ' + workerData.limitS + ' s; the driver behind it is stuck ' +
    '(see dmesg; a GPU may need a reset). vgpuctl stopped at this read (VGPUCTL_READ_TIMEOUT sets the limit)\\n');
  process.kill(process.pid, 'SIGKILL');
}, workerData.tickMs);
`;

let words: Int32Array | null = null;
let bytes: Uint8Array | null = null;
const encoder = new TextEncoder();

const readTimeoutSchema = z.pipe(
  z.string().check(z.trim(), z.regex(/^\d+(\.\d+)?$/)),
  z.pipe(z.transform(Number), z.number().check(z.positive(), z.lte(MAX_READ_TIMEOUT_S))),
);

/** The limit from VGPUCTL_READ_TIMEOUT (seconds, > 0, at most an hour). */
export function readTimeoutFrom(env: NodeJS.ProcessEnv): number {
  const raw = env['VGPUCTL_READ_TIMEOUT'];
  if (raw === undefined || raw === '') return DEFAULT_READ_TIMEOUT_S;
  const r = readTimeoutSchema.safeParse(raw);
  if (!r.success) {
    throw new VgpuctlError('usage', `VGPUCTL_READ_TIMEOUT must be a number of seconds above 0 and at most ${MAX_READ_TIMEOUT_S}, not ${JSON.stringify(raw)}`);
  }
  return r.data;
}

function start(root: string): void {
  const limitS = readTimeoutFrom(process.env);
  const memory = new SharedArrayBuffer(SIZE);
  words = new Int32Array(memory, 0, 4);
  bytes = new Uint8Array(memory, HEADER);
  const limitMs = limitS * 1000;
  const worker = new Worker(WATCHDOG_SOURCE, {
    eval: true,
    workerData: { memory, limitMs, limitS, root, tickMs: Math.max(20, Math.min(250, limitMs / 10)) },
    // Its own output never goes through the main thread (which may be the one that hangs).
    stdout: false,
    stderr: false,
    resourceLimits: { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 1 },
  });
  worker.unref();
}

/** Attributes the kernel answers from memory, without a driver callback or a lock that can be held. */
const ANSWERED_BY_KERNEL = new Set(['vendor', 'device', 'subsystem_vendor', 'subsystem_device', 'class', 'revision', 'numa_node', 'sriov_totalvfs', 'sriov_offset', 'sriov_stride', 'name', 'device_api']);

/** True when reading this sysfs attribute can wait on a driver (see the comment at the top). */
export function mayBlock(realPath: string): boolean {
  return !ANSWERED_BY_KERNEL.has(realPath.slice(realPath.lastIndexOf('/') + 1));
}

/** Marks the start of a read that may hang (realPath under `root`); pair with readDone. */
export function readStarting(realPath: string, root: string): void {
  if (words === null) start(root);
  const { written } = encoder.encodeInto(realPath, bytes!);
  Atomics.store(words!, 2, written);
  Atomics.add(words!, 0, 1);
  Atomics.store(words!, 1, 1);
}

export function readDone(): void {
  Atomics.store(words!, 1, 0);
}
