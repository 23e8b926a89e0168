/**
 * Processes from /proc: the qemu processes that hold devices (their command line names
 * /sys/bus/mdev/devices/<uuid> or a PCI host address) and NVIDIA's per-GPU service processes.
 */
import path from 'node:path';
import { HOST_PATHS, readFileText, type HostRoot } from './host-root.js';

export interface ProcessInfo {
  pid: number;
  comm: string;
  argv: string[];
}

export async function listProcesses(host: HostRoot): Promise<ProcessInfo[]> {
  return host.memo('processes', () => readProcesses(host));
}

async function readProcesses(host: HostRoot): Promise<ProcessInfo[]> {
  const dir = host.path(HOST_PATHS.proc);
  const pids = (await host.list(dir)).filter((e) => /^\d+$/.test(e));
  // Plain system calls, as for sysfs (host-root.ts): a hypervisor runs hundreds of processes, and two
  // fs.promises reads each were eight thread-pool round trips per process.
  const procs: ProcessInfo[] = [];
  for (const pid of pids) {
    let cmdline: string;
    try {
      cmdline = readFileText(path.join(dir, pid, 'cmdline'));
    } catch {
      continue; // the process exited while we looked
    }
    let comm = '';
    try {
      comm = readFileText(path.join(dir, pid, 'comm'));
    } catch {
      /* exited between the two reads: its command line still tells what it was */
    }
    const argv = cmdline.split('\0');
    if (argv[argv.length - 1] === '') argv.pop();
    procs.push({ pid: Number(pid), comm: comm.trim(), argv });
  }
  return procs.sort((a, b) => a.pid - b.pid);
}

/**
 * UUIDs of mdevs a qemu process holds. libvirt passes them as `sysfsdev=/sys/bus/mdev/devices/<uuid>`
 * (or the same path inside a JSON -device argument); an operator's hand-written command line does too.
 */
export function mdevUuidsInQemuArgs(argv: string[]): string[] {
  const found = new Set<string>();
  for (const arg of argv) {
    for (const m of arg.matchAll(/\/sys\/bus\/mdev\/devices\/([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})/g)) {
      found.add(m[1]!.toLowerCase());
    }
  }
  return [...found];
}

export const isQemu = (p: ProcessInfo): boolean =>
  /qemu/.test(p.comm) || /(^|\/)qemu(-system-[a-z0-9_]+|-kvm)?$/.test(p.argv[0] ?? '');
