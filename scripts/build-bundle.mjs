#!/usr/bin/env node
/**
 * Bundles the CLI with esbuild: dist/vgpuctl.mjs (what bin/vgpuctl runs) and, split off at the import()
 * of each command module in src/cli/main.ts, the chunks in dist/chunks/ that a command loads when it runs;
 * the chroot runner that src/host/mdevctl-runner.ts starts as a script of its own goes to
 * dist/chroot-runner.mjs. tsc still emits dist/ for type checking, the tests and the files they import.
 *
 * Start-up is most of a small command's time (cron runs `health` every minute). node then reads a handful
 * of files instead of ~100 modules and their node_modules dependencies, and `--version` reads one file of
 * a few kB. The entry is not one file with everything in it on purpose: V8 compiles a module's whole text
 * before running any of it, and for the ~1.1 MB of the complete CLI that alone costs more than twice the
 * 15 ms budget of `--version` (measured: 107 ms against 70 ms split, 61 ms for `node -e 0`; README
 * "Performance").
 *
 * esbuild, not a hand-written loader: a well-kept bundler that understands ESM, CommonJS dependencies and
 * dynamic import() and keeps the code what tsc type-checked.
 */
import { build } from 'esbuild';
import { randomUUID } from 'node:crypto';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// The profile catalogue, validated here once instead of at every start (src/catalogue/catalogue.ts): the
// result goes to dist/catalogue-validated.json, tagged with an id that is compiled into this bundle only.
const compiledCatalogue = path.join(repo, 'dist/catalogue/catalogue.js');
if (!existsSync(compiledCatalogue)) {
  process.stderr.write('build-bundle: dist/catalogue/catalogue.js is missing: run tsc first (npm run build does)\n');
  process.exit(1);
}
const buildId = randomUUID();
const { validateCatalogueForBuild, VALIDATED_CATALOGUE } = await import(pathToFileURL(compiledCatalogue).href);
writeFileSync(path.join(repo, 'dist', VALIDATED_CATALOGUE), JSON.stringify(validateCatalogueForBuild(buildId)));

// CommonJS dependencies (commander, cli-table3) call require() for Node's built-in modules; an ES module
// bundle has no `require` of its own, so give it one.
const banner = "import { createRequire as __vgpuctlCreateRequire } from 'node:module'; const require = __vgpuctlCreateRequire(import.meta.url);";

/**
 * zod's `z.locales` holds ~40 translations of its error messages (~300 kB, a fifth of the bundle, compiled at
 * every start); vgpuctl words its messages in English, zod's own default. Keep only English.
 */
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]v4[\\/](classic|core|mini)$/.test(args.resolveDir) ? { path: path.join(args.resolveDir, '../locales/en.js'), namespace: 'zod-locales' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'zod-locales' }, (args) => ({
      contents: `export { default as en } from ${JSON.stringify(args.path)};`,
      resolveDir: path.dirname(args.path),
    }));
  },
};

/**
 * zod/mini (src/validation/mini.ts, on the way of every command) gets a copy of zod's core of its own.
 * esbuild places whole modules in chunks: sharing the core with classic zod (the flags of the changing
 * commands) put the ~220 kB of core that classic zod uses into every start. The copy (the same files under
 * another namespace) keeps only what mini uses, a few dozen kB. Its error class and messages are its own;
 * vgpuctl tells zod errors apart by their trait ($ZodError), which both copies carry.
 */
const ZOD_MINI = 'zod-mini-copy';
const zodMiniCopy = {
  name: 'zod-mini-copy',
  setup(b) {
    const intoCopy = (file) => ({ path: file, namespace: ZOD_MINI, sideEffects: false });
    b.onResolve({ filter: /^zod\/(mini|v4\/core|v4\/locales\/en\.js)$/ }, async (args) => {
      if (args.pluginData === 'resolved') return undefined; // esbuild's own resolution, asked for below
      const r = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, pluginData: 'resolved' });
      if (r.errors.length > 0) return { errors: r.errors };
      return intoCopy(r.path);
    });
    b.onResolve({ filter: /^\./, namespace: ZOD_MINI }, (args) =>
      // Only English of the translations, as for classic zod below.
      intoCopy(path.resolve(args.resolveDir, args.path === '../locales/index.js' ? '../locales/en.js' : args.path)),
    );
    b.onLoad({ filter: /.*/, namespace: ZOD_MINI }, async (args) => ({ contents: await readFile(args.path, 'utf8'), resolveDir: path.dirname(args.path), loader: 'js' }));
  },
};

/**
 * commander loads node:child_process when it loads, for executable sub-commands (`git-foo` style), which
 * vgpuctl has none of; child_process brings net, stream and dgram with it: ~6 ms of every command that
 * starts nothing (measured on `list --defined`). Give commander the module when it first spawns instead.
 * The build fails if commander's line changes, rather than silently loading it again.
 */
const commanderLazyChildProcess = {
  name: 'commander-lazy-child-process',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]commander[\\/]lib[\\/]command\.js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      const line = "const childProcess = require('node:child_process');";
      if (!text.includes(line)) return { errors: [{ text: `commander-lazy-child-process: ${args.path} no longer has the line ${line}` }] };
      const lazy = "const childProcess = { spawn: (...a) => require('node:child_process').spawn(...a) };";
      return { contents: text.replace(line, lazy), loader: 'js', resolveDir: path.dirname(args.path) };
    });
  },
};

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  banner: { js: banner },
  // Smaller text is less to parse at every start; names are kept so stack traces (VGPUCTL_DEBUG) stay readable.
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  sourcemap: 'external',
  logLevel: 'warning',
  absWorkingDir: repo,
  plugins: [zodMiniCopy, zodEnglishOnly, commanderLazyChildProcess],
  define: { __VGPUCTL_BUILD_ID__: JSON.stringify(buildId) },
};

// Chunk names carry a content hash: drop the previous build's.
rmSync(path.join(repo, 'dist/chunks'), { recursive: true, force: true });
await Promise.all([
  build({
    ...common,
    entryPoints: { vgpuctl: 'src/cli/bin.ts' },
    outdir: 'dist',
    splitting: true,
    entryNames: '[name]',
    chunkNames: 'chunks/[name]-[hash]',
    outExtension: { '.js': '.mjs' },
  }),
  build({ ...common, entryPoints: ['src/host/chroot-runner.ts'], outfile: 'dist/chroot-runner.mjs' }),
]);
