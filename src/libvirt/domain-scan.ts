/**
 * Which libvirt domains name which devices. libvirt keeps the persistent XML of every defined domain in
 * /etc/libvirt/qemu/<name>.xml and the live XML of running ones in /run/libvirt/qemu/<name>.xml (there
 * the domain is wrapped in <domstatus>). nova counts an mdev as assigned when any domain names it, so do we.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { XMLParser } from 'fast-xml-parser';
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

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  isArray: (name) => name === 'hostdev',
});

type XmlNode = Record<string, unknown>;
const asNode = (v: unknown): XmlNode | undefined => (typeof v === 'object' && v !== null ? (v as XmlNode) : undefined);

const hexField = (v: unknown, width: number): string | null => {
  if (typeof v !== 'string' && typeof v !== 'number') return null;
  const n = Number.parseInt(String(v), String(v).startsWith('0x') ? 16 : 10);
  return Number.isNaN(n) ? null : n.toString(16).padStart(width, '0');
};

export function parseDomainXml(xml: string): { name: string | null; mdevUuids: string[]; pciAddresses: string[] } {
  const doc = asNode(parser.parse(xml));
  const domain = asNode(doc?.['domain']) ?? asNode(asNode(doc?.['domstatus'])?.['domain']);
  if (!domain) return { name: null, mdevUuids: [], pciAddresses: [] };
  const name = typeof domain['name'] === 'string' ? domain['name'] : domain['name'] === undefined ? null : String(domain['name']);
  const hostdevs = (asNode(domain['devices'])?.['hostdev'] as unknown[] | undefined) ?? [];
  const mdevUuids: string[] = [];
  const pciAddresses: string[] = [];
  for (const hd of hostdevs.map(asNode)) {
    const address = asNode(asNode(hd?.['source'])?.['address']);
    if (!hd || !address) continue;
    if (hd['@type'] === 'mdev' && typeof address['@uuid'] === 'string') mdevUuids.push(address['@uuid'].toLowerCase());
    if (hd['@type'] === 'pci') {
      const parts = [hexField(address['@domain'], 4), hexField(address['@bus'], 2), hexField(address['@slot'], 2), hexField(address['@function'], 1)];
      if (parts.every((p) => p !== null)) pciAddresses.push(`${parts[0]}:${parts[1]}:${parts[2]}.${parts[3]}`);
    }
  }
  return { name, mdevUuids, pciAddresses };
}

async function scanDir(host: HostRoot, hostDir: string, running: boolean): Promise<DomainRef[]> {
  const dir = host.path(hostDir);
  const files = (await host.list(dir)).filter((f) => f.endsWith('.xml'));
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
