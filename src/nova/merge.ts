/**
 * Rewrites the parts of an existing nova.conf that vgpuctl owns and nothing else: every other line,
 * comment, blank line and line ending stays byte for byte.
 *
 * What is owned is said by the caller:
 * - keys of a shared group (`[devices] enabled_mdev_types`, `[pci] alias`): every occurrence in every
 *   section of that group is removed (with its continuation lines) and the new lines take the place of the
 *   first one (or follow the group's last key, or a new section at the end of the file);
 * - whole groups (`[mdev_*]`, `[vgpu_*]`): from a section's header to its last key line. Runs of owned
 *   sections that follow one another are one region; the new sections take the place of the first region.
 *   Comment and blank lines after the last key of a region belong to what follows and are kept.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { VgpuctlError } from '../errors/vgpuctl-error.js';
import { normalizeGroup, parseIni, type IniDocument } from './ini.js';

export interface OwnedKeys {
  group: string;
  keys: string[];
  /** Replacement lines (without line endings), e.g. `enabled_mdev_types = nvidia-699, nvidia-700`. */
  lines: string[];
}

export interface OwnedSection {
  name: string;
  lines: string[];
}

export interface MergeSpec {
  keys: OwnedKeys[];
  ownsGroup: (group: string) => boolean;
  sections: OwnedSection[];
  /** New owned sections go after this group when the file has none of them yet. */
  anchorGroup: string;
}

interface Span {
  header: number;
  end: number; // exclusive
  group: string;
  /** Last line that is a key or a continuation, or the header when the section has none. */
  lastContent: number;
}

function spansOf(doc: IniDocument): Span[] {
  const spans: Span[] = [];
  for (const [i, l] of doc.lines.entries()) {
    if (l.kind !== 'section' || l.section === null) continue;
    const prev = spans[spans.length - 1];
    if (prev) prev.end = i;
    spans.push({ header: i, end: doc.lines.length, group: normalizeGroup(l.section), lastContent: i });
  }
  for (const s of spans) {
    for (let i = s.header + 1; i < s.end; i++) {
      const k = doc.lines[i]!.kind;
      if (k === 'assignment' || k === 'continuation') s.lastContent = i;
    }
  }
  return spans;
}

export interface MergeResult {
  text: string;
  changed: boolean;
}

export function mergeIni(original: string, spec: MergeSpec, fileLabel: string): MergeResult {
  const doc = parseIni(original);
  if (doc.problems.length > 0) {
    const p = doc.problems[0]!;
    throw new VgpuctlError(
      'refused',
      `${fileLabel}:${p.line}: oslo.config cannot parse this line (${p.message}: ${JSON.stringify(p.text)}), so nova cannot read the file either; fix it before merging`,
    );
  }
  const eol = doc.eol;
  const n = doc.lines.length;
  const remove = new Array<boolean>(n).fill(false);
  const insertBefore = new Map<number, string[]>();
  const appendAtEnd: string[] = [];
  const insert = (at: number, lines: string[]) => {
    if (at >= n) appendAtEnd.push(...lines);
    else insertBefore.set(at, [...(insertBefore.get(at) ?? []), ...lines]);
  };
  const spans = spansOf(doc);
  const endOfContent = new Map<string, number>(); // group → line after which owned sections may follow

  // Shared groups: remove every owned key, put the new lines where the first one was.
  for (const owned of spec.keys) {
    const group = normalizeGroup(owned.group);
    const hits = doc.assignments.filter((a) => a.group === group && owned.keys.includes(a.key));
    for (const a of hits) for (let i = a.first; i <= a.last; i++) remove[i] = true;
    const groupSpans = spans.filter((s) => s.group === group);
    const first = groupSpans[0];
    if (hits.length > 0) {
      insert(hits[0]!.first, owned.lines);
    } else if (first) {
      insert(first.lastContent + 1, owned.lines);
    } else if (owned.lines.length > 0) {
      appendAtEnd.push('', `[${owned.group}]`, ...owned.lines);
    }
    if (first) endOfContent.set(group, first.lastContent);
  }

  // Owned groups: regions of consecutive owned sections.
  const regions: Array<{ from: number; to: number }> = [];
  for (let i = 0; i < spans.length; i++) {
    if (!spec.ownsGroup(spans[i]!.group)) continue;
    let j = i;
    while (j + 1 < spans.length && spec.ownsGroup(spans[j + 1]!.group)) j++;
    regions.push({ from: spans[i]!.header, to: spans[j]!.lastContent });
    i = j;
  }
  for (const r of regions) for (let i = r.from; i <= r.to; i++) remove[i] = true;
  const block: string[] = [];
  for (const [k, s] of spec.sections.entries()) {
    if (k > 0) block.push('');
    block.push(`[${s.name}]`, ...s.lines);
  }
  const isBlank = (i: number) => i >= 0 && i < n && !remove[i] && doc.lines[i]!.kind === 'blank';
  if (regions.length > 0) {
    const at = regions[0]!.from;
    if (block.length > 0) {
      insert(at, block);
      if (regions[0]!.to + 1 < n && !isBlank(regions[0]!.to + 1)) insert(regions[0]!.to + 1, ['']);
    }
    // A removed region leaves the blank lines on both sides: keep one.
    for (const [k, r] of regions.entries()) {
      if (k === 0 && block.length > 0) continue;
      if (isBlank(r.from - 1) && isBlank(r.to + 1)) remove[r.to + 1] = true;
    }
  } else if (block.length > 0) {
    const anchor = normalizeGroup(spec.anchorGroup);
    const after = endOfContent.get(anchor) ?? spans.find((s) => s.group === anchor)?.lastContent;
    if (after === undefined) {
      appendAtEnd.push('', ...block);
    } else {
      const lines = ['', ...block];
      if (after + 1 < n && doc.lines[after + 1]!.kind !== 'blank') lines.push('');
      // After the anchor's own new keys, which were placed at lastContent + 1 when it had none.
      insert(after + 1, lines);
    }
  }

  let out = '';
  for (let i = 0; i < n; i++) {
    for (const l of insertBefore.get(i) ?? []) out += l + eol;
    if (!remove[i]) out += doc.lines[i]!.raw + doc.lines[i]!.eol;
  }
  if (appendAtEnd.length > 0) {
    if (out.length > 0 && !/(\r\n|\n|\r)$/.test(out)) out += eol;
    // Do not start with a blank line at the top of an empty file, nor double one after a blank line.
    const lines = out.length === 0 || /(\r\n|\n|\r)(\r\n|\n|\r)$/.test(out) ? dropLeadingBlank(appendAtEnd) : appendAtEnd;
    for (const l of lines) out += l + eol;
  }
  return { text: out, changed: out !== original };
}

function dropLeadingBlank(lines: string[]): string[] {
  return lines[0] === '' ? lines.slice(1) : lines;
}

/**
 * Replaces a file through a temporary file in the same directory and a rename, keeping its mode and (when
 * run as root) its owner and group: nova.conf is typically root:nova 0640.
 */
export async function writeFilePreserving(realPath: string, content: string): Promise<void> {
  const st = await fs.stat(realPath);
  const tmp = path.join(path.dirname(realPath), `.${path.basename(realPath)}.vgpuctl-${process.pid}.tmp`);
  const handle = await fs.open(tmp, 'wx', st.mode & 0o7777);
  try {
    await handle.writeFile(content);
    await handle.chmod(st.mode & 0o7777);
    if (process.getuid?.() === 0) await handle.chown(st.uid, st.gid);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.rename(tmp, realPath);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}
