/**
 * The schema of a bundled host description (fixtures/<name>.json).
 *
 * A fixture is *not* what vgpuctl reads: `vgpuctl sim init` turns it into a tree in the kernel's own
 * layout (sysfs, /etc, /proc) and every other command reads only that tree. The spec exists so that the
 * fixtures stay reviewable (real addresses, ids and strings in one page) instead of thousands of files.
 */
import { z } from 'zod';

const hex = (digits: number) =>
  z.string().regex(new RegExp(`^0x[0-9a-f]{${digits}}$`), `expected 0x followed by ${digits} lower-case hex digits`);

export const pciAddressSchema = z
  .string()
  .regex(/^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/, 'expected a full PCI address like 0000:82:00.0');

/** One mdev type as the driver registers it under mdev_supported_types/<id>/. */
export const typeSpecSchema = z
  .object({
    id: z.string().min(1), // directory name, e.g. nvidia-286 or mtty-1
    name: z.string().optional(), // content of `name`; absent for drivers that do not provide it
    description: z.string().optional(), // content of `description`
    device_api: z.string().default('vfio-pci'),
    /** Initial available_instances when the description gives no max_instance (sample drivers). */
    available_instances: z.number().int().nonnegative().optional(),
  })
  .strict();
export type TypeSpec = z.infer<typeof typeSpecSchema>;

const sriovSpecSchema = z
  .object({
    totalvfs: z.number().int().positive(),
    numvfs: z.number().int().nonnegative(),
    /** Routing-id offset of VF0 and stride between VFs, as in sriov_offset / sriov_stride. */
    offset: z.number().int().positive(),
    stride: z.number().int().positive(),
    vf_device: hex(4),
    /** Type set registered on every VF (mdev mode); omitted when VFs are not mdev parents. */
    vf_types: z.string().optional(),
    /** Type set of NVIDIA's vendor interface on every VF (nvidia/creatable_vgpu_types; kernel >= 6.8, vGPU 17+, no mdev). */
    vendor_vfio_types: z.string().optional(),
    vf_driver: z.string().default('nvidia'),
    /** First IOMMU group number given to VF0; VFs get consecutive groups. */
    vf_iommu_group_base: z.number().int().nonnegative(),
  })
  .strict();

export const pciDeviceSpecSchema = z
  .object({
    address: pciAddressSchema,
    /** Directories between /sys/devices and the device: root complex and bridges, e.g. ["pci0000:80", "0000:80:02.0"]. */
    path: z.array(z.string().min(1)).min(1),
    vendor: hex(4),
    device: hex(4),
    subsystem_vendor: hex(4).default('0x10de'),
    subsystem_device: hex(4).default('0x0000'),
    class: hex(6),
    driver: z.string().nullable().default(null),
    iommu_group: z.number().int().nonnegative().nullable().default(null),
    numa_node: z.number().int().default(-1),
    /** Type set registered on this device as an mdev parent (non-SR-IOV GPUs). */
    types: z.string().optional(),
    sriov: sriovSpecSchema.optional(),
    comment: z.string().optional(),
  })
  .strict();
export type PciDeviceSpec = z.infer<typeof pciDeviceSpecSchema>;

/** A parent that is not a PCI device (the kernel's sample drivers: mtty, mdpy, mbochs). */
export const virtualParentSpecSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_.:-]+$/),
    /** Path under /sys/devices, e.g. ["virtual", "mtty", "mtty"]. */
    path: z.array(z.string().min(1)).min(1),
    types: z.string(),
  })
  .strict();

export const mdevSpecSchema = z
  .object({
    uuid: z.string().uuid(),
    parent: z.string(),
    type: z.string(),
  })
  .strict();

export const processSpecSchema = z
  .object({
    pid: z.number().int().positive(),
    comm: z.string(),
    cmdline: z.array(z.string()).min(1),
  })
  .strict();

export const fixtureSpecSchema = z
  .object({
    name: z.string(),
    summary: z.string(),
    sources: z.array(z.string()).default([]),
    type_sets: z.record(z.string(), z.array(typeSpecSchema)).default({}),
    pci: z.array(pciDeviceSpecSchema).default([]),
    virtual_parents: z.array(virtualParentSpecSchema).default([]),
    /** Active mdevs at start; laid out through the simulator's create semantics. */
    mdevs: z.array(mdevSpecSchema).default([]),
    /** Plain files under the root (mdevctl definitions, libvirt XML, unit files), path relative to root. */
    files: z.record(z.string(), z.string()).default({}),
    /** Symbolic links under the root: link path → target (as the real host has them, e.g. absolute). */
    symlinks: z.record(z.string(), z.string()).default({}),
    /** Kernel command line (/proc/cmdline). */
    cmdline: z.string().default('BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 ro'),
    /** PCI drivers registered with no device bound yet (vfio-pci loaded for passthrough), besides those devices use. */
    pci_drivers: z.array(z.string().regex(/^[A-Za-z0-9_-]+$/)).default([]),
    /** Loaded modules (/proc/modules). */
    modules: z.array(z.string()).default([]),
    processes: z.array(processSpecSchema).default([]),
  })
  .strict();
export type FixtureSpec = z.infer<typeof fixtureSpecSchema>;
