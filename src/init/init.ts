import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import YAML from 'yaml'
import {loadConfig, parseConfig} from '../config/load.js'
import {DEFAULT_EXCLUDE} from '../config/schema.js'
import {usageError} from '../errors.js'

export const TEMPLATES = ['python', 'node', 'generic'] as const
export type TemplateName = (typeof TEMPLATES)[number]

export const CONFIG_NAME = 'hotctl.config.yaml'
export const DEFAULT_TARGET = '/opt/app'
/** The agent's bearer token (`--with-agent`): mode 0600, never deployed, never printed. */
export const TOKEN_FILE = '.hotreload-token'

/** templates/ of the package: dist/init/init.js → ../../templates (src/init/ the same depth). */
const templatesDir = (sub: string) => fileURLToPath(new URL(`../../templates/${sub}`, import.meta.url))

export interface Detection {
  template: TemplateName
  /** The file(s) the template was chosen from, or why ('--template', 'nothing matched'). */
  reason: string
  checks: Record<string, string | string[]>
}

export interface InitOptions {
  cwd: string
  template?: TemplateName
  target?: string
  withAgent: boolean
  force: boolean
}

export interface InitResult {
  path: string
  template: TemplateName
  reason: string
  checks: Record<string, string | string[]>
  target: string
  targetIsPlaceholder: boolean
  agent: string | null
  /** The agent's token file (`--with-agent`); the token itself is never output. */
  tokenFile: string | null
  /** True when this run generated the token (an existing file is kept: a running service uses it). */
  tokenCreated: boolean
  /** The .gitignore that now lists the token file, if any. */
  gitignore: string | null
  overwrote: boolean
  warnings: string[]
  next: string[]
}

const read = (file: string) => {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}
const exists = (file: string) => fs.existsSync(file)

/** Existing hotctl configs in `dir` (what `hotctl` would find there). */
export function existingConfigs(dir: string): string[] {
  let names: string[] = []
  try {
    names = fs.readdirSync(dir)
  } catch {
    return []
  }
  const found = names.filter((n) => /^hotctl\.config\./.test(n) || /^\.hotctlrc/.test(n)).sort()
  try {
    const pkg = JSON.parse(read(path.join(dir, 'package.json')) || '{}') as Record<string, unknown>
    if (pkg && typeof pkg === 'object' && 'hotctl' in pkg) found.push('package.json ("hotctl" key)')
  } catch {
    // not JSON: not a config either
  }
  return found
}

/** Picks the template and the checks from the files in `dir`. */
export function detect(dir: string, forced?: TemplateName): Detection {
  const at = (n: string) => path.join(dir, n)
  const names = safeReaddir(dir)
  const requirements = names.filter((n) => /requirements.*\.(txt|in)$/i.test(n))
  const pythonMarkers = [
    ...requirements,
    ...['pyproject.toml', 'setup.cfg', 'setup.py', 'Pipfile'].filter((n) => exists(at(n))),
  ]
  const isNode = exists(at('package.json'))
  // Weaker signs, after package.json (a Node project may hold a script or two): *.py files, tests/.
  const pyFiles = pythonFiles(dir)
  const weak = [
    ...(pyFiles.length ? [`${pyFiles[0]}${pyFiles.length > 1 ? ` and ${pyFiles.length - 1} more .py` : ''}`] : []),
  ]
  if (isDir(at('tests'))) weak.push('tests/')
  let template: TemplateName
  let reason: string
  if (forced) [template, reason] = [forced, '--template']
  else if (pythonMarkers.length > 0) [template, reason] = ['python', pythonMarkers.join(', ')]
  else if (isNode) [template, reason] = ['node', 'package.json']
  else if (weak.length > 0) [template, reason] = ['python', weak.join(', ')]
  else [template, reason] = ['generic', 'no *.py, requirements.txt, pyproject.toml, setup.cfg, tests/ or package.json']

  const checks: Record<string, string | string[]> = {}
  if (template === 'python') {
    const deps = [...requirements, 'pyproject.toml', 'setup.cfg', 'setup.py', 'tox.ini', 'Pipfile']
      .map((n) => read(at(n)))
      .join('\n')
    const mentions = (tool: string) => new RegExp(`(^|[^A-Za-z0-9_-])${tool}([^A-Za-z0-9_]|$)`, 'im').test(deps)
    if (isDir(at('tests')) || isDir(at('test')) || mentions('pytest')) checks.test = 'pytest -q'
    const lint: string[] = []
    if (exists(at('ruff.toml')) || exists(at('.ruff.toml')) || mentions('ruff')) lint.push('ruff check .')
    if (exists(at('.flake8')) || mentions('flake8')) lint.push('flake8 .')
    if (lint.length) checks.lint = lint.length === 1 ? lint[0]! : lint
    if (exists(at('mypy.ini')) || exists(at('.mypy.ini')) || mentions('mypy')) checks.types = 'mypy .'
  } else if (template === 'node') {
    let scripts: Record<string, unknown> = {}
    try {
      const pkg = JSON.parse(read(at('package.json')) || '{}') as {scripts?: Record<string, unknown>}
      scripts = pkg.scripts ?? {}
    } catch {
      // an unreadable package.json: no scripts to detect
    }
    if (typeof scripts.test === 'string' && !/no test specified/.test(scripts.test)) checks.test = 'npm test'
    if (exists(at('tsconfig.json'))) checks.types = 'npx tsc --noEmit'
    if (typeof scripts.lint === 'string') checks.lint = 'npm run lint'
  }
  return {template, reason, checks}
}

