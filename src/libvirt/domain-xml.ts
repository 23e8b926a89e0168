/**
 * The parts of a libvirt domain XML that say which devices it holds: its name, mdev hostdevs by UUID and
 * PCI hostdevs by address. A module of its own so that fast-xml-parser is loaded only when there is a
 * domain to read (domain-scan.ts imports it on demand).
 */
import { XMLParser } from 'fast-xml-parser';

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
