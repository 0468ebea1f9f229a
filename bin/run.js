#!/usr/bin/env -S MALLOC_TRIM_THRESHOLD_=131072 node --max-semi-space-size=1
const argv = process.argv.slice(2)
if (argv.length === 1 && argv[0] === '--version') {
  // Answered without loading oclif (about 50 ms of start-up): the same line oclif prints.
  const {readFileSync} = await import('node:fs')
  const pjson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  process.stdout.write(
    `${pjson.oclif.bin}/${pjson.version} ${process.platform}-${process.arch} node-${process.version}\n`,
  )
} else {
  const {readFileSync} = await import('node:fs')
  const {fileURLToPath} = await import('node:url')
  const root = fileURLToPath(new URL('..', import.meta.url))
  const pjson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  const own = argv.some((a) => a === '--help' || a === '-h') ? undefined : ownCommand(argv)
  const {codeCacheDir, requireWithCodeCache} = own === undefined ? {} : await import('../dist/code-cache.js')
  const cacheDir = codeCacheDir?.()
  if (own !== undefined && cacheDir !== undefined) {
    // One of hotctl's own commands, without help asked: from dist/own/hotctl.cjs, every command in
    // one file compiled through V8's code cache in cacheDir (src/code-cache.ts), one per command.
    // The core plugins (help, autocomplete) are not loaded: reading their manifests cost more than
    // the `help` and `autocomplete` commands they add, which such a run cannot reach.
    const bundle = requireWithCodeCache(
      fileURLToPath(new URL('../dist/own/hotctl.cjs', import.meta.url)),
      cacheDir,
      own,
    )
    // A cache missing or rejected is written at exit, with what this run compiled; not after a usage
    // error (a typo, a bad flag or config), which compiled little of the command.
    process.once('exit', (code) => code !== 2 && bundle.save())
    pjson.oclif.plugins = []
    await bundle.exports.runOwnCommand(argv, {root, pjson})
  } else {
    // Help, a typo, no command, or no code cache (HOTCTL_CODE_CACHE=0): oclif imports the command
    // from dist/commands (the core plugins only for help and the rest, as above).
    if (own !== undefined) pjson.oclif.plugins = []
    // Colour is decided once (src/ui/color.ts), before chalk, listr2 (colorette) and oclif (ansis)
    // load: they read the environment differently, so it is normalised first.
    const {applyColorPolicy} = await import('../dist/ui/color.js')
    applyColorPolicy()
    // Node ≥ 22.1 keeps compiled code between runs; Node 20 has no compile cache (a no-op there).
    const {default: mod} = await import('node:module')
    mod.enableCompileCache?.()
    // dist/cli.js is oclif bundled with the commands' chunks (esbuild.config.mjs, run by `npm run build`).
    const {execute} = await import('../dist/cli.js')
    await execute({loadOptions: {root, pjson}})
  }

  /** The id of the hotctl command `args` name (the longest match, as oclif finds it), or undefined. */
  function ownCommand(args) {
    ownCommand.ids ??= manifestIds()
    const ids = ownCommand.ids
    if (!ids || args.length === 0) return undefined
    if (args.length > 1 && Object.hasOwn(ids, `${args[0]}:${args[1]}`)) return `${args[0]}:${args[1]}`
    return Object.hasOwn(ids, args[0]) ? args[0] : undefined
  }

  function manifestIds() {
    try {
      return JSON.parse(readFileSync(new URL('../oclif.manifest.json', import.meta.url), 'utf8')).commands
    } catch {
      return undefined // no manifest (a development tree): oclif finds the commands itself
    }
  }
}
