// Runs inside the VM (test/kernel/run-in-vm.sh), as root, against the real kernel's mdev bus with the
// sample drivers mtty, mdpy and mbochs loaded. vgpuctl runs in-process (node starts slowly under TCG), its
// real sysfs path with root /. Prints one JSON line per check: {"check": ..., "ok": bool, "detail": ...}.
import { execa } from 'execa';
import { promises as fs, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { run } = await import(path.join(repo, 'dist/cli/main.js'));
const { runActions } = await import(path.join(repo, 'dist/lifecycle/actions.js'));
const { sysfsBackend } = await import(path.join(repo, 'dist/lifecycle/backends.js'));
const { HostRoot } = await import(path.join(repo, 'dist/host/host-root.js'));
const { KernelSysfsWriter } = await import(path.join(repo, 'dist/host/sysfs-writer.js'));

const results = [];
const check = (name, ok, detail = '') => {
  results.push({ check: name, ok: Boolean(ok), detail: typeof detail === 'string' ? detail : JSON.stringify(detail) });
  console.log(JSON.stringify(results[results.length - 1]));
};

async function vg(args, env = {}) {
  let out = '';
  let err = '';
  const code = await run(args, { out: (t) => (out += t + (t.endsWith('\n') ? '' : '\n')), err: (t) => (err += t + (t.endsWith('\n') ? '' : '\n')) }, { ...process.env, ...env });
  return { code, out, err, json: () => JSON.parse(out) };
}
const mdevctl = async (...args) => {
  const r = await execa('mdevctl', args, { reject: false });
  return { code: r.exitCode, out: r.stdout, err: r.stderr };
};
const flatten = (dump) => {
  const o = {};
  for (const ps of dump) for (const [p, cs] of Object.entries(ps)) for (const c of cs) Object.assign((o[p] ??= {}), c);
  return o;
};
const oursTypes = (json) => {
  const o = {};
  for (const t of json.types) {
    const e = { available_instances: t.available_instances, device_api: t.device_api };
    if (t.name) e.name = t.name;
    if (t.description) e.description = t.description;
    (o[t.parent] ??= {})[t.type] = e;
  }
  return o;
};
const oursDevices = (json) => {
  const o = {};
  for (const d of json.devices) (o[d.parent] ??= {})[d.uuid] = { mdev_type: d.type, start: d.autostart ? 'auto' : 'manual', attrs: d.attrs };
  return o;
};
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const avail = async (parent, type) => Number((await fs.readFile(`/sys/class/mdev_bus/${parent}/mdev_supported_types/${type}/available_instances`, 'utf8')).trim());
const U = (n) => `aaaaaaa${n}-0000-4000-8000-00000000000${n}`;

// 0. the environment: mdev parents from the sample drivers, mdevctl's config dirs.
for (const d of ['/etc/mdevctl.d/scripts.d/callouts', '/etc/mdevctl.d/scripts.d/notifiers']) await fs.mkdir(d, { recursive: true });
const parents = (await fs.readdir('/sys/class/mdev_bus').catch(() => [])).sort();
check('kernel has the sample parents', same(parents, ['mbochs', 'mdpy', 'mtty']), parents);

// 1. types / gpus / list agree with mdevctl on the real kernel.
{
  const t = await vg(['types', '-o', 'json']);
  const m = await mdevctl('types', '--dumpjson');
  check('types agrees with mdevctl types --dumpjson', t.code === 0 && same(oursTypes(t.json()), flatten(JSON.parse(m.out))), { ours: t.json().types.length, err: t.err });
  check('types: sample types have no description', t.json().types.filter((x) => x.parent === 'mtty').every((x) => x.description === null));
  const g = await vg(['gpus', '-o', 'json']);
  check('gpus runs on a host without NVIDIA GPUs', g.code === 0 && g.json().gpus.length === 0, g.out + g.err);
  const l = await vg(['list', '-o', 'json']);
  check('list (none active) agrees with mdevctl', l.code === 0 && l.json().devices.length === 0 && JSON.parse((await mdevctl('list', '--dumpjson')).out).length === 0);
}

// 2. capture the untouched kernel tree for the simulator comparison (section 6).
const simRoot = `/tmp/vgpuctl-vm-sim-${process.pid}-${Date.now()}`;
{
  const c = await vg(['sim', 'capture', simRoot, '-o', 'json']);
  check('sim capture of the real sysfs', c.code === 0 && c.json().parents === 3, c.out + c.err);
}

// 3. lifecycle on the real kernel.
{
  const before = await avail('mtty', 'mtty-2');
  const r = await vg(['create', '-t', 'mtty-2', '-p', 'mtty', '--count', '2', '-u', U(1), U(2), '-o', 'json']);
  const after = await avail('mtty', 'mtty-2');
  check('create --count 2 makes two devices', r.code === 0 && r.json().created.length === 2, r.out + r.err);
  check('available_instances falls', after === before - 2, { before, after });
  check('/sys/bus/mdev/devices links appear', existsSync(`/sys/bus/mdev/devices/${U(1)}`) && existsSync(`/sys/bus/mdev/devices/${U(2)}`));
  const group = path.basename(await fs.readlink(`/sys/bus/mdev/devices/${U(1)}/iommu_group`).catch(() => ''));
  check('/dev/vfio/N exists for the device', group !== '' && existsSync(`/dev/vfio/${group}`), group);
  const d = await vg(['define', '-u', U(1), '--auto', '-o', 'json']);
  check('define persists an active device', d.code === 0 && existsSync(`/etc/mdevctl.d/mtty/${U(1)}`), d.err);
  const s = await vg(['stop', '-u', U(1)]);
  check('stop removes the device and gives capacity back', s.code === 0 && !existsSync(`/sys/bus/mdev/devices/${U(1)}`) && (await avail('mtty', 'mtty-2')) === before - 1, s.err);
  const st = await vg(['start', '-u', U(1)]);
  check('start recreates it from the definition', st.code === 0 && existsSync(`/sys/bus/mdev/devices/${U(1)}`), st.err);
  const x = await vg(['destroy', '-u', U(1)]);
  const y = await vg(['destroy', '-u', U(2)]);
  check('destroy stops and undefines', x.code === 0 && y.code === 0 && !existsSync(`/sys/bus/mdev/devices/${U(1)}`) && !existsSync(`/etc/mdevctl.d/mtty/${U(1)}`) && (await avail('mtty', 'mtty-2')) === before, x.err + y.err);
}

// 4. the kernel's refusals, straight from sysfs, become vgpuctl's sentences; nothing is left half-made.
{
  const host = new HostRoot('/');
  const ex = { host, writer: new KernelSysfsWriter() };
  const b = sysfsBackend(host);
  await vg(['create', '-t', 'mtty-1', '-p', 'mtty', '-u', U(3)]);
  const dup = await runActions(ex, [b.create({ uuid: U(3), parent: 'mtty', type: 'mtty-2', profile: null })]).catch((e) => e);
  check('duplicate UUID (EEXIST) becomes a sentence', dup instanceof Error && /already exists/.test(dup.message) && dup.details?.errno === 'EEXIST', dup.message);
  const unknown = await runActions(ex, [b.create({ uuid: U(4), parent: 'mtty', type: 'mtty-9', profile: null })]).catch((e) => e);
  check('unknown type (ENOENT) becomes a sentence', unknown instanceof Error && /does not exist/.test(unknown.message) && unknown.details?.errno === 'ENOENT', unknown.message);
  // Fill mdpy (four devices in all), then write one more straight to the kernel.
  const fill = await vg(['create', '-t', 'mdpy-vga', '-p', 'mdpy', '--count', '4', '-o', 'json']);
  const full = await runActions(ex, [b.create({ uuid: U(5), parent: 'mdpy', type: 'mdpy-vga', profile: null })]).catch((e) => e);
  check('no instances left becomes a sentence', fill.code === 0 && full instanceof Error && /no instances of mdpy-vga left on mdpy/.test(full.message), { errno: full.details?.errno, message: full.message });
  const refusedByRules = await vg(['create', '-t', 'mdpy-hd', '-p', 'mdpy']);
  check('vgpuctl refuses the fifth mdpy device before writing (shared pool)', refusedByRules.code === 1 && /no instances of mdpy-hd left on mdpy/.test(refusedByRules.err), refusedByRules.err);
  const three = await runActions(ex, [b.create({ uuid: U(6), parent: 'mtty', type: 'mtty-1', profile: null }), b.create({ uuid: U(3), parent: 'mtty', type: 'mtty-1', profile: null })]).catch((e) => e);
  check('a failure at the second write removes the first', three instanceof Error && /undone/.test(three.message) && !existsSync(`/sys/bus/mdev/devices/${U(6)}`), three.message);
  for (const f of fill.json().created) await vg(['destroy', '-u', f.uuid]);
  await vg(['destroy', '-u', U(3)]);
  const l = await vg(['list', '--all', '-o', 'json']);
  check('nothing left half-made', l.json().devices.length === 0, l.out);
}

// 5. both backends; a definition made by one is started by the other.
{
  const a = await vg(['create', '-t', 'mbochs-small', '-p', 'mbochs', '-u', U(7), '--define', '--backend', 'mdevctl', '-o', 'json']);
  const b = await vg(['create', '-t', 'mbochs-small', '-p', 'mbochs', '-u', U(8), '--define', '-o', 'json']);
  const bytesA = await fs.readFile(`/etc/mdevctl.d/mbochs/${U(7)}`, 'utf8');
  const bytesB = await fs.readFile(`/etc/mdevctl.d/mbochs/${U(8)}`, 'utf8');
  check('both backends create and define', a.code === 0 && b.code === 0 && bytesA === bytesB, a.err + b.err);
  await vg(['stop', '-u', U(7), '--backend', 'mdevctl']);
  await vg(['stop', '-u', U(8)]);
  const m1 = await mdevctl('start', '-u', U(8));
  const v1 = await vg(['start', '-u', U(7)]);
  check('mdevctl starts a vgpuctl definition, vgpuctl starts an mdevctl one', m1.code === 0 && v1.code === 0 && existsSync(`/sys/bus/mdev/devices/${U(7)}`) && existsSync(`/sys/bus/mdev/devices/${U(8)}`), m1.err + v1.err);
  const l = await vg(['list', '-o', 'json']);
  const m = await mdevctl('list', '--dumpjson');
  check('list agrees with mdevctl list --dumpjson', same(oursDevices(l.json()), flatten(JSON.parse(m.out))), { ours: oursDevices(l.json()), theirs: m.out });
  await vg(['destroy', '-u', U(7), '--backend', 'mdevctl']);
  await vg(['destroy', '-u', U(8)]);
  check('backends clean up alike', (await vg(['list', '--all', '-o', 'json'])).json().devices.length === 0);
}

// 6. the simulator agrees with the kernel: one scripted sequence on both, same types/list after each step.
{
  const steps = [
    ['create', '-t', 'mtty-2', '-p', 'mtty', '--count', '2', '-u', U(1), U(2)],
    ['create', '-t', 'mtty-1', '-p', 'mtty', '-u', U(3), '--define', '--auto'],
    ['create', '-t', 'mbochs-medium', '-p', 'mbochs', '-u', U(4)],
    ['create', '-t', 'mdpy-xga', '-p', 'mdpy', '-u', U(5)],
    ['stop', '-u', U(1)],
    ['create', '-t', 'mbochs-large', '-p', 'mbochs', '-u', U(6)],
    ['destroy', '-u', U(3)],
    ['destroy', '-u', U(2)],
  ];
  let agree = true;
  for (const [i, step] of steps.entries()) {
    const k = await vg(step);
    const s = await vg(['--root', simRoot, '--simulate', ...step]);
    const kt = await vg(['types', '-o', 'json']);
    const st = await vg(['--root', simRoot, 'types', '-o', 'json']);
    const kl = await vg(['list', '--all', '-o', 'json']);
    const sl = await vg(['--root', simRoot, 'list', '--all', '-o', 'json']);
    const ok = k.code === s.code && same(kt.json().types, st.json().types) && same(kl.json().devices, sl.json().devices);
    if (!ok) {
      agree = false;
      check(`simulator step ${i} (${step.join(' ')})`, false, { kernel: { code: k.code, err: k.err, types: kt.json().types.map((t) => `${t.parent}/${t.type}=${t.available_instances}`) }, sim: { code: s.code, err: s.err, types: st.json().types.map((t) => `${t.parent}/${t.type}=${t.available_instances}`) } });
    }
  }
  check('simulator and kernel agree after every step of the script', agree);
}

const failed = results.filter((r) => !r.ok).length;
console.log(JSON.stringify({ summary: true, passed: results.length - failed, failed }));
process.exitCode = failed === 0 ? 0 : 1;
