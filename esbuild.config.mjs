// Bundles the CLI's entry points (each command and hook oclif loads) with their dependencies into
// dist/, over what tsc emitted for them: loading one command then reads a few files instead of
// several hundred modules. Shared code lands in dist/chunks/. Left out: @oclif/core (the
// help plugin shares it from node_modules) and `typescript`, which cosmiconfig requires only when a
// .ts config is loaded (optional, from node_modules as before; bundling it made 11 MB).
import fs from 'node:fs'
import path from 'node:path'
import {build} from 'esbuild'

const entries = (dir) =>
  fs
    .readdirSync(dir, {recursive: true})
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(dir, f))

// zod's `z` namespace re-exports every locale (about 200 KB minified, parsed at every start); hotctl
// only uses English, which zod registers itself (v4/classic/schemas.js). `z.locales` (and
// `z.core.locales`) keep `en` alone.
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onResolve({filter: /^\.\.\/locales\/index\.js$/}, (args) =>
      /[/\\]zod[/\\]v4[/\\](classic|mini|core)[/\\](external|index)\.js$/.test(args.importer)
        ? {path: 'zod-locales', namespace: 'zod-english-only', pluginData: path.dirname(args.importer)}
        : undefined,
    )
    b.onLoad({filter: /.*/, namespace: 'zod-english-only'}, (args) => ({
      contents: "export {default as en} from '../locales/en.js'",
      resolveDir: args.pluginData,
      loader: 'js',
    }))
  },
}

// oclif sorts the root plugin's commands with localeCompare, whose first call sets up ICU's
// collator (5–15 ms measured here). On the own-command path that order is never shown (help, a
// typo and the command list go the other way), so the own bundle compares code units: the same
// order for hotctl's ids (lowercase words and ':').
const oclifPlainSort = {
  name: 'oclif-plain-sort',
  setup(b) {
    b.onLoad({filter: /@oclif[/\\]core[/\\]lib[/\\]config[/\\]plugin\.js$/}, (args) => {
      const text = fs.readFileSync(args.path, 'utf8')
      const from = '.sort((a, b) => a.id.localeCompare(b.id))'
      if (!text.includes(from)) throw new Error(`${args.path}: no localeCompare sort to replace (oclif changed?)`)
      return {contents: text.replace(from, '.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))'), loader: 'js'}
    })
  },
}

// oclif's index checks the Node version against its own package.json's engines, with `semver`
// (~40 regular expressions built at load, 2–3 ms). Bundled, that package.json is not where the
// check looks (beside dist/), so the check always failed silently after loading semver: the own
// bundle leaves it out. hotctl's own engines field is what npm checks at install.
const oclifNoEngineCheck = {
  name: 'oclif-no-engine-check',
  setup(b) {
    b.onLoad({filter: /@oclif[/\\]core[/\\]lib[/\\]index\.js$/}, (args) => {
      const text = fs.readFileSync(args.path, 'utf8')
      const from = '\ncheckNodeVersion();\n'
      if (!text.includes(from)) throw new Error(`${args.path}: no checkNodeVersion() call to drop (oclif changed?)`)
      return {contents: text.replace(from, '\n'), loader: 'js'}
    })
  },
}

// oclif logs through `debug`, whose load probes the terminal's colours (supports-color, tty) and
// reads DEBUG (~2 ms). Without DEBUG every `debug` logger is off and its calls do nothing, so the
// own bundle loads the real module only when DEBUG is set (it reads DEBUG once, at load, too).
const debugOnlyWhenAsked = {
  name: 'debug-only-when-asked',
  setup(b) {
    b.onResolve({filter: /^debug$/}, (args) =>
      args.namespace === 'debug-only-when-asked' || !/@oclif[/\\]core[/\\]/.test(args.importer)
        ? undefined
        : {path: 'debug', namespace: 'debug-only-when-asked', pluginData: args.resolveDir},
    )
    b.onLoad({filter: /.*/, namespace: 'debug-only-when-asked'}, (args) => ({
      contents: `
        function off(namespace) {
          const log = () => {}
          log.namespace = namespace
          log.enabled = false
          log.extend = (sub, delimiter) => off(namespace + (delimiter === undefined ? ':' : delimiter) + sub)
          return log
        }
        module.exports = process.env.DEBUG ? require('debug') : off`,
      resolveDir: args.pluginData,
      loader: 'js',
    }))
  },
}

