/**
 * Processes from /proc: the qemu processes that hold devices (their command line names
 * /sys/bus/mdev/devices/<uuid> or a PCI host address) and NVIDIA's per-GPU service processes.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { HOST_PATHS, type HostRoot } from './host-root.js';

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
  const procs = await Promise.all(
    pids.map(async (pid): Promise<ProcessInfo | null> => {
      try {
        const [cmdline, comm] = await Promise.all([
          fs.readFile(path.join(dir, pid, 'cmdline'), 'utf8'),
          fs.readFile(path.join(dir, pid, 'comm'), 'utf8').catch(() => ''),
        ]);
        const argv = cmdline.split('\0');
        if (argv[argv.length - 1] === '') argv.pop();
        return { pid: Number(pid), comm: comm.trim(), argv };
      } catch {
        return null; // the process exited while we looked
      }
    }),
  );
  return procs.filter((p): p is ProcessInfo => p !== null).sort((a, b) => a.pid - b.pid);
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
