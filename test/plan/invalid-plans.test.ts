/**
 * A plan that is malformed, or that the rules refuse, is refused whole before any write: the exit code
 * says which (2 bad input, 1 refused by the rules, as the README's contract has it), the message names the
 * field (and for YAML mistakes the line), and the tree is left byte for byte as it was.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { HostRoot } from '../../src/host/host-root.js';
import { hostFrom, snapshotTree } from '../helpers/hosts.js';
import { cloneHost, sim, treeDiff, writePlan } from './plan-helpers.js';

let p40: HostRoot;
beforeAll(async () => {
  p40 = await hostFrom('p40-seed004');
});

interface Bad {
  name: string;
  plan: string;
  code: 1 | 2;
  /** What stderr must say: the field, and the file's line where there is one. */
  says: RegExp[];
}

const entry = (body: string) => `version: 1\ngpus:\n  - select: { address: "0000:82:00.0" }\n${body}`;

const cases: Bad[] = [
  {
    name: 'unknown profile',
    plan: entry('    profile: P40-13Q\n    count: 1\n'),
    code: 2,
    says: [/gpus\[0\]\.profile: unknown profile "P40-13Q"/, /vgpuctl profiles/],
  },
  {
    name: 'count over capacity (3 x P40-24C, max 1 per GPU)',
    plan: entry('    profile: P40-24C\n    count: 3\n'),
    code: 2,
    says: [/gpus\[0\]\.count \(P40-24C\): 0000:82:00\.0 has no room for another P40-24C \(1 of 1 already planned or present\)/],
  },
  {
    name: 'two profiles on one same-type GPU (P40)',
    plan: entry('    profile: P40-12C\n    count: 1\n  - select: { address: "0000:82:00.0" }\n    profile: P40-6Q\n    count: 1\n'),
    code: 2,
    says: [/gpus\[1\]\.profile \(P40-6Q\): 0000:82:00\.0: the GPU already carries nvidia-286 and allows one vGPU type per GPU/],
  },
  {
    name: 'the same type given twice to one GPU',
    plan: entry('    profile: P40-12C\n    count: 1\n  - select: { board: P40 }\n    type: nvidia-286\n    count: 1\n'),
    code: 2,
    says: [/gpus\[1\] \(nvidia-286\): 0000:82:00\.0 is already given nvidia-286 by another entry; merge the two entries/],
  },
  {
    name: 'malformed YAML',
    plan: 'version: 1\ngpus:\n  - select: { address: "0000:82:00.0"\n    profile: P40-12C\n    count: 1\n',
    code: 2,
    says: [/plan-\d+\.yaml:4: not valid YAML or JSON/],
  },
  {
    name: 'unknown key gpus.0.colour',
    plan: entry('    profile: P40-12C\n    colour: green\n    count: 1\n'),
    code: 2,
    says: [/plan-\d+\.yaml:5: gpus\.0\.colour: unknown key/],
  },
  {
    name: 'unknown top-level key',
    plan: 'version: 1\nhosts: [a]\ngpus:\n  - { select: { all: true }, profile: P40-12C, count: 1 }\n',
    code: 2,
    says: [/plan-\d+\.yaml:2: hosts: unknown key/],
  },
  {
    name: 'version: 2',
    plan: 'version: 2\ngpus:\n  - { select: { all: true }, profile: P40-12C, count: 1 }\n',
    code: 2,
    says: [/plan-\d+\.yaml:1: version: version must be 1/],
  },
  {
    name: 'both profile and type',
    plan: entry('    profile: P40-12C\n    type: nvidia-286\n    count: 1\n'),
    code: 2,
    says: [/plan-\d+\.yaml:3: gpus\.0: give exactly one of profile or type/],
  },
  {
    name: 'missing count',
    plan: entry('    profile: P40-12C\n'),
    code: 2,
    says: [/plan-\d+\.yaml:3: gpus\.0\.count: count is required/],
  },
  {
    name: 'count 0',
    plan: entry('    profile: P40-12C\n    count: 0\n'),
    code: 2,
    says: [/plan-\d+\.yaml:5: gpus\.0\.count: /],
  },
  {
    name: 'a malformed PCI address',
    plan: 'version: 1\ngpus:\n  - select: { address: "82:0.0" }\n    profile: P40-12C\n    count: 1\n',
    code: 2,
    says: [/plan-\d+\.yaml:3: gpus\.0\.select\.address: expected a PCI address like 0000:82:00\.0/],
  },
  {
    name: 'a malformed explicit UUID',
    plan: entry('    profile: P40-12C\n    count: 1\n    uuids: ["not-a-uuid"]\n'),
    code: 2,
    says: [/plan-\d+\.yaml:6: gpus\.0\.uuids\.0: expected a UUID/],
  },
];

describe('invalid plans are refused before any write', () => {
  for (const c of cases) {
    it(`${c.name}: exit ${c.code}, the field named, nothing changed`, async () => {
      const host = cloneHost(p40);
      const file = writePlan(c.plan);
      const before = await snapshotTree(host.root);
      for (const args of [['apply', '-f', file], ['apply', '-f', file, '--prune'], ['plan', '-f', file], ['assert', '-f', file]]) {
        const r = await sim(host, ...args);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(c.code);
        // assert lists what the rules refuse as "unmet" differences on stdout (exit 1); everything else is an error on stderr.
        const text = args[0] === 'assert' && c.code === 1 ? r.stdout : r.stderr;
        for (const re of c.says) expect(text, args.join(' ')).toMatch(re);
        if (args[0] === 'assert' && c.code === 1) expect(r.stdout).toMatch(/^The host does not match the plan:\n.*\n\s*unmet\s/);
        else expect(r.stdout).toBe('');
        if (args[0] === 'apply' && c.code === 1) expect(r.stderr).toMatch(/the plan cannot be met on this host, nothing was changed/);
      }
      expect(treeDiff(before, await snapshotTree(host.root))).toEqual([]);
    });
  }

  it('an unreadable plan file is bad input (exit 2) and names the file', async () => {
    const r = await sim(p40, 'apply', '-f', '/nonexistent/plan.yaml');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot read plan \/nonexistent\/plan\.yaml: ENOENT/);
  });

  it('every problem of a plan is listed at once', async () => {
    const file = writePlan(`version: 2
gpus:
  - select: { address: "0000:82:00.0" }
    profile: P40-12C
    colour: green
`);
    const r = await sim(p40, 'apply', '-f', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/:1: version: version must be 1/);
    expect(r.stderr).toMatch(/:5: gpus\.0\.colour: unknown key/);
    expect(r.stderr).toMatch(/:3: gpus\.0\.count: count is required/);
  });
});
