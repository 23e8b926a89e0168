/** The benchmark's printed report and the README table (between markers in its "## Performance" section). */
import { readFileSync, writeFileSync } from 'node:fs';

const ms = (x) => (x === null || x === undefined ? '–' : x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(x < 10 ? 1 : 0)} ms`);
const mb = (kb) => (kb === null || kb === undefined ? '–' : `${(kb / 1024).toFixed(0)} MB`);
const n = (x) => (x === null || x === undefined ? '–' : String(x));
const r = (x) => (x === null || x === undefined ? '–' : x.toFixed(2));

function table(head, rows) {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');
}

export function renderReport(res) {
  const m = res.machine;
  const lines = [];
  lines.push(
    `Machine: ${m.cpu}, ${m.nproc} CPUs, node ${m.node}, kernel ${m.kernel}${m.mdevctl ? `, ${m.mdevctl}` : ', no mdevctl'}; trees on ${m.tree_filesystem}; ` +
      `load average ${m.loadavg_start[0]} at the start, ${m.loadavg_end[0]} at the end; ${res.settings.runs} runs per figure (median), ${res.date.slice(0, 10)}.`,
  );
  lines.push('');
  lines.push(
    `Start-up: \`node -e 0\` ${ms(res.startup.node_e0.wall_ms)}, \`vgpuctl --version\` ${ms(res.startup.version.wall_ms)} ` +
      `(+${ms(res.startup.version.wall_ms - res.startup.node_e0.wall_ms)}), peak RSS ${mb(res.startup.version.rss_kb)}.`,
  );
  lines.push('');
  const rows = res.comparisons.map((c) => [
    `${c.label}<br>${c.host}`,
    ms(c.vgpuctl.wall_ms),
    c.mdevctl ? ms(c.mdevctl.wall_ms) + (c.mdevctl.mdevctl_only_ms !== undefined ? ` (mdevctl alone ${ms(c.mdevctl.mdevctl_only_ms)})` : '') : '–',
    r(c.ratio?.wall),
    mb(c.vgpuctl.rss_kb),
    c.mdevctl ? mb(c.mdevctl.rss_kb) : '–',
    r(c.ratio?.rss),
    n(c.vgpuctl.files?.host_files),
    c.mdevctl ? n(c.mdevctl.files?.host_files) : '–',
    r(c.ratio?.files),
  ]);
  lines.push(table(['command, host', 'wall vgpuctl', 'wall mdevctl', 'ratio', 'RSS vgpuctl', 'RSS mdevctl', 'ratio', 'files read vgpuctl', 'files read mdevctl', 'ratio'], rows));
  lines.push('');
  for (const [id, f] of Object.entries(res.floors ?? {})) {
    lines.push(
      `Floor of \`types\` (${id}): a bare node script that only opens, reads and closes the ${f.files} files mdevctl's \`types --dumpjson\` reads ` +
        `takes ${ms(f.node_read_ms)} (node's start-up, ${ms(f.node_e0_ms)}, included): ${r(f.node_read_ratio)}x mdevctl.`,
    );
    lines.push('');
  }
  lines.push(table(['target', 'measured', 'met'], res.targets.map((t) => [t.text, t.value === null ? '–' : `${t.value} ${t.unit}`, t.met === null ? 'not measured' : t.met ? 'yes' : '**no**'])));
  if (res.curve) {
    lines.push('');
    const cmds = res.curve.commands;
    const head = ['parents x types', ...cmds.map((c) => `${c} files (wall)`), 'mdevctl types files (wall)', 'mdevctl list --defined files (wall)'];
    const cell = (x) => (x ? `${n(x.files)} (${ms(x.wall_ms)})` : '–');
    lines.push(
      table(
        head,
        res.curve.points.map((p) => [`${p.parents} x 13 = ${p.parent_types}`, ...cmds.map((c) => cell(p.vgpuctl[c]) + (c === 'create' ? ` [${p.creates} dev]` : c === 'apply' ? ` [${p.apply_devices} dev]` : '')), cell(p.mdevctl['types']), cell(p.mdevctl['list --defined'])]),
      ),
    );
    const g = Object.entries(res.curve.growth_40_to_160);
    lines.push('');
    lines.push(`Files read, 40 -> 160 parents (4x): ${g.map(([k, v]) => `${k} x${v.factor}${v.linear ? '' : ' (NOT linear)'}`).join(', ')}.`);
  }
  const markdown = lines.join('\n');
  const text = markdown.replace(/<br>/g, ' — ');
  return { markdown, text };
}

const BEGIN = '<!-- bench:begin (npm run bench -- --update-readme rewrites this part) -->';
const END = '<!-- bench:end -->';

/** Replaces the text between the markers; adds a "## Performance" section with them when there is none. */
export function updateReadme(file, markdown) {
  const text = readFileSync(file, 'utf8');
  const block = `${BEGIN}\n${markdown}\n${END}`;
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  let out;
  if (start >= 0 && end > start) out = text.slice(0, start) + block + text.slice(end + END.length);
  else out = `${text.replace(/\n*$/, '\n')}\n## Performance\n\n${block}\n`;
  writeFileSync(file, out);
}
