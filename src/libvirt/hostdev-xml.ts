/**
 * libvirt `<hostdev>` elements: a mediated device (a vGPU) by UUID, and a whole PCI function for
 * passthrough. Guest addresses are left to libvirt: writing the host's address as the guest address of
 * several hostdevs is what made seed 004's domain fail with "Attempted double use of PCI Address".
 */

export type Display = 'on' | 'off';

const attr = (v: string): string => v.replace(/&/g, '&amp;').replace(/'/g, '&apos;').replace(/</g, '&lt;');

/**
 * `<hostdev mode='subsystem' type='mdev' model='vfio-pci' display='off'>` for one mdev UUID. `display`
 * exists for vfio-pci mdevs only; s390 devices (vfio-ccw, vfio-ap) get the model alone.
 */
export function mdevHostdevXml(uuid: string, display: Display = 'off', indent = '', model: 'vfio-pci' | 'vfio-ccw' | 'vfio-ap' = 'vfio-pci'): string {
  const displayAttr = model === 'vfio-pci' ? ` display='${display}'` : '';
  return [
    `${indent}<hostdev mode='subsystem' type='mdev' model='${model}'${displayAttr}>`,
    `${indent}  <source>`,
    `${indent}    <address uuid='${attr(uuid)}'/>`,
    `${indent}  </source>`,
    `${indent}</hostdev>`,
  ].join('\n');
}

/**
 * `<hostdev mode='subsystem' type='pci' managed='yes'>` for one PCI function (0000:18:00.1); `managed: false`
 * for a function libvirt must leave on its driver (a vendor-VFIO VF stays on nvidia).
 */
export function pciHostdevXml(address: string, indent = '', { managed = true }: { managed?: boolean } = {}): string {
  const m = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(address);
  if (!m) throw new Error(`internal: not a PCI address: ${address}`);
  return [
    `${indent}<hostdev mode='subsystem' type='pci' managed='${managed ? 'yes' : 'no'}'>`,
    `${indent}  <source>`,
    `${indent}    <address domain='0x${m[1]}' bus='0x${m[2]}' slot='0x${m[3]}' function='0x${m[4]}'/>`,
    `${indent}  </source>`,
    `${indent}</hostdev>`,
  ].join('\n');
}
