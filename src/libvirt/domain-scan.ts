/**
 * Which libvirt domains name which devices. libvirt keeps the persistent XML of every defined domain in
 * /etc/libvirt/qemu/<name>.xml and the live XML of running ones in /run/libvirt/qemu/<name>.xml (there
 * the domain is wrapped in <domstatus>). nova counts an mdev as assigned when any domain names it, so do we.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { HOST_PATHS, type HostRoot } from '../host/host-root.js';

export interface DomainRef {
  name: string;
  running: boolean;
  /** Host path of the XML file. */
  file: string;
  mdevUuids: string[];
  /** PCI hostdevs as full addresses (0000:82:00.0). */
  pciAddresses: string[];
}

async function scanDir(host: HostRoot, hostDir: string, running: boolean): Promise<DomainRef[]> {
  const dir = host.path(hostDir);
  const files = (await host.list(dir)).filter((f) => f.endsWith('.xml'));
  if (files.length === 0) return [];
  // The XML parser is a tenth of a listing's start-up: loaded only when there is a domain to read.
  const { parseDomainXml } = await import('./domain-xml.js');
  const refs = await Promise.all(
    files.map(async (f): Promise<DomainRef | null> => {
      const file = path.join(dir, f);
      let xml: string;
      try {
        xml = await fs.readFile(file, 'utf8');
      } catch {
        return null;
      }
      let parsed;
      try {
        parsed = parseDomainXml(xml);
      } catch {
        return null; // not XML we understand: it cannot be a domain libvirt would start
      }
      return {
        name: parsed.name ?? f.replace(/\.xml$/, ''),
        running,
        file: host.hostPathOf(file),
        mdevUuids: parsed.mdevUuids,
        pciAddresses: parsed.pciAddresses,
      };
    }),
  );
  return refs.filter((r): r is DomainRef => r !== null);
}

/** Every libvirt domain on the host: running ones (from /run) and defined ones (from /etc). */
export async function scanDomains(host: HostRoot): Promise<DomainRef[]> {
  const [running, defined] = await Promise.all([
    scanDir(host, HOST_PATHS.libvirtRun, true),
    scanDir(host, HOST_PATHS.libvirtConfig, false),
  ]);
  return [...running, ...defined];
}
