/**
 * Laying out a large fixture (a100d-sriov-seed002: 40 VFs with 12 types each) is slow on a busy machine;
 * tests that need several fresh copies lay it out once and copy the tree (sysfs links are relative).
 */
export { fixtureCopy as freshCopyOf } from '../helpers/hosts.js';
