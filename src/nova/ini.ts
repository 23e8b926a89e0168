/**
 * nova.conf as oslo.config reads it (oslo_config/iniparser.py), kept line by line so that a rewrite can
 * leave every line it does not own byte for byte as it was.
 *
 * oslo's rules, which differ from Python's configparser: a comment is a line that starts with `#` or `;`
 * in column 0; a line that starts with a space or tab continues the previous value (so an indented `#` line
 * right after a key is part of its value, and one after a blank line is an error); a blank line ends a
 * value; `key = value` and `key: value` split at whichever of `=` and `:` comes first; a value wrapped in
 * matching quotes loses them; keys may repeat (multi-valued options such as `[pci] alias` collect every
 * occurrence, others take the last). Section names are compared in lower case, except `DEFAULT`.
 */

export type LineKind = 'blank' | 'comment' | 'section' | 'assignment' | 'continuation' | 'error';

export interface IniLine {
  /** The line without its line ending. */
  raw: string;
  /** `\n`, `\r\n`, `\r`, or '' for a last line without one. */
  eol: string;
  kind: LineKind;
  /** Raw name of the section the line belongs to (for a section line: its own name); null before the first. */
  section: string | null;
}

export interface IniAssignment {
  /** Raw section name and the name oslo compares (lower case except DEFAULT). */
  section: string;
  group: string;
  key: string;
  /** The value as oslo hands it to the option type: stripped, unquoted, continuation lines joined with \n. */
  value: string;
  /** Line indexes (0-based) of the key line and of its last continuation line. */
  first: number;
  last: number;
}

export interface IniProblem {
  /** 1-based line number, as oslo reports it. */
  line: number;
  message: string;
  text: string;
}

export interface IniDocument {
  lines: IniLine[];
  assignments: IniAssignment[];
  /** What oslo.config would refuse to parse (nova-compute does not start). */
  problems: IniProblem[];
  /** The line ending most lines use (\n unless the file says otherwise). */
  eol: string;
}

export const normalizeGroup = (section: string): string => (section === 'DEFAULT' ? section : section.toLowerCase());

/** Python's str.rstrip()/lstrip()/strip() without arguments (whitespace, including \r, \v, \f). */
const rstrip = (s: string): string => s.replace(/[\s\u001c-\u001f\u0085]+$/u, '');
const lstrip = (s: string): string => s.replace(/^[\s\u001c-\u001f\u0085]+/u, '');
const strip = (s: string): string => lstrip(rstrip(s));

function splitLines(text: string): Array<{ raw: string; eol: string }> {
  const out: Array<{ raw: string; eol: string }> = [];
  const re = /\r\n|\n|\r/g;
  let start = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    out.push({ raw: text.slice(start, m.index), eol: m[0] });
    start = m.index + m[0].length;
  }
  if (start < text.length) out.push({ raw: text.slice(start), eol: '' });
  return out;
}

function splitKeyValue(line: string): { key: string; value: string } | null {
  const colon = line.indexOf(':');
  const equal = line.indexOf('=');
  if (colon < 0 && equal < 0) return null;
  const at = colon < 0 || (equal >= 0 && equal < colon) ? equal : colon;
  let value = strip(line.slice(at + 1));
  if (value.length > 0 && value[0] === value[value.length - 1] && (value.startsWith('"') || value.startsWith("'"))) value = value.slice(1, -1);
  return { key: strip(line.slice(0, at)), value };
}

export function parseIni(text: string): IniDocument {
  const split = splitLines(text);
  const lines: IniLine[] = [];
  const assignments: IniAssignment[] = [];
  const problems: IniProblem[] = [];
  let section: string | null = null;
  let open: { a: IniAssignment; parts: string[] } | null = null;
  const flush = () => {
    if (!open) return;
    open.a.value = open.parts.join('\n');
    assignments.push(open.a);
    open = null;
  };
  const problem = (i: number, message: string, raw: string) => problems.push({ line: i + 1, message, text: raw });

  for (const [i, { raw, eol }] of split.entries()) {
    const line = rstrip(raw);
    if (line === '') {
      flush();
      lines.push({ raw, eol, kind: 'blank', section });
      continue;
    }
    if (line.startsWith(' ') || line.startsWith('\t')) {
      if (open === null) {
        problem(i, 'Unexpected continuation line', raw);
        lines.push({ raw, eol, kind: 'error', section });
      } else {
        const o: { a: IniAssignment; parts: string[] } = open;
        o.parts.push(lstrip(line));
        o.a.last = i;
        lines.push({ raw, eol, kind: 'continuation', section });
      }
      continue;
    }
    flush();
    if (line.startsWith('[')) {
      if (!line.endsWith(']')) {
        problem(i, 'Invalid section (must end with ])', raw);
        lines.push({ raw, eol, kind: 'error', section });
      } else if (line.length <= 2) {
        problem(i, 'Empty section name', raw);
        lines.push({ raw, eol, kind: 'error', section });
      } else {
        section = line.slice(1, -1);
        lines.push({ raw, eol, kind: 'section', section });
      }
      continue;
    }
    if (line.startsWith('#') || line.startsWith(';')) {
      lines.push({ raw, eol, kind: 'comment', section });
      continue;
    }
    const kv = splitKeyValue(line);
    if (kv === null) {
      problem(i, "No ':' or '=' found in assignment", raw);
      lines.push({ raw, eol, kind: 'error', section });
      continue;
    }
    if (kv.key === '') {
      problem(i, 'Key cannot be empty', raw);
      lines.push({ raw, eol, kind: 'error', section });
      continue;
    }
    if (section === null) {
      problem(i, 'Section must be started before assignment', raw);
      lines.push({ raw, eol, kind: 'error', section });
      continue;
    }
    open = { a: { section, group: normalizeGroup(section), key: kv.key, value: '', first: i, last: i }, parts: [kv.value] };
    lines.push({ raw, eol, kind: 'assignment', section });
  }
  flush();
  const counts = new Map<string, number>();
  for (const l of lines) if (l.eol) counts.set(l.eol, (counts.get(l.eol) ?? 0) + 1);
  const eol = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '\n';
  return { lines, assignments, problems, eol };
}

/** Every value of a key in a group (all sections of that name, in file order). */
export function valuesOf(doc: IniDocument, group: string, key: string): IniAssignment[] {
  return doc.assignments.filter((a) => a.group === group && a.key === key);
}

/** The value oslo uses for a single-valued option: the last one. */
export function lastValue(doc: IniDocument, group: string, key: string): IniAssignment | undefined {
  const all = valuesOf(doc, group, key);
  return all[all.length - 1];
}

/** Groups (normalized names) present in the document, in order of first appearance. */
export function groupsOf(doc: IniDocument): string[] {
  const seen: string[] = [];
  for (const l of doc.lines) if (l.kind === 'section' && l.section !== null && !seen.includes(normalizeGroup(l.section))) seen.push(normalizeGroup(l.section));
  return seen;
}

/** oslo's ListOpt: strip, drop trailing commas, split at commas, strip each item (empty items stay). */
export function parseList(value: string): string[] {
  const s = strip(value).replace(/,+$/, '');
  return s === '' ? [] : s.split(',').map(strip);
}
