/**
 * Helpers for hotctl's end-to-end tests: temp workspaces (source tree, live target, config), the
 * real Python test service, the real built CLI as a subprocess, and tree fingerprints.
 */
import {type ChildProcess, spawn, spawnSync} from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {execa, type ResultPromise} from 'execa'
import YAML from 'yaml'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const BIN = path.join(ROOT, 'bin', 'run.js')
export const SERVICE_PY = path.join(ROOT, 'test', 'fixtures', 'service.py')
export const MARKER = '.hotctl-release.json'

/** Throws a clear error when the CLI has not been built (tests run the real dist/). */
export function requireBuild(): void {
  for (const f of ['dist/commands/deploy.js', 'dist/commands/rollback.js', 'dist/commands/status.js']) {
    if (!fs.existsSync(path.join(ROOT, f))) {
      throw new Error(`hotctl is not built: ${f} is missing. Run \`cd ${ROOT} && npx tsc -p .\` before the e2e tests.`)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// App versions

export interface AppOpts {
  /** calc raises: the service answers 500 {"success": false}. */
  calcBroken?: boolean
  /** handlers.py does not parse: checks fail, the service rejects the reload. */
  syntaxError?: boolean
}

/** app/handlers.py of version `v`: hello() says `hello <v>`, calc adds. */
export function handlersPy(v: string, opts: AppOpts = {}): string {
  const lines = [
    `VERSION = ${JSON.stringify(v)}`,
    '',
    '',
    'def hello():',
    `    return "hello " + VERSION`,
    '',
    '',
    'def calc(a, b):',
  ]
  if (opts.calcBroken) lines.push(`    raise RuntimeError("calc is broken in " + VERSION)`)
  else lines.push('    return a + b')
  if (opts.syntaxError) lines.push('', 'def broken(:', '    pass')
  return `${lines.join('\n')}\n`
}

function writeFile(root: string, rel: string, content: string | Buffer, mode?: number): void {
  const abs = path.join(root, rel)
  fs.mkdirSync(path.dirname(abs), {recursive: true})
  fs.writeFileSync(abs, content)
  if (mode !== undefined) fs.chmodSync(abs, mode)
}

/** Writes files ({'a/b.txt': 'content'}) under root, creating parents. */
export function writeFiles(root: string, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) writeFile(root, rel, content)
}

/** The deployable app tree of version `v`. */
export function writeApp(root: string, v: string, opts: AppOpts = {}): void {
  writeFile(root, 'app/__init__.py', '')
  writeFile(root, 'app/handlers.py', handlersPy(v, opts))
  writeFile(root, 'requirements.txt', 'requests==2.31.0\n')
  writeFile(root, 'README.md', '# demo app\n')
  writeFile(root, 'static/style.css', 'body { color: black; }\n')
  writeFile(root, 'bin/serve.sh', '#!/bin/sh\necho serving\n', 0o755)
}

// ---------------------------------------------------------------------------------------------
// Workspaces

export interface Workspace {
  dir: string
  /** Source tree (config file lives here, so `source` defaults to it). */
  src: string
  /** Live directory of the running service (the target). */
  live: string
  /** Default state dir: <dir>/.live.hotctl */
  stateDir: string
  configPath: string
  writeConfig(cfg: Record<string, unknown>, at?: string): string
  /** Rewrites src/app/handlers.py as version `v`. */
  setVersion(v: string, opts?: AppOpts): void
  gitCommit(message?: string): void
  journal(): Record<string, unknown>[]
  backupFiles(): string[]
}

const workspaces: string[] = []

export const LIVE_DB = crypto.randomBytes(4096)
export const LIVE_ENV = 'DATABASE_URL=sqlite:///data/app.db\nAPI_KEY=live-only\n'

/**
 * <tmp>/src: app v1 (+ git repo when `git`); <tmp>/live: app v1 as installed by hand (no marker)
 * plus protected live-only content: data/app.db, data/uploads/a.txt, .env.
 */
export function makeWorkspace(opts: {git?: boolean} = {}): Workspace {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-e2e-')))
  workspaces.push(dir)
  const src = path.join(dir, 'src')
  const live = path.join(dir, 'live')
  writeApp(src, 'v1')
  writeApp(live, 'v1')
  writeFile(live, 'data/app.db', LIVE_DB)
  writeFile(live, 'data/uploads/a.txt', 'uploaded by a user\n')
  writeFile(live, '.env', LIVE_ENV, 0o600)
  const ws: Workspace = {
    dir,
    src,
    live,
    stateDir: path.join(dir, '.live.hotctl'),
    configPath: path.join(src, 'hotctl.config.yaml'),
    writeConfig(cfg, at = ws.configPath) {
      fs.writeFileSync(at, YAML.stringify(cfg))
      return at
    },
    setVersion(v, o) {
      writeFile(src, 'app/handlers.py', handlersPy(v, o))
    },
    gitCommit(message = 'commit') {
      const git = (...args: string[]) => execaSyncOk('git', ['-C', src, ...args])
      if (!fs.existsSync(path.join(src, '.git'))) git('init', '-q', '-b', 'main')
      git('add', '-A')
      git('-c', 'user.email=e2e@example.com', '-c', 'user.name=e2e', 'commit', '-q', '--allow-empty', '-m', message)
    },
    journal() {
      return readJournal(ws.stateDir)
    },
    backupFiles() {
      const d = path.join(ws.stateDir, 'backups')
      return fs.existsSync(d)
        ? fs
            .readdirSync(d)
            .filter((n) => n.endsWith('.json'))
            .sort()
        : []
    },
  }
  if (opts.git) ws.gitCommit('v1')
  return ws
}

function execaSyncOk(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, {encoding: 'utf8'})
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`)
}

export function removeWorkspaces(): void {
  for (const d of workspaces.splice(0)) {
    try {
      fs.chmodSync(d, 0o755)
    } catch {
      /* gone */
    }
    fs.rmSync(d, {recursive: true, force: true})
  }
}

/** A copy of `from` at `to` with fresh mtimes (and inodes) everywhere: what a CI checkout looks like. */
export function freshCopy(from: string, to: string, opts: {skip?: string[]} = {}): void {
  fs.mkdirSync(to, {recursive: true})
  for (const d of fs.readdirSync(from, {withFileTypes: true})) {
    if (opts.skip?.includes(d.name)) continue
    const a = path.join(from, d.name)
    const b = path.join(to, d.name)
    if (d.isDirectory()) freshCopy(a, b, opts)
    else if (d.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(a), b)
    else {
      fs.writeFileSync(b, fs.readFileSync(a))
      fs.chmodSync(b, fs.statSync(a).mode & 0o7777)
    }
  }
}

/** A slow rsync (real rsync, bandwidth-limited) for HOTCTL_RSYNC: makes the sync phase last. */
export function slowRsync(dir: string, kbps = 200): string {
  const file = path.join(dir, 'slow-rsync.sh')
  fs.writeFileSync(file, `#!/bin/sh\nexec rsync --bwlimit=${kbps} "$@"\n`, {mode: 0o755})
  return file
}

// ---------------------------------------------------------------------------------------------
// The test service

export interface Service {
  port: number
  pid: number
  base: string
  proc: ChildProcess
  url(p: string): string
  stop(): Promise<void>
  /** GET/POST helpers against the live service. */
  status(): Promise<{state: string; version: string | null; reloads: number}>
  hello(): Promise<string>
  calc(a: number, b: number): Promise<{status: number; body: unknown}>
}

const services = new Set<Service>()

export async function startService(root: string, opts: {neverReport?: boolean; token?: string} = {}): Promise<Service> {
  const args = ['-B', SERVICE_PY, '--root', root, '--port', '0', ...(opts.neverReport ? ['--never-report'] : [])]
  const env: NodeJS.ProcessEnv = {...process.env, PYTHONDONTWRITEBYTECODE: '1'}
  delete env.HOTRELOAD_TOKEN
  if (opts.token) env.HOTRELOAD_TOKEN = opts.token
  const proc = spawn('python3', args, {env, stdio: ['ignore', 'pipe', 'pipe']})
  let stderr = ''
  proc.stderr!.on('data', (d) => (stderr += String(d)))
  const ready = await new Promise<{port: number; pid: number}>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(
      () => reject(new Error(`service did not print READY within 10s; stderr: ${stderr}`)),
      10_000,
    )
    proc.stdout!.on('data', (d) => {
      out += String(d)
      const m = /READY (\d+) (\d+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve({port: Number(m[1]), pid: Number(m[2])})
      }
    })
    proc.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`service exited (${code}) before READY; stderr: ${stderr}`))
    })
  })
  const base = `http://127.0.0.1:${ready.port}`
  const svc: Service = {
    ...ready,
    base,
    proc,
    url: (p) => `${base}${p}`,
    async stop() {
      services.delete(svc)
      if (proc.exitCode !== null || proc.signalCode !== null) return
      const gone = new Promise<void>((r) => proc.once('exit', () => r()))
      proc.kill('SIGTERM')
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000)
      await gone
      clearTimeout(t)
    },
    async status() {
      const r = await fetch(`${base}/api/v1/hot-reload/status`)
      return (await r.json()) as {state: string; version: string | null; reloads: number}
    },
    async hello() {
      return (await fetch(`${base}/api/v1/hello`)).text()
    },
    async calc(a, b) {
      const json = {'content-type': 'application/json'}
      const r = await fetch(`${base}/api/v1/calc`, {method: 'POST', headers: json, body: JSON.stringify({a, b})})
      return {status: r.status, body: await r.json()}
    },
  }
  services.add(svc)
  return svc
}

