/** The minimal domain the generated fragments are validated in, and virt-xml-validate around it. */
import { execa } from 'execa';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

export function minimalDomain(devicesXml: string, name = 't'): string {
  return `<domain type='kvm'><name>${name}</name><memory>1048576</memory><os><type>hvm</type></os><devices>\n${devicesXml}\n</devices></domain>\n`;
}

export async function virtXmlValidate(dir: string, fileName: string, xml: string): Promise<{ ok: boolean; output: string }> {
  const file = path.join(dir, fileName);
  writeFileSync(file, xml);
  const r = await execa('virt-xml-validate', [file, 'domain'], { reject: false, all: true });
  return { ok: r.exitCode === 0, output: r.all ?? '' };
}
