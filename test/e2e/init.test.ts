import {spawn, type ChildProcess} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import YAML from 'yaml'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {DEFAULT_EXCLUDE} from '../../src/config/schema.js'
import {ROOT, requireBuild, runCli, waitFor} from './helpers.js'

const dirs: string[] = []
const procs: ChildProcess[] = []
beforeAll(() => {
  requireBuild()
  if (!fs.existsSync(path.join(ROOT, 'dist/commands/init.js')))
    throw new Error('dist/commands/init.js is missing: run `npx tsc -p .` first')
})
afterAll(() => {
  for (const p of procs.splice(0)) p.kill('SIGKILL')
  for (const d of dirs.splice(0)) fs.rmSync(d, {recursive: true, force: true})
})

const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`

/** A project dir with the given files ({rel: content}; content null makes a directory). */
function project(files: Record<string, string | null>): string {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-init-')))
  dirs.push(dir)
  for (const [rel, content] of Object.entries(files)) {
    const abs = path.join(dir, rel)
    if (content === null) fs.mkdirSync(abs, {recursive: true})
    else {
      fs.mkdirSync(path.dirname(abs), {recursive: true})
      fs.writeFileSync(abs, content)
    }
  }
  return dir
}

const readConfig = (dir: string) => YAML.parse(fs.readFileSync(path.join(dir, 'hotctl.config.yaml'), 'utf8'))

describe('hotctl init', {timeout: 30_000}, () => {
  it('detects a Python project and fills in pytest, flake8 and mypy', async () => {
    const dir = project({
      'requirements.txt': 'flask==3.0\npytest>=8\nflake8\n',
      'tests/test_x.py': '',
      'mypy.ini': '[mypy]\n',
    })
    const r = await runCli(['init', '--json'], {cwd: dir})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json, why(r)).toBeDefined()
    expect(r.json).toMatchObject({
      ok: true,
      command: 'init',
      template: 'python',
      path: path.join(dir, 'hotctl.config.yaml'),
      target: '/opt/app',
      targetIsPlaceholder: true,
    })
    expect(r.json.checks).toEqual({test: 'pytest -q', lint: 'flake8 .', types: 'mypy .'})
    expect(r.json.next.join('\n')).toMatch(/hotctl check/)
    expect(r.json.next.join('\n')).toMatch(/hotctl deploy --dry-run/)
    const cfg = readConfig(dir)
    expect(cfg.target).toBe('/opt/app')
    expect(cfg.checks).toEqual({test: 'pytest -q', lint: 'flake8 .', types: 'mypy .'})
    expect(cfg.reload.trigger.url).toBe('http://127.0.0.1:8001/api/v1/hot-reload/check')
    expect(cfg.reload.status.url).toBe('http://127.0.0.1:8001/api/v1/hot-reload/status')
    expect(cfg.reload.trigger.headers).toBeUndefined() // the token header is commented out
    expect(fs.readFileSync(path.join(dir, 'hotctl.config.yaml'), 'utf8')).toMatch(
      /# headers: \{ Authorization: 'Bearer \$\{HOTRELOAD_TOKEN\}' \}/,
    )
    expect(cfg.smoke).toEqual([{name: 'health', url: 'http://127.0.0.1:8001/health', expect: {status: 200}}])
  })

  it('picks ruff from pyproject.toml and leaves out what is not there', async () => {
    const dir = project({'pyproject.toml': '[project]\nname = "x"\n\n[tool.ruff]\nline-length = 100\n'})
    const r = await runCli(['init', '--json', '--target', '/srv/x'], {cwd: dir})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.template).toBe('python')
    expect(r.json.checks).toEqual({lint: 'ruff check .'})
    expect(readConfig(dir).target).toBe('/srv/x')
  })

  it('detects a Node project: npm test, tsc, npm run lint', async () => {
    const dir = project({
      'package.json': JSON.stringify({name: 'x', scripts: {test: 'vitest run', lint: 'eslint .'}}),
      'tsconfig.json': '{}',
    })
    const r = await runCli(['init', '--json', '--target', '../live'], {cwd: dir})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.template).toBe('node')
    expect(r.json.checks).toEqual({test: 'npm test', types: 'npx tsc --noEmit', lint: 'npm run lint'})
    const cfg = readConfig(dir)
    expect(cfg.target).toBe('../live')
    expect(cfg.checks).toEqual({test: 'npm test', types: 'npx tsc --noEmit', lint: 'npm run lint'})
  })

  it('falls back to the generic template, and --template overrides detection', async () => {
    const dir = project({'main.go': 'package main\n'})
    const r = await runCli(['init'], {cwd: dir})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.stdout).toMatch(/hotctl\.config\.yaml/)
    expect(r.stdout).toMatch(/template generic/)
    expect(r.stdout).toMatch(/hotctl check/)
    expect(r.stdout).toMatch(/hotctl deploy --dry-run/)
    expect(readConfig(dir).checks).toEqual({})

    const py = project({'requirements.txt': 'pytest\n'})
    const forced = await runCli(['init', '--json', '--template', 'generic'], {cwd: py})
    expect(forced.exitCode, why(forced)).toBe(0)
    expect(forced.json.template).toBe('generic')
    expect(forced.json.reason).toBe('--template')
  })

  it.each([
    ['*.py files only', {'app.py': 'print(1)\n'}, /app\.py/],
    ['a package one level down', {'src/app/__init__.py': '', 'src/app/views.py': ''}, null],
    ['pyproject.toml only', {'pyproject.toml': '[project]\nname = "x"\n'}, /pyproject\.toml/],
    ['setup.cfg only', {'setup.cfg': '[metadata]\nname = x\n'}, /setup\.cfg/],
    ['a tests/ directory only', {tests: null}, /tests\//],
  ] as [string, Record<string, string | null>, RegExp | null][])(
    'detects a Python project by %s',
    async (_what, files, reason) => {
      const dir = project(files)
      const r = await runCli(['init', '--json'], {cwd: dir})
      expect(r.exitCode, why(r)).toBe(0)
      expect(r.json.template).toBe('python')
      if (reason) expect(r.json.reason).toMatch(reason)
    },
  )

  it('a package.json wins over a stray script or tests/; nothing Python-like stays generic', async () => {
    const node = project({'package.json': '{"name": "x"}', 'tools/gen.py': '', tests: null})
    expect((await runCli(['init', '--json'], {cwd: node})).json.template).toBe('node')
    const other = project({'main.go': 'package main\n', 'docs/index.md': ''})
    expect((await runCli(['init', '--json'], {cwd: other})).json.template).toBe('generic')
  })

  it.each(['python', 'node', 'generic'])(
    "the %s template writes out every default exclude (a config's exclude replaces the defaults)",
    async (template) => {
      const dir = project({})
      const r = await runCli(['init', '--json', '--template', template], {cwd: dir})
      expect(r.exitCode, why(r)).toBe(0)
      expect(readConfig(dir).exclude).toEqual(expect.arrayContaining([...DEFAULT_EXCLUDE]))
      expect(DEFAULT_EXCLUDE).toContain('__pycache__')
    },
  )

  it('refuses to overwrite an existing config (exit 2, names the file); --force overwrites', async () => {
    const dir = project({'requirements.txt': 'pytest\n', 'hotctl.config.yaml': 'target: /keep/me\n'})
    const r = await runCli(['init'], {cwd: dir})
    expect(r.exitCode, why(r)).toBe(2)
    expect(r.stderr).toContain(path.join(dir, 'hotctl.config.yaml'))
    expect(fs.readFileSync(path.join(dir, 'hotctl.config.yaml'), 'utf8')).toBe('target: /keep/me\n')

    const j = await runCli(['init', '--json'], {cwd: dir})
    expect(j.exitCode).toBe(2)
    expect(j.json.ok).toBe(false)
    expect(j.json.error.message).toContain('hotctl.config.yaml')

    const f = await runCli(['init', '--force', '--json', '--target', '/srv/new'], {cwd: dir})
    expect(f.exitCode, why(f)).toBe(0)
    expect(f.json.overwrote).toBe(true)
    expect(readConfig(dir).target).toBe('/srv/new')
  })

  it('treats .hotctlrc* as an existing config too', async () => {
    const dir = project({'.hotctlrc.json': '{"target": "/x"}'})
    const r = await runCli(['init'], {cwd: dir})
    expect(r.exitCode, why(r)).toBe(2)
    expect(r.stderr).toContain('.hotctlrc.json')
    expect(fs.existsSync(path.join(dir, 'hotctl.config.yaml'))).toBe(false)
  })

  it('--with-agent copies the Python agent, and refuses to overwrite it without --force', async () => {
    const dir = project({'requirements.txt': ''})
    const r = await runCli(['init', '--with-agent', '--json'], {cwd: dir})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.agent).toBe(path.join(dir, 'hotreload_agent'))
    for (const f of ['__init__.py', 'agent.py', 'wsgi.py'])
      expect(fs.existsSync(path.join(dir, 'hotreload_agent', f)), f).toBe(true)
    expect(fs.existsSync(path.join(dir, 'hotreload_agent', '__pycache__'))).toBe(false)

    fs.rmSync(path.join(dir, 'hotctl.config.yaml'))
    fs.writeFileSync(path.join(dir, 'hotreload_agent', 'mine.py'), '# local change\n')
    const again = await runCli(['init', '--with-agent'], {cwd: dir})
    expect(again.exitCode, why(again)).toBe(2)
    expect(again.stderr).toContain('hotreload_agent')
    expect(fs.existsSync(path.join(dir, 'hotctl.config.yaml'))).toBe(false)
    expect(fs.existsSync(path.join(dir, 'hotreload_agent', 'mine.py'))).toBe(true)
  })

  it('--with-agent sets up the agent token: a 0600 file, never deployed, gitignored, sent by the trigger, never printed', async () => {
    const dir = project({'requirements.txt': '', '.gitignore': 'venv'})
    const r = await runCli(['init', '--with-agent', '--json', '--target', '/srv/app'], {
      cwd: dir,
      env: {HOTRELOAD_TOKEN: undefined},
    })
    expect(r.exitCode, why(r)).toBe(0)
    const file = path.join(dir, '.hotreload-token')
    expect(r.json).toMatchObject({tokenFile: file, tokenCreated: true, gitignore: path.join(dir, '.gitignore')})
    expect(fs.statSync(file).mode & 0o777).toBe(0o600)
    const token = fs.readFileSync(file, 'utf8').trim()
    expect(token).toMatch(/^[0-9a-f]{64}$/)
    expect(r.stdout + r.stderr).not.toContain(token)
    const cfg = readConfig(dir)
    expect(cfg.reload.trigger.headers).toEqual({Authorization: 'Bearer ${HOTRELOAD_TOKEN}'})
    expect(cfg.exclude).toContain('.hotreload-token')
    expect(fs.readFileSync(path.join(dir, '.gitignore'), 'utf8')).toBe(
      "venv\n# the hot-reload agent's token (hotctl init)\n/.hotreload-token\n",
    )
    expect(r.json.next.join('\n')).toContain('export HOTRELOAD_TOKEN="$(cat .hotreload-token)"')
    expect(r.json.next.join('\n')).toContain(`HOTRELOAD_TOKEN_FILE=${file}`)

    // Again with --force (human output): the token a running service may use is kept, a loose mode narrowed.
    fs.chmodSync(file, 0o644)
    const again = await runCli(['init', '--with-agent', '--force', '--target', '/srv/app'], {cwd: dir})
    expect(again.exitCode, why(again)).toBe(0)
    expect(again.stdout).toContain(`Token:   kept ${file} (mode 0600, never printed)`)
    expect(again.stdout + again.stderr).toMatch(/narrowed to mode 0600/)
    expect(again.stdout + again.stderr).not.toContain(token)
    expect(fs.readFileSync(file, 'utf8').trim()).toBe(token)
    expect(fs.statSync(file).mode & 0o777).toBe(0o600)
    expect(fs.readFileSync(path.join(dir, '.gitignore'), 'utf8').match(/hotreload-token/g)).toHaveLength(1)
  })

  it(
    '--with-agent: the service reads the token file, hotctl the env; a deploy reloads the running service',
    {timeout: 90_000},
    async () => {
      const dir = project({'requirements.txt': '', 'app/__init__.py': '', 'app/handlers.py': 'VERSION = "v1"\n'})
      const live = project({})
      const init = await runCli(['init', '--with-agent', '--json', '--target', live], {
        cwd: dir,
        env: {HOTRELOAD_TOKEN: undefined},
      })
      expect(init.exitCode, why(init)).toBe(0)
      const tokenFile = init.json.tokenFile as string
      // The live tree as a first deploy left it: the project without the config and the token.
      fs.cpSync(dir, live, {
        recursive: true,
        filter: (src) => !/(hotctl\.config\.yaml|\.hotreload-token|\.gitignore)$/.test(src),
      })
      const service = `