export async function stopAllServices(): Promise<void> {
  await Promise.all([...services].map((s) => s.stop()))
}

// ---------------------------------------------------------------------------------------------
// Config

/** The standard config for one service: checks, reload (trigger + status), smoke. */
export function serviceConfig(svc: Service, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    target: '../live',
    protect: ['data/', '.env'],
    checks: {syntax: `python3 -B -c "import ast; ast.parse(open('app/handlers.py').read())"`},
    reload: {
      trigger: {url: svc.url('/api/v1/hot-reload/check'), method: 'POST'},
      status: {url: svc.url('/api/v1/hot-reload/status'), version: 'version', settle: '200ms'}, // one process: no workers to wait for
      timeout: '5s',
      requireRestart: ['requirements.txt', '**/*.so'],
    },
    smoke: [
      {name: 'health', url: svc.url('/health'), expect: {status: 200}},
      {
        name: 'calc',
        url: svc.url('/api/v1/calc'),
        method: 'POST',
        json: {a: 2, b: 3},
        expect: {status: 200, json: {success: true, result: 5}},
        retries: 1,
      },
    ],
    ...over,
  }
}

// ---------------------------------------------------------------------------------------------
// The CLI

export interface CliResult {
  exitCode: number | undefined
  signal?: string
  stdout: string
  stderr: string
  /** stdout parsed as JSON when it is exactly one JSON object, else undefined. */
  json: any
}

function cliEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('HOTCTL_')) env[k] = v
  env.NO_COLOR = '1'
  env.CI = '1'
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k]
    else env[k] = v
  }
  return env
}

/** Exactly one JSON object on stdout, or undefined. */
export function parseOneJson(stdout: string): any {
  const text = stdout.trim()
  if (!text.startsWith('{') || text.split('\n').length !== 1) return undefined
  try {
    const v = JSON.parse(text)
    return v && typeof v === 'object' && !Array.isArray(v) ? v : undefined
  } catch {
    return undefined
  }
}

export async function runCli(
  args: string[],
  opts: {cwd: string; env?: Record<string, string | undefined>; timeoutMs?: number},
): Promise<CliResult> {
  const how = {cwd: opts.cwd, env: cliEnv(opts.env), extendEnv: false, reject: false, stdin: 'ignore'} as const
  const r = await execa('node', [BIN, ...args], {...how, timeout: opts.timeoutMs ?? 60_000})
  const stdout = String(r.stdout)
  return {exitCode: r.exitCode, signal: r.signal, stdout, stderr: String(r.stderr), json: parseOneJson(stdout)}
}

/** Starts the CLI in the background, in its own process group (so a test can kill the group). */
export function startCli(args: string[], opts: {cwd: string; env?: Record<string, string | undefined>}): ResultPromise {
  const how = {cwd: opts.cwd, env: cliEnv(opts.env), extendEnv: false, reject: false, stdin: 'ignore'} as const
  return execa('node', [BIN, ...args], {...how, detached: true, timeout: 120_000})
}

