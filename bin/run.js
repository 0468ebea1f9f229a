#!/usr/bin/env -S MALLOC_TRIM_THRESHOLD_=131072 node --max-semi-space-size=1
'use strict'
// CommonJS (bin/package.json): node runs it without starting its ES module loader (about 5 ms of
// every command); the own-command path below stays off that loader entirely.
const {readFileSync} = require('node:fs')
const path = require('node:path')
const argv = process.argv.slice(2)
const root = path.join(__dirname, '..')
// An ES module whose top-level await never settles exits 13 (node's rule, which this file had as
// one): a command whose promise never settled must not pass for a success either.
let finished = false
process.once('exit', () => {
  if (finished || process.exitCode !== undefined) return
  process.exitCode = 13
  process.stderr.write('hotctl: internal error: the command stopped before it finished (exit 13)\n')
})
const pjson = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'))
if (argv.length === 1 && argv[0] === '--version') {
  // Answered without loading oclif (about 50 ms of start-up): the same line oclif prints.
  process.stdout.write(
    `${pjson.oclif.bin}/${pjson.version} ${process.platform}-${process.arch} node-${process.version}\n`,
  )
  finished = true
} else {
  const own = argv.some((a) => a === '--help' || a === '-h') ? undefined : ownCommand(argv)
  // dist/own/code-cache.cjs is src/code-cache.ts as CommonJS (esbuild.config.mjs).
  const {codeCacheDir, requireWithCodeCache} = own === undefined ? {} : require('../dist/own/code-cache.cjs')
  const cacheDir = codeCacheDir?.()
  if (own !== undefined && cacheDir !== undefined) {
    // One of hotctl's own commands, without help asked: from dist/own/hotctl.cjs, every command in
    // one file compiled through V8's code cache in cacheDir (src/code-cache.ts), one per command.
    // The core plugins (help, autocomplete) are not loaded: reading their manifests cost more than
    // the `help` and `autocomplete` commands they add, which such a run cannot reach.
    const bundle = requireWithCodeCache(path.join(root, 'dist', 'own', 'hotctl.cjs'), cacheDir, own)
    // A cache missing or rejected is written at exit, with what this run compiled; not after a usage
    // error (a typo, a bad flag or config), which compiled little of the command.
    process.once('exit', (code) => code !== 2 && bundle.save())
    pjson.oclif.plugins = []
    bundle.exports.runOwnCommand(argv, {root, pjson}).then(exitWhenIdle)
  } else {
    // Help, a typo, no command, or no code cache (HOTCTL_CODE_CACHE=0): oclif imports the command
    // from dist/commands (the core plugins only for help and the rest, as above).
    if (own !== undefined) pjson.oclif.plugins = []
    oclifFromDist().then(exitWhenIdle)
  }

  async function oclifFromDist() {
    // Colour is decided once (src/ui/color.ts), before chalk, listr2 (colorette) and oclif (ansis)
    // load: they read the environment differently, so it is normalised first.
    const {applyColorPolicy} = await import('../dist/ui/color.js')
    applyColorPolicy()
    // Node ≥ 22.1 keeps compiled code between runs; Node 20 has no compile cache (a no-op there).
    require('node:module').enableCompileCache?.()
    // dist/cli.js is oclif bundled with the commands' chunks (esbuild.config.mjs, run by `npm run build`).
    const {execute} = await import('../dist/cli.js')
    await execute({loadOptions: {root, pjson}})
  }

  /** The id of the hotctl command `args` name (the longest match, as oclif finds it), or undefined. */
  function ownCommand(args) {
    const ids = manifestIds()
    if (!ids || args.length === 0) return undefined
    if (args.length > 1 && Object.hasOwn(ids, `${args[0]}:${args[1]}`)) return `${args[0]}:${args[1]}`
    return Object.hasOwn(ids, args[0]) ? args[0] : undefined
  }

  function manifestIds() {
    try {
      return JSON.parse(readFileSync(path.join(root, 'oclif.manifest.json'), 'utf8')).commands
    } catch {
      return undefined // no manifest (a development tree): oclif finds the commands itself
    }
  }
}

/**
 * Once the command has returned and nothing is left to run (its children and workers gone, every
 * write done: a pending one keeps the loop busy), exits at once: node would otherwise free the
 * whole heap piece by piece first (~4 ms after a 20k-file deploy). 'exit' handlers still run.
 */
function exitWhenIdle() {
  finished = true
  process.once('beforeExit', (code) => process.exit(code))
}
