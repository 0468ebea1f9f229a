/**
 * Loads a CommonJS bundle through V8's code cache (Node 20 has no `module.enableCompileCache`):
 * the bytecode V8 compiled for it in an earlier run — including the functions that run compiled
 * lazily, as the cache is written after a run — is read back instead of parsing and compiling the
 * source again.
 *
 * The cache is per user ($XDG_CACHE_HOME/hotctl, else ~/.cache/hotctl; HOTCTL_CODE_CACHE=DIR
 * elsewhere, HOTCTL_CODE_CACHE=0 off): one file (up to about 1.3 MB) per tag (the command), bundle
 * content (its SHA-256 and length), Node version and Node options, written atomically (temporary
 * file, rename). V8 checks a cache against its own version, flags and the source's length only,
 * and rejects it otherwise: the bundle is then compiled as usual and the cache rewritten. A cache
 * that cannot be read or written costs nothing else.
 *
 * This module imports only Node's own modules: bin/run.js loads it before the bundle.
 */
import fs from 'node:fs'
import {isAscii} from 'node:buffer'
import crypto from 'node:crypto'
import {createRequire} from 'node:module'
import os from 'node:os'
import path from 'node:path'
import {pathToFileURL} from 'node:url'
import vm from 'node:vm'

/** Where the cache lives, or undefined when it is off (HOTCTL_CODE_CACHE=0, or no home to put it in). */
export function codeCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const setting = env.HOTCTL_CODE_CACHE
  if (setting === '0' || setting === 'false' || setting === 'off') return undefined
  if (setting) return path.resolve(setting)
  if (env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME)) return path.join(env.XDG_CACHE_HOME, 'hotctl')
  const home = env.HOME || os.homedir()
  return home ? path.join(home, '.cache', 'hotctl') : undefined
}

export interface CodeCacheResult {
  exports: unknown
  /** 'hit': compiled from the cache; 'miss'/'rejected': none, or V8 refused it (save() writes one); 'off': no cache. */
  cache: 'hit' | 'miss' | 'rejected' | 'off'
  /** The cache file (when there is a cache dir). */
  file?: string
  /**
   * Writes the cache when there was none (or V8 rejected it). Call it at exit (bin/run.js does),
   * so that the functions the run compiled lazily are in it too. Never throws.
   */
  save: () => void
}

/**
 * `require(file)` for a CommonJS bundle whose text is its own module wrapper,
 * `(function (exports, require, module, __filename, __dirname, importModule) {…})`
 * (esbuild.config.mjs writes it so), compiled with the code cache in `dir` (none: undefined). An
 * ASCII file is handed to V8 as Latin-1 (Node makes a large one an external string: no copy, no
 * UTF-8 decoding). The bundle calls `importModule(specifier)` instead of `import()`: on Node 20 a
 * script compiled from a code cache loses its import() callback. `tag` (the command) gives each
 * its own cache: a cache holds what the run that wrote it compiled.
 */
export function requireWithCodeCache(file: string, dir: string | undefined, tag?: string): CodeCacheResult {
  const source = fs.readFileSync(file)
  // SHA-256 (not zlib's CRC-32: loading zlib took ~5 ms, crypto ~2 and a run loads it anyway; hashing
  // the bundle takes under 1 ms): a length alone could match a changed bundle.
  const key = (data: Buffer) => crypto.createHash('sha256').update(data).digest('hex').slice(0, 16)
  // Node's and V8's options are in the name too: V8 rejects a cache made under other flags, and
  // runs with and without (say --cpu-prof or NODE_OPTIONS) would otherwise rewrite it in turn.
  const options = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join('\0')
  const name = [
    `${path.basename(file)}${tag ? `.${tag.replace(/[^\w]/g, '.')}` : ''}`,
    process.version,
    process.arch,
    ...(options === '' ? [] : [`o${key(Buffer.from(options))}`]),
    key(source),
    `${source.length}.v8`,
  ].join('-')
  const cacheFile = dir ? path.join(dir, name) : undefined
  let cachedData: Buffer | undefined
  if (cacheFile) {
    try {
      cachedData = fs.readFileSync(cacheFile)
    } catch {
      // none yet (or unreadable): compiled from source, and written at exit
    }
  }
  const text = isAscii(source) ? source.toString('latin1') : source.toString('utf8')
  const script = new vm.Script(text, {filename: file, cachedData})
  const rejected = cachedData !== undefined && script.cachedDataRejected === true
  const mod = {exports: {}, filename: file, id: file, loaded: false}
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void
  const url = pathToFileURL(file)
  const importModule = (specifier: string) =>
    import(/^\.\.?\//.test(specifier) ? new URL(specifier, url).href : specifier)
  wrapper.call(mod.exports, mod.exports, createRequire(file), mod, file, path.dirname(file), importModule)
  mod.loaded = true
  const stale = cacheFile !== undefined && (cachedData === undefined || rejected)
  return {
    exports: mod.exports,
    cache: !cacheFile ? 'off' : cachedData === undefined ? 'miss' : rejected ? 'rejected' : 'hit',
    file: cacheFile,
    save: () => {
      if (stale) writeCache(cacheFile, () => script.createCachedData())
    },
  }
}

/** Caches of other builds or Node versions unused this long are removed when one is written. */
const STALE_MS = 7 * 24 * 3600 * 1000

/**
 * Writes the cache atomically. Caches of this bundle for other builds (or Node versions) are
 * removed once a week old: a few installed versions used in turn keep theirs.
 */
function writeCache(cacheFile: string, data: () => Buffer): void {
  const dir = path.dirname(cacheFile)
  const tmp = `${cacheFile}.${process.pid}.tmp`
  let fd: number | undefined
  try {
    fs.mkdirSync(dir, {recursive: true, mode: 0o700})
    fd = fs.openSync(tmp, 'w', 0o600) // before the cache is made: an unwritable dir costs no serialising
    fs.writeFileSync(fd, data())
    fs.closeSync(fd)
    fd = undefined
    fs.renameSync(tmp, cacheFile)
    const prefix = `${path.basename(cacheFile).split('-')[0]}-`
    for (const name of fs.readdirSync(dir)) {
      if (!name.startsWith(prefix) || name === path.basename(cacheFile)) continue // this tag's only
      const file = path.join(dir, name)
      if (Date.now() - fs.statSync(file).mtimeMs > STALE_MS) fs.rmSync(file, {force: true})
    }
  } catch {
    // Not writable (read-only home, full disk): the next run compiles from source again.
    try {
      if (fd !== undefined) fs.closeSync(fd)
      fs.rmSync(tmp, {force: true})
    } catch {
      // no temporary file either
    }
  }
}
