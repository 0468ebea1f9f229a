import fs from 'node:fs'
import path from 'node:path'
import {errorMessage, usageError} from '../errors.js'
import {configSchema} from './schema.js'
import {interpolateEnv} from './interpolate.js'
import {resolveConfig, type ResolvedConfig, withStepsAsWritten} from './resolve.js'

export const SEARCH_PLACES = [
  'package.json',
  '.hotctlrc',
  '.hotctlrc.json',
  '.hotctlrc.yaml',
  '.hotctlrc.yml',
  'hotctl.config.ts',
  'hotctl.config.mjs',
  'hotctl.config.js',
  'hotctl.config.cjs',
  'hotctl.config.json',
  'hotctl.config.yaml',
  'hotctl.config.yml',
]

/** --config, then HOTCTL_CONFIG, then a search from cwd up to the repository root. */
export async function loadConfig(
  opts: {configPath?: string; cwd?: string; env?: NodeJS.ProcessEnv} = {},
): Promise<ResolvedConfig> {
  const env = opts.env ?? process.env
  const cwd = opts.cwd ?? process.cwd()
  // An empty config file is found (and reported as empty), not skipped for "no config found".
  // cosmiconfig (with js-yaml) is loaded only when used: a named JSON config is read directly.
  const explorer = async () =>
    (await cosmiconfigModule())('hotctl', {
      searchPlaces: SEARCH_PLACES,
      searchStrategy: 'none',
      cache: false,
      ignoreEmptySearchPlaces: false,
    })
  const explicit = opts.configPath ?? env.HOTCTL_CONFIG
  let found: {config: unknown; filepath: string} | null = null
  if (explicit) {
    const file = path.resolve(cwd, explicit)
    if (!fs.existsSync(file)) {
      throw usageError(
        `config file ${file} does not exist (from ${opts.configPath ? '--config' : 'HOTCTL_CONFIG'})`,
        'Check the path, or run `hotctl init` to write one.',
      )
    }
    const from = opts.configPath ? '--config' : 'HOTCTL_CONFIG'
    if (fs.statSync(file).isDirectory()) {
      const inside = SEARCH_PLACES.filter((n) => n !== 'package.json' && fs.existsSync(path.join(file, n)))
      throw usageError(
        `${from} points at a directory: ${file}`,
        inside.length
          ? `Name the config file in it: ${from === '--config' ? '--config ' : 'HOTCTL_CONFIG='}${path.join(file, inside[0]!)}`
          : `Name a config file (e.g. ${path.join(file, 'hotctl.config.yaml')}), or run \`hotctl init\` there.`,
      )
    }
    found =
      (await plainJson(file)) ??
      (await (await explorer()).load(file).catch((err: Error) => {
        throw usageError(`${file}: cannot be read: ${errorMessage(err)}`, 'Fix the syntax of the config file.')
      }))
    if (!found || (found as {isEmpty?: boolean}).isEmpty || found.config == null) throw emptyConfig(file)
  } else {
    const stop = repositoryRoot(cwd)
    const search = await explorer()
    for (let dir = cwd; ; dir = path.dirname(dir)) {
      found = await search.search(dir).catch((err: Error) => {
        throw usageError(`config in ${dir} cannot be read: ${err.message}`, 'Fix the syntax of the config file.')
      })
      // cosmiconfig passes over a file holding only comments: it is there, and empty.
      const blank = found
        ? undefined
        : SEARCH_PLACES.find((n) => n !== 'package.json' && fs.existsSync(path.join(dir, n)))
      if (blank) throw emptyConfig(path.join(dir, blank))
      if (found || dir === stop || dir === path.dirname(dir)) break
    }
  }
  if (found && ((found as {isEmpty?: boolean}).isEmpty || found.config == null)) throw emptyConfig(found.filepath)
  if (!found) {
    throw usageError(
      `no hotctl config found from ${cwd} up to ${repositoryRoot(cwd)}`,
      'Run `hotctl init`, or pass --config PATH (or set HOTCTL_CONFIG).',
    )
  }
  return parseConfig(found.config, found.filepath, env)
}

/** cosmiconfig is CommonJS: bundled (esbuild, Node's rules) it is the default export; else named. */
async function cosmiconfigModule(): Promise<typeof import('cosmiconfig').cosmiconfig> {
  const m = (await import('cosmiconfig')) as typeof import('cosmiconfig') & {default?: typeof import('cosmiconfig')}
  return m.cosmiconfig ?? m.default!.cosmiconfig
}

/**
 * A named `.json` config (not package.json) read as cosmiconfig reads it, without loading it: an
 * empty file is empty, else JSON. Anything else — invalid JSON (cosmiconfig words the error), a
 * `null` document, a cosmiconfig `$import` — is left to cosmiconfig (undefined).
 */
async function plainJson(file: string): Promise<{config: unknown; filepath: string; isEmpty?: boolean} | undefined> {
  if (path.extname(file) !== '.json' || path.basename(file) === 'package.json') return undefined
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch {
    return undefined
  }
  if (text.trim() === '') return {filepath: file, config: undefined, isEmpty: true}
  let config: unknown
  try {
    config = JSON.parse(text)
  } catch {
    return undefined
  }
  if (config === null || (typeof config === 'object' && Object.hasOwn(config, '$import'))) return undefined
  return {config, filepath: file}
}

const emptyConfig = (file: string) =>
  usageError(`config file ${file} is empty`, 'Write at least `target: PATH` in it, or run `hotctl init` to write one.')

/** Validates raw config data; every error names the file and the field path. */
export function parseConfig(raw: unknown, file: string, env: NodeJS.ProcessEnv = process.env): ResolvedConfig {
  const data =
    raw && typeof raw === 'object' && 'default' in raw && Object.keys(raw).length === 1
      ? (raw as {default: unknown}).default
      : raw
  const result = configSchema.safeParse(interpolateEnv(data ?? {}, env, file))
  if (!result.success) {
    const issues = result.error.issues.flatMap((i) => specific(i, data))
    const lines = issues.map((i) => `${file}: ${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    throw usageError(
      lines.join('\n'),
      'Fix the field(s) named above; the config reference is in the README (and templates/hotctl.schema.json for editors).',
      {
        issues: issues.map((i) => ({path: i.path.join('.'), message: i.message})),
      },
    )
  }
  return withStepsAsWritten(resolveConfig(result.data, file), data)
}

type Issue = {path: PropertyKey[]; message: string; code?: string; errors?: Issue[][]}

/**
 * A union (smoke entry: HTTP or command; check: string, list or argv) fails as a whole with
 * "Invalid input" at the entry. Report the branch that came closest instead, with its own paths.
 */
function specific(issue: Issue, data?: unknown): Issue[] {
  if (issue.code !== 'invalid_union' || !issue.errors?.length) return [issue]
  // Neither branch's key present: say what the entry needs, not what the first branch missed.
  const entry = valueAt(data, issue.path)
  if (issue.path[0] === 'smoke' && entry && typeof entry === 'object' && !('url' in entry) && !('command' in entry))
    return [{path: issue.path, message: 'needs `url` (an HTTP check) or `command`'}]
  const best = [...issue.errors].sort((a, b) => a.length - b.length)[0]!
  return best.flatMap((i) => specific({...i, path: [...issue.path, ...i.path]}))
}

function valueAt(data: unknown, at: PropertyKey[]): unknown {
  let v = data
  for (const k of at) v = v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined
  return v
}

function repositoryRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, '.git'))) return dir
    if (dir === path.dirname(dir)) return dir
  }
}