/** *.py files down to two directories deep (src/app/*.py), not in hidden, virtualenv or vendored directories. */
function pythonFiles(dir: string, depth = 2, prefix = ''): string[] {
  const skip = (n: string) => n.startsWith('.') || ['node_modules', 'venv', '__pycache__', 'site-packages'].includes(n)
  const names = safeReaddir(dir)
  const found = names.filter((n) => n.endsWith('.py')).map((n) => `${prefix}${n}`)
  if (depth === 0) return found
  for (const d of names) {
    if (skip(d) || !isDir(path.join(dir, d))) continue
    found.push(...pythonFiles(path.join(dir, d), depth - 1, `${prefix}${d}/`))
  }
  return found
}

/** The default excludes as template lines: every template writes them out (a config's `exclude` replaces them). */
const defaultExcludes = () => DEFAULT_EXCLUDE.map((p) => `  - ${scalar(p)}`).join('\n')

/** A YAML scalar: plain when safe, else double-quoted (JSON strings are valid YAML). */
function scalar(s: string): string {
  return /^[A-Za-z0-9_./][A-Za-z0-9 _./=-]*$/.test(s) && !/\s$/.test(s) ? s : JSON.stringify(s)
}

function renderChecks(checks: Record<string, string | string[]>): string {
  const entries = Object.entries(checks)
  if (entries.length === 0) return 'checks: {}\n#  test: make test          (none detected: add your own)'
  const lines = ['checks:']
  for (const [name, value] of entries) {
    if (Array.isArray(value)) lines.push(`  ${name}:`, ...value.map((v) => `    - ${scalar(v)}`))
    else lines.push(`  ${name}: ${scalar(value)}`)
  }
  return lines.join('\n')
}

export function renderTemplate(template: TemplateName, values: Record<string, string>): string {
  const text = fs.readFileSync(path.join(templatesDir('config/'), `${template}.yaml`), 'utf8')
  return text.replace(/\{\{(\w+)\}\}/g, (_m, key: string) => {
    if (!(key in values)) throw new Error(`templates/config/${template}.yaml: unknown placeholder {{${key}}}`)
    return values[key]!
  })
}

/** Writes the config (and the agent with --withAgent); the caller has settled the target. */
export async function runInit(opts: InitOptions): Promise<InitResult> {
  const dest = path.join(opts.cwd, CONFIG_NAME)
  const existing = existingConfigs(opts.cwd)
  if (existing.length > 0 && !opts.force) {
    throw usageError(
      `a hotctl config already exists: ${existing.map((n) => path.join(opts.cwd, n)).join(', ')}`,
      'Edit it, or pass --force to overwrite it with a fresh hotctl.config.yaml.',
      {existing},
    )
  }
  const warnings = existing
    .filter((n) => n !== CONFIG_NAME)
    .map(
      (n) =>
        `${n} also holds a hotctl config and is found before ${CONFIG_NAME}: remove it (or pass --config ${CONFIG_NAME}).`,
    )

  const agentDest = path.join(opts.cwd, 'hotreload_agent')
  if (opts.withAgent && exists(agentDest) && !opts.force) {
    throw usageError(
      `${agentDest} already exists`,
      'Pass --force to replace it with the reference agent, or leave out --with-agent.',
    )
  }

  const d = detect(opts.cwd, opts.template)
  const targetIsPlaceholder = opts.target === undefined || opts.target === ''
  const target = targetIsPlaceholder ? DEFAULT_TARGET : opts.target!
  const text = renderTemplate(d.template, {
    target: scalar(target),
    target_comment: targetIsPlaceholder
      ? '# TODO: a placeholder: set this to the live directory (absolute, or relative to this file).'
      : '# Set by `hotctl init --target`.',
    checks: renderChecks(d.checks),
    default_excludes: defaultExcludes(),
    token_exclude: opts.withAgent ? `\n  - ${TOKEN_FILE}  # the agent's token: never deployed` : '',
    token_header: opts.withAgent ? AGENT_TOKEN_HEADER : TOKEN_HEADER_HINT,
  })

  // Validate before writing (a template or --target can never leave an invalid config behind)...
  // The token header needs $HOTRELOAD_TOKEN when hotctl runs, not now (a stand-in too short to be a secret).
  const env = {...process.env, HOTRELOAD_TOKEN: process.env.HOTRELOAD_TOKEN ?? 'x'}
  let raw: unknown
  try {
    raw = YAML.parse(text)
  } catch (err) {
    throw new Error(`templates/config/${d.template}.yaml does not render to valid YAML: ${(err as Error).message}`)
  }
  parseConfig(raw, dest, env)
  const overwrote = exists(dest)
  fs.writeFileSync(dest, text)
  // ...and again from disk, the way every command loads it.
  try {
    await loadConfig({configPath: dest, cwd: opts.cwd, env})
  } catch (err) {
    fs.rmSync(dest, {force: true})
    throw err
  }

  let agent: string | null = null
  let token: ReturnType<typeof setUpToken> | null = null
  if (opts.withAgent) {
    fs.rmSync(agentDest, {recursive: true, force: true})
    fs.cpSync(templatesDir('python/hotreload_agent/'), agentDest, {
      recursive: true,
      filter: (src) => !/(__pycache__|\.pyc)$/.test(src),
    })
    agent = agentDest
    token = setUpToken(opts.cwd)
    if (token.narrowed)
      warnings.push(
        `${token.file} could be read by group or others: narrowed to mode 0600 (the agent refuses a looser file).`,
      )
    if (d.template !== 'python') {
      warnings.push('hotreload_agent is a Python agent; this project was not detected as Python.')
      warnings.push(
        `the reload section is commented out: send the token with headers: { Authorization: 'Bearer \${HOTRELOAD_TOKEN}' }.`,
      )
    }
  }

  return {
    path: dest,
    template: d.template,
    reason: d.reason,
    checks: d.checks,
    target,
    targetIsPlaceholder,
    agent,
    tokenFile: token?.file ?? null,
    tokenCreated: token?.created ?? false,
    gitignore: token?.gitignore ?? null,
    overwrote,
    warnings,
    next: [
      ...(targetIsPlaceholder ? [`edit target: in ${CONFIG_NAME} (now the placeholder ${DEFAULT_TARGET})`] : []),
      ...(token ? tokenSteps(token.file) : []),
      'hotctl check            # validate the config, preflight the target, run the checks',
      'hotctl deploy --dry-run # show what a deploy would change',
    ],
  }
}

