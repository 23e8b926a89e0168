/** Health output: Nagios plugin format, Prometheus text exposition (node_exporter textfile), plain text. */
import { STATUS_CODE, STATUS_RANK, type HealthReport } from './checks.js';

/**
 * The one-sentence summary of the Nagios status line (and of the JSON `summary`): every check that is not OK,
 * worst first; a check whose status differs from the overall one carries its status, so an UNKNOWN check
 * (one that could not run) stays visible under a CRITICAL or WARNING.
 */
export function healthSummary(r: Pick<HealthReport, 'status' | 'checks'>): string {
  const bad = STATUS_RANK.filter((s) => s !== 'OK').flatMap((s) => r.checks.filter((c) => c.status === s));
  if (bad.length === 0) return `${r.checks.length} checks OK`;
  return bad.map((c) => `${c.status === r.status ? '' : `${c.status} `}${c.check}: ${c.message}`).join('; ');
}

/** Nagios: one status line, then long output, perfdata after '|'. */
export function formatNagios(r: HealthReport): string {
  const summary = healthSummary(r);
  const perf = r.capacity.map((c) => `'avail_${c.parent}_${c.profile ?? c.type}'=${c.available};;;0`);
  const perfActive = r.capacity.filter((c) => c.active > 0).map((c) => `'active_${c.parent}_${c.profile ?? c.type}'=${c.active};;;0`);
  const lines = [`VGPUCTL ${r.status} - ${summary.replace(/\|/g, '/')}${perf.length + perfActive.length > 0 ? ` | ${[...perf, ...perfActive].join(' ')}` : ''}`];
  for (const c of r.checks) lines.push(`${c.status}: ${c.check}: ${c.message.replace(/\|/g, '/')}`);
  return lines.join('\n');
}

const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const labels = (l: Record<string, string | null>): string =>
  `{${Object.entries(l)
    .map(([k, v]) => `${k}="${esc(v ?? '')}"`)
    .join(',')}}`;

export function formatPrometheus(r: HealthReport, now = Date.now()): string {
  const out: string[] = [];
  out.push('# HELP vgpuctl_check_status Result of each vgpuctl health check (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).');
  out.push('# TYPE vgpuctl_check_status gauge');
  for (const c of r.checks) out.push(`vgpuctl_check_status${labels({ check: c.check })} ${STATUS_CODE[c.status]}`);
  out.push('# HELP vgpuctl_check_duration_seconds Time each check took.');
  out.push('# TYPE vgpuctl_check_duration_seconds gauge');
  for (const c of r.checks) out.push(`vgpuctl_check_duration_seconds${labels({ check: c.check })} ${(c.duration_ms / 1000).toFixed(3)}`);
  out.push('# HELP vgpuctl_available_instances Instances of the vGPU type that can still be created on the parent (an mdev parent, or a vendor-VFIO GPU).');
  out.push('# TYPE vgpuctl_available_instances gauge');
  for (const c of r.capacity) out.push(`vgpuctl_available_instances${labels({ parent: c.parent, type: c.type, profile: c.profile })} ${c.available}`);
  out.push('# HELP vgpuctl_mdev_active Active vGPUs of the type on the parent (mdevs, or VFs of a vendor-VFIO GPU).');
  out.push('# TYPE vgpuctl_mdev_active gauge');
  for (const c of r.capacity) out.push(`vgpuctl_mdev_active${labels({ parent: c.parent, type: c.type, profile: c.profile })} ${c.active}`);
  out.push('# HELP vgpuctl_checks Number of checks that ended in each status (UNKNOWN: the check could not run).');
  out.push('# TYPE vgpuctl_checks gauge');
  for (const s of STATUS_RANK) out.push(`vgpuctl_checks${labels({ status: s })} ${r.counts[s]}`);
  out.push('# HELP vgpuctl_health_status Overall health (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).');
  out.push('# TYPE vgpuctl_health_status gauge');
  out.push(`vgpuctl_health_status ${STATUS_CODE[r.status]}`);
  out.push('# HELP vgpuctl_last_run_timestamp_seconds When vgpuctl health last ran.');
  out.push('# TYPE vgpuctl_last_run_timestamp_seconds gauge');
  out.push(`vgpuctl_last_run_timestamp_seconds ${Math.floor(now / 1000)}`);
  return out.join('\n') + '\n';
}

export function formatText(r: HealthReport): string {
  return [`${r.status}`, ...r.checks.map((c) => `  ${c.status.padEnd(8)} ${c.check.padEnd(13)} ${c.message}`)].join('\n');
}
