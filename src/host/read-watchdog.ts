/**
 * A deadline for host reads that can hang. A sysfs attribute is answered by its driver's show() function:
 * a stuck driver (a wedged GPU, a lock held by a hung thread) never answers, and the read waits forever.
 * Host reads are synchronous system calls on the main thread (host-root.ts: 10-20x cheaper than
 * fs.promises, and a 160-VF host has 8,000+ attributes), so no timer of that thread can fire while one
 * hangs, and reading 4,000 attributes through the thread pool costs 3-4x the CPU (measured).
 *
 * The deadline is kept from outside: a small watchdog process (bash) looks at the main thread every quarter
 * second in /proc/<pid>/syscall. When the same read or open of a file under sys/ has not returned within
 * the limit (and the thread used no CPU meanwhile), it names the file, from /proc/<pid>/fd or the path
 * the open was given, on vgpuctl's stderr and ends vgpuctl (SIGKILL: a thread blocked in the kernel cannot
 * be unwound; exit status 137). Nothing after the hung read runs, so nothing more is changed. The main
 * thread does nothing per read. A watchdog thread (worker_threads) did the same with shared memory, but
 * cost ~20 ms of CPU and 10-28 MB of peak RSS per run (measured on create and apply).
 *
 * Only reads that can block need it: an attribute whose value a driver computes when read
 * (available_instances, description, creatable_vgpu_types, sriov_numvfs under the device lock, ...). What
 * the kernel answers from its own memory cannot hang: a PCI function's identity (vendor, device, class)
 * and, since Linux 6.1, an mdev type's name and device_api. So `list` (type names only) arms it only when
 * it reads vendor-VFIO state. Reading /proc/<pid>/syscall needs root (or ptrace rights over vgpuctl):
 * without them the watchdog ends at once and reads have no deadline. Limit: VGPUCTL_READ_TIMEOUT seconds
 * (default 10).
 */
import { realpathSync } from 'node:fs';
import * as z from 'zod/mini';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import '../validation/mini.js';

export const DEFAULT_READ_TIMEOUT_S = 10;
const MAX_READ_TIMEOUT_S = 3600;
const TICK_S = 0.25;

/*
 * $1 pid, $2 ticks to wait, $3 limit (for the message), $4 root, $5 the numbers of read and pread64 (fd is
 * the first argument), $6 of open (path first; "-" where the architecture has none), $7 of openat (path
 * second): /proc/<pid>/syscall shows numbers, and they differ between architectures (SYSCALLS below). A
 * tick where the thread is in another system call, or in the same one with more CPU time used, starts the
 * count again.
 */
const WATCHDOG_SH = `
p=$1; ticks=$2; limit=$3; root=$4; reads=$5; open=$6; openat=$7
last=; n=0
while :; do
  # stdin is a pipe from vgpuctl: end of file the moment it ends, a time-out every tick.
  if read -r -t ${TICK_S} _; then continue; elif [ $? -le 128 ]; then exit 0; fi
  s=$(cat "/proc/$p/syscall" 2>/dev/null) || exit 0
  cpu=$(cut -d' ' -f14,15 "/proc/$p/task/$p/stat" 2>/dev/null)
  set -- $s
  case " $reads $open $openat " in *" $1 "*) ;; *) last=; n=0; continue ;; esac
  if [ "$s $cpu" != "$last" ]; then last="$s $cpu"; n=0; continue; fi
  n=$((n + 1))
  [ "$n" -ge "$ticks" ] || continue
  call=$1
  case " $reads " in *" $call "*) call=read ;; esac
  [ "$call" = "$open" ] && call=open
  case $call in
    read) f=$(readlink "/proc/$p/fd/$(($2))") ;;
    open) f=$(dd if="/proc/$p/mem" bs=4096 iflag=skip_bytes,count_bytes skip=$(($2)) count=4096 status=none | tr '\\0' '\\n' | head -n 1) ;;
    *) f=$(dd if="/proc/$p/mem" bs=4096 iflag=skip_bytes,count_bytes skip=$(($3)) count=4096 status=none | tr '\\0' '\\n' | head -n 1) ;;
  esac
  case $f in "$root"/sys/*|/sys/*) ;; *) last=; n=0; continue ;; esac
  [ "$root" = / ] || f=\${f#"$root"}
  printf 'vgpuctl: error: cannot read %s: no answer within %s s; the driver behind it is stuck (see dmesg; a GPU may need a reset). vgpuctl stopped at this read (VGPUCTL_READ_TIMEOUT sets the limit)\\n' "$f" "$limit" >&2
  kill -KILL "$p"
  exit 0
done
`;

/**
 * System call numbers of the reads and opens a host read makes (node: openat then read), from the kernel's
 * tables: arch/x86/entry/syscalls/syscall_64.tbl and include/uapi/asm-generic/unistd.h (arm64, whose only
 * open is openat). Grace Hopper hosts are arm64.
 */
const SYSCALLS: Partial<Record<NodeJS.Architecture, { reads: string; open: string; openat: string }>> = {
  x64: { reads: '0 17', open: '2', openat: '257' },
  arm64: { reads: '63 67', open: '-', openat: '56' },
};

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

let armed: Promise<void> | null = null;

/**
 * Starts the watchdog for this process (once; later calls share it): call before reads that may block.
 * `root` is the host root, so that the message names the host path.
 */
export function armReadDeadline(root: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  armed ??= (async () => {
    const limitS = readTimeoutFrom(env);
    const calls = SYSCALLS[process.arch];
    // /proc/<pid>/syscall is Linux's; on an architecture whose numbers are not listed, no deadline.
    if (process.platform !== 'linux' || calls === undefined) return;
    let realRoot = root;
    try {
      realRoot = realpathSync.native(root);
    } catch {
      /* the root is checked elsewhere; the message then shows the path as the kernel resolved it */
    }
    const { execa } = await import('execa');
    const ticks = Math.max(1, Math.ceil(limitS / TICK_S));
    // It shares vgpuctl's stderr (whatever it is: a terminal, a pipe, journald's socket) and reads a pipe
    // only vgpuctl writes to: when vgpuctl ends, the pipe does, and the watchdog at once (so it never holds
    // vgpuctl's output open). Neither keeps vgpuctl alive.
    const sub = execa('/bin/bash', ['-c', WATCHDOG_SH, 'vgpuctl-watchdog', String(process.pid), String(ticks), String(limitS), realRoot, calls.reads, calls.open, calls.openat], {
      stdio: ['pipe', 'ignore', 'inherit'],
      detached: true,
      reject: false,
      cleanup: false,
      buffer: false,
    });
    sub.catch(() => undefined);
    // It ends on its own once it sees its stdin end, but it may not be reading yet (bash still starting, or
    // busy between two ticks); meanwhile it holds vgpuctl's stderr, and a caller waiting for that pipe to
    // close (cron, ssh, the benchmark) waited for it: ~90 ms more per run, measured in the benchmark.
    process.once('exit', () => {
      if (sub.exitCode === null && sub.signalCode === null) sub.kill('SIGKILL');
    });
    sub.unref();
    (sub.stdin as { unref?: () => void } | null)?.unref?.();
  })();
  return armed;
}