const AGENT_TOKEN_HEADER = `    # The agent's token (hotctl init --with-agent wrote it to ${TOKEN_FILE}, mode 0600). Before running hotctl:
    #   export HOTRELOAD_TOKEN="$(cat ${TOKEN_FILE})"
    headers: { Authorization: 'Bearer \${HOTRELOAD_TOKEN}' }`
const TOKEN_HEADER_HINT = `    # The agent refuses check without a token (403). Give the service one (HOTRELOAD_TOKEN_FILE, a file
    # only its user can read, or HOTRELOAD_TOKEN), export HOTRELOAD_TOKEN for hotctl, and uncomment:
    # headers: { Authorization: 'Bearer \${HOTRELOAD_TOKEN}' }`

function tokenSteps(file: string): string[] {
  return [
    `export HOTRELOAD_TOKEN="$(cat ${TOKEN_FILE})"   # hotctl sends it to the agent (reload.trigger.headers)`,
    `start the service with HOTRELOAD_TOKEN_FILE=${file} (on another host: copy it there, mode 0600, owned by the service's user)`,
  ]
}

/**
 * The agent's token file in `dir`: generated (32 random bytes, hex) unless one exists, which is kept and
 * narrowed to 0600. Listed in .gitignore when the project has one or is a git work tree.
 */
function setUpToken(dir: string): {file: string; created: boolean; narrowed: boolean; gitignore: string | null} {
  const file = path.join(dir, TOKEN_FILE)
  let created = false
  const st = fs.lstatSync(file, {throwIfNoEntry: false})
  if (st && !st.isFile())
    throw usageError(
      `${file} exists and is not a regular file`,
      `Remove it; hotctl init --with-agent writes the agent's token there.`,
    )
  if (st && fs.readFileSync(file, 'utf8').trim() === '') {
    throw usageError(`${file} is empty`, 'Remove it (a new token is generated) or write the token into it.')
  }
  if (!st) {
    fs.writeFileSync(file, `${crypto.randomBytes(32).toString('hex')}\n`, {mode: 0o600, flag: 'wx'})
    created = true
  }
  const narrowed = Boolean(st && st.mode & 0o077)
  fs.chmodSync(file, 0o600) // whatever the umask or the old mode: only this user may read it
  let gitignore: string | null = null
  const ignoreFile = path.join(dir, '.gitignore')
  if (exists(ignoreFile) || exists(path.join(dir, '.git'))) {
    const text = read(ignoreFile)
    const listed = text.split(/\r?\n/).some((l) => [TOKEN_FILE, `/${TOKEN_FILE}`].includes(l.trim()))
    if (!listed)
      fs.appendFileSync(
        ignoreFile,
        `${text === '' || text.endsWith('\n') ? '' : '\n'}# the hot-reload agent's token (hotctl init)\n/${TOKEN_FILE}\n`,
      )
    gitignore = ignoreFile
  }
  return {file, created, narrowed, gitignore}
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir)
  } catch {
    return []
  }
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory()
  } catch {
    return false
  }
}
