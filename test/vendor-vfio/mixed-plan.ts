/** The plan the vendor-VFIO tests apply to the mixed fixture: two P40-12C mdevs and three L40S-8Q on VFs. */
export const MIXED_PLAN_TEXT = `version: 1
defaults: { autostart: true }
gpus:
  - select: { address: "0000:82:00.0" }
    profile: P40-12C
    count: 2
  - select: { pf: "0000:41:00.0" }
    profile: L40S-8Q
    count: 3
`;