fs.rmSync('dist/chunks', {recursive: true, force: true})
await build({
  entryPoints: ['src/cli.ts', ...entries('src/commands'), ...entries('src/hooks')],
  outdir: 'dist',
  outbase: 'src',
  bundle: true,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['typescript'],
  // CommonJS dependencies (cosmiconfig) call require(); an ES module bundle gets one of its own.
  banner: {
    js: "import {createRequire as __hotctlRequire} from 'node:module';const require=__hotctlRequire(import.meta.url);",
  },
  // Less source to parse at every start (Node 20 has no compile cache); names kept for messages.
  minify: !process.env.HOTCTL_NO_MINIFY, // HOTCTL_NO_MINIFY=1 npm run build: readable profiles
  keepNames: true,
  legalComments: 'none',
  logLevel: 'warning',
  plugins: [zodEnglishOnly],
})

// The same CLI as one CommonJS file for bin/run.js's own-command path (src/own-command.ts): one
// file to read, and a script V8 can compile through its code cache (src/code-cache.ts), which
// Node 20 offers for no ES module. Dynamic imports become lazily run parts of the file. The file
// is the module wrapper function itself, in ASCII: bin/run.js hands the bytes to V8 as they are
// (no wrapping, no UTF-8 decoding). `import.meta.url` is the file's URL: dist/own/ is as deep as
// the dist/init/ it stands in for. Its dynamic imports (oclif's hooks, cosmiconfig's JS configs)
// call the wrapper's sixth parameter: Node 20 loses a script's import() callback when V8 compiles
// it from a code cache (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING), so src/code-cache.ts passes one in.
const ownBundle = 'dist/own/hotctl.cjs'
await build({
  entryPoints: ['src/own-command.ts'],
  outfile: ownBundle,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external: ['typescript'],
  define: {'import.meta.url': '__hotctlImportMetaUrl'},
  // Strict, as the ES module build is ("use strict" first, before the constant).
  banner: {
    js: '(function (exports, require, module, __filename, __dirname, __hotctlImport) {"use strict";const __hotctlImportMetaUrl=require("node:url").pathToFileURL(__filename).href;',
  },
  footer: {js: '})'},
  minify: !process.env.HOTCTL_NO_MINIFY,
  keepNames: true,
  legalComments: 'none',
  logLevel: 'warning',
  plugins: [zodEnglishOnly, oclifPlainSort, oclifNoEngineCheck, debugOnlyWhenAsked],
})
// esbuild leaves a few characters raw in regular expressions; \uXXXX means the same there and in
// strings. `import(` not after a name or `.` and not `import()` (a message) is a dynamic import.
fs.writeFileSync(
  ownBundle,
  fs
    .readFileSync(ownBundle, 'utf8')
    .replace(/[^ -~\t\n\r]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
    .replace(/(?<![\w$.])import\((?!\))/g, '__hotctlImport('),
)

// src/code-cache.ts as CommonJS for bin/run.js (a CommonJS file: bin/package.json), which loads
// it before the bundle; it imports only Node's own modules.
await build({
  entryPoints: ['src/code-cache.ts'],
  outfile: 'dist/own/code-cache.cjs',
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  legalComments: 'none',
  logLevel: 'warning',
})

// The oclif manifest: without it oclif imports every command on every run to list them.
const {Plugin} = await import('@oclif/core')
const plugin = new Plugin({root: process.cwd(), type: 'core', ignoreManifest: true, errorOnManifestCreate: true})
await plugin.load()
fs.writeFileSync('oclif.manifest.json', `${JSON.stringify(plugin.manifest, null, 2)}\n`)
