/**
 * A unified diff (`diff -u` format, 3 lines of context) of two texts, for `nova-config --merge --dry-run`.
 * Myers' O(ND) algorithm: a merge changes a few lines of a long file, so D stays small.
 */

type Op = { kind: ' ' | '-' | '+'; line: string };

function splitKeepingEnds(text: string): string[] {
  if (text === '') return [];
  const parts = text.match(/[^\r\n]*(\r\n|\n|\r)|[^\r\n]+$/g);
  return parts ?? [];
}

function myers(a: string[], b: string[]): Op[] {
  const n = a.length;
  const m = b.length;
  const max = n + m;
  const offset = max + 1;
  let v: Int32Array = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  let found = false;
  for (let d = 0; d <= max && !found; d++) {
    trace.push(v.slice());
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!) ? v[offset + k + 1]! : v[offset + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[offset + k] = x;
      if (x >= n && y >= m) {
        found = true;
        break;
      }
    }
  }
  trace.push(v.slice());
  // Walk back through the traces.
  const ops: Op[] = [];
  let x = n;
  let y = m;
  for (let d = trace.length - 2; d >= 0; d--) {
    v = trace[d]!;
    const k = x - y;
    const prevK = k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!) ? k + 1 : k - 1;
    const prevX = d === 0 ? 0 : v[offset + prevK]!;
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      ops.push({ kind: ' ', line: a[x - 1]! });
      x--;
      y--;
    }
    if (d === 0) break;
    if (x === prevX) ops.push({ kind: '+', line: b[y - 1]! });
    else ops.push({ kind: '-', line: a[x - 1]! });
    x = prevX;
    y = prevY;
  }
  while (x > 0 && y > 0) {
    ops.push({ kind: ' ', line: a[x - 1]! });
    x--;
    y--;
  }
  return ops.reverse();
}

const show = (op: Op): string[] => {
  const body = op.line.replace(/(\r\n|\n|\r)$/, '');
  const ends = /(\r\n|\n|\r)$/.test(op.line);
  return ends ? [`${op.kind}${body}`] : [`${op.kind}${body}`, '\\ No newline at end of file'];
};

/** `--- a` / `+++ b` and the hunks; '' when the texts are equal. */
export function unifiedDiff(before: string, after: string, fromLabel: string, toLabel: string, context = 3): string {
  if (before === after) return '';
  const a = splitKeepingEnds(before);
  const b = splitKeepingEnds(after);
  const ops = myers(a, b);
  const out = [`--- ${fromLabel}`, `+++ ${toLabel}`];
  // Index positions in a and b for every op.
  const pos: Array<{ ai: number; bi: number }> = [];
  let ai = 0;
  let bi = 0;
  for (const op of ops) {
    pos.push({ ai, bi });
    if (op.kind !== '+') ai++;
    if (op.kind !== '-') bi++;
  }
  const changed = ops.map((o, i) => (o.kind === ' ' ? -1 : i)).filter((i) => i >= 0);
  let i = 0;
  while (i < changed.length) {
    let start = Math.max(0, changed[i]! - context);
    let end = Math.min(ops.length, changed[i]! + context + 1);
    let j = i;
    while (j + 1 < changed.length && changed[j + 1]! - context <= end) {
      j++;
      end = Math.min(ops.length, changed[j]! + context + 1);
    }
    start = Math.max(0, start);
    const slice = ops.slice(start, end);
    const aStart = pos[start]!.ai;
    const bStart = pos[start]!.bi;
    const aLen = slice.filter((o) => o.kind !== '+').length;
    const bLen = slice.filter((o) => o.kind !== '-').length;
    const range = (s: number, len: number) => (len === 1 ? `${s + 1}` : `${len === 0 ? s : s + 1},${len}`);
    out.push(`@@ -${range(aStart, aLen)} +${range(bStart, bLen)} @@`);
    for (const op of slice) out.push(...show(op));
    i = j + 1;
  }
  return out.join('\n');
}