import sys
sys.path.insert(0, sys.argv[1])
from wsgiref.simple_server import make_server
from hotreload_agent import Agent, HotReloadWSGI
agent = Agent(sys.argv[1])
handlers = agent.register("h", "app.handlers")
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [handlers.VERSION.encode()]
server = make_server("127.0.0.1", 0, HotReloadWSGI(app, agent))
print("READY", server.server_address[1], flush=True)
server.serve_forever()
`
      const env: NodeJS.ProcessEnv = {...process.env, PYTHONDONTWRITEBYTECODE: '1', HOTRELOAD_TOKEN_FILE: tokenFile}
      delete env.HOTRELOAD_TOKEN
      const proc = spawn('python3', ['-c', service, live], {env, stdio: ['ignore', 'pipe', 'pipe']})
      procs.push(proc)
      let out = ''
      let log = ''
      proc.stdout!.on('data', (d) => (out += String(d)))
      proc.stderr!.on('data', (d) => (log += String(d)))
      const port = await waitFor(`the service READY line (stderr: ${log})`, () => /READY (\d+)/.exec(out)?.[1])
      const base = `http://127.0.0.1:${port}`
      const get = async () => (await fetch(base + '/')).text()
      expect(await get()).toBe('v1')
      // The template's port, set to the service's (as a user edits it).
      const cfgPath = path.join(dir, 'hotctl.config.yaml')
      fs.writeFileSync(cfgPath, fs.readFileSync(cfgPath, 'utf8').replaceAll('127.0.0.1:8001', `127.0.0.1:${port}`))
      fs.writeFileSync(path.join(dir, 'app', 'handlers.py'), 'VERSION = "v2"\n')

      const anonymous = await fetch(base + '/api/v1/hot-reload/check', {method: 'POST'})
      expect(anonymous.status).toBe(401) // the agent has the file's token: a request without it is refused

      const noEnv = await runCli(['deploy', '--no-restart', '--json'], {cwd: dir, env: {HOTRELOAD_TOKEN: undefined}})
      expect(noEnv.exitCode, why(noEnv)).toBe(2)
      expect(noEnv.json.error.message).toMatch(
        /reload\.trigger\.headers\.Authorization: environment variable HOTRELOAD_TOKEN is not set/,
      )

      const token = fs.readFileSync(tokenFile, 'utf8').trim()
      const deploy = await runCli(['deploy', '--no-restart', '--json'], {cwd: dir, env: {HOTRELOAD_TOKEN: token}})
      expect(deploy.exitCode, why(deploy)).toBe(0)
      expect(deploy.stdout + deploy.stderr).not.toContain(token)
      expect(await get()).toBe('v2')
      expect(fs.existsSync(path.join(live, '.hotreload-token'))).toBe(false) // never deployed
    },
  )

  it('refuses a target that overlaps the project (exit 2) and writes nothing', async () => {
    const dir = project({'requirements.txt': ''})
    const r = await runCli(['init', '--target', 'live'], {cwd: dir})
    expect(r.exitCode, why(r)).toBe(2)
    expect(r.stderr).toMatch(/overlap/)
    expect(fs.existsSync(path.join(dir, 'hotctl.config.yaml'))).toBe(false)
  })

  it.each(['python', 'node', 'generic'])(
    'the %s template passes `hotctl check` config validation',
    async (template) => {
      const dir = project({
        'requirements.txt': 'pytest\nflake8\nmypy\n',
        'package.json': '{"scripts": {"test": "x", "lint": "y"}}',
        'tsconfig.json': '{}',
        'tests/': null,
      })
      // A target that does not exist (not the /opt/app placeholder: `check` creates the state dir beside it).
      const missing = path.join(project({}), 'missing', 'live')
      const init = await runCli(['init', '--json', '--template', template, '--target', missing], {
        cwd: dir,
        env: {HOTRELOAD_TOKEN: undefined},
      })
      expect(init.exitCode, why(init)).toBe(0)
      const check = await runCli(['check', '--skip-checks', '--json'], {cwd: dir, env: {HOTRELOAD_TOKEN: undefined}})
      // The target need not exist: preflight may fail (1), the config may not (2).
      expect(check.exitCode, why(check)).not.toBe(2)
      expect([0, 1]).toContain(check.exitCode)
      expect(check.json, why(check)).toBeDefined()
      expect(check.json.config).toBe(path.join(dir, 'hotctl.config.yaml'))

      // With a target that exists, the preflight passes, but for a status URL of a service not running here.
      const live = project({})
      const init2 = await runCli(['init', '--json', '--force', '--template', template, '--target', live], {cwd: dir})
      expect(init2.exitCode, why(init2)).toBe(0)
      const check2 = await runCli(['check', '--skip-checks', '--json'], {cwd: dir})
      const failed = check2.json.preflight.filter((p: {ok: boolean}) => !p.ok).map((p: {name: string}) => p.name)
      expect(
        failed.every((n: string) => n.startsWith('status of')),
        why(check2),
      ).toBe(true)
      expect(check2.exitCode, why(check2)).toBe(failed.length ? 1 : 0)
    },
  )
})