// ---------------------------------------------------------------------------------------------
// Trees

interface Entry {
  type: 'file' | 'dir' | 'symlink'
  mode: number
  ino: number
  mtimeMs: number
  size: number
  link?: string
}

/** Every entry under `root` (nothing excluded), by relative path, sorted. */
export function listTree(root: string): Map<string, Entry> {
  const out = new Map<string, Entry>()
  const visit = (rel: string) => {
    const abs = rel ? path.join(root, rel) : root
    for (const name of fs.readdirSync(abs).sort()) {
      const r = rel ? `${rel}/${name}` : name
      const st = fs.lstatSync(path.join(root, r))
      const type = st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : 'file'
      const link = type === 'symlink' ? {link: fs.readlinkSync(path.join(root, r))} : {}
      out.set(r, {type, mode: st.mode & 0o7777, ino: st.ino, mtimeMs: st.mtimeMs, size: st.size, ...link})
      if (type === 'dir') visit(r)
    }
  }
  if (fs.existsSync(root)) visit('')
  return out
}

/** Per path: type, mode and content hash (or link). Excludes nothing unless `skip` says so. */
export function treeContent(root: string, skip: (rel: string) => boolean = () => false): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [rel, e] of listTree(root)) {
    if (skip(rel)) continue
    const sha = () =>
      crypto
        .createHash('sha256')
        .update(fs.readFileSync(path.join(root, rel)))
        .digest('hex')
    const what = e.type === 'file' ? sha() : e.type === 'symlink' ? e.link : ''
    out[rel] = `${e.type} ${e.mode.toString(8)} ${what}`
  }
  return out
}

/** sha256 over sorted relative paths + types + modes + contents of the whole tree. */
export function treeHash(root: string): string {
  return crypto
    .createHash('sha256')
    .update(JSON.stringify(treeContent(root)))
    .digest('hex')
}

/** inode + mtime + size of every entry: proves nothing was rewritten. */
export function inodes(root: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [rel, e] of listTree(root)) out[rel] = `${e.type} ino=${e.ino} mtime=${e.mtimeMs} size=${e.size}`
  return out
}

export function readMarker(live: string): {id: string; gitSha: string | null; user: string; time: string} | null {
  const f = path.join(live, MARKER)
  return fs.existsSync(f) ? JSON.parse(fs.readFileSync(f, 'utf8')) : null
}

export function readJournal(stateDir: string): Record<string, unknown>[] {
  const f = path.join(stateDir, 'journal.jsonl')
  if (!fs.existsSync(f)) return []
  return fs
    .readFileSync(f, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | false,
  timeoutMs = 15_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = probe()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

/** Is a process alive? */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** A pid that certainly belonged to a process that has exited. */
export async function deadPid(): Promise<number> {
  const p = spawn('true')
  await new Promise((r) => p.once('exit', r))
  return p.pid!
}
