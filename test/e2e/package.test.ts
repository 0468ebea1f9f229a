/**
 * The package as published: `npm pack`, installed from the tarball into an empty project, then
 * used the way a user would (npx hotctl --version, init, check, deploy, shell completion). A file
 * missing from package.json `files` (dist, bin, templates) fails it.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {requireBuild, ROOT} from './helpers.js'

beforeAll(requireBuild)

const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-pack-')))
afterAll(() => fs.rmSync(dir, {recursive: true, force: true}))

function env(extra: Record<string, string> = {}): Record<string, string> {
  const e: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('HOTCTL_')) e[k] = v
  delete e.NODE_ENV // vitest's "test" would make oclif look for TypeScript sources, as in development
  return {...e, NO_COLOR: '1', CI: '1', npm_config_audit: 'false', npm_config_fund: 'false', ...extra}
}

const run = (cmd: string, args: string[], cwd: string, extra: Record<string, string> = {}) =>
  execa(cmd, args, {cwd, env: env(extra), extendEnv: false, reject: false, stdin: 'ignore', timeout: 300_000})

const why = (r: {stdout: unknown; stderr: unknown}) => `stdout:\n${String(r.stdout)}\nstderr:\n${String(r.stderr)}`

describe('the package as published', {timeout: 600_000}, () => {
  it('installs from its tarball into an empty project and runs --version, init, check, deploy and completion there', async () => {
    const packed = await run('npm', ['pack', ROOT, '--pack-destination', dir, '--json'], dir)
    expect(packed.exitCode, why(packed)).toBe(0)
    const [info] = JSON.parse(String(packed.stdout)) as [{filename: string; files: {path: string}[]}]
    const tarball = path.join(dir, info.filename)
    const shipped = info.files.map((f) => f.path)
    for (const f of [
      'bin/run.js',
      'bin/package.json', // bin/run.js is CommonJS (the package is "type": "module")
      'dist/commands/deploy.js',
      'dist/commands/diff.js',
      'templates/ci/github-actions.yml',
    ])
      expect(shipped, f).toContain(f)
    expect(shipped.some((f) => f.startsWith('test/') || f.startsWith('src/'))).toBe(false)

    const app = path.join(dir, 'app')
    fs.mkdirSync(app)
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({name: 'app', private: true}))
    // From npm's cache when it holds every dependency (no network); else the registry fills the gaps.
    let installed = await run('npm', ['install', '--offline', tarball], app)
    if (installed.exitCode !== 0) installed = await run('npm', ['install', '--prefer-offline', tarball], app)
    expect(installed.exitCode, why(installed)).toBe(0)

    const version = await run('npx', ['--no-install', 'hotctl', '--version'], app)
    expect(version.exitCode, why(version)).toBe(0)
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
    expect(String(version.stdout)).toMatch(new RegExp(`^hotctl/${pkg.version.replace(/\./g, '\\.')} `))

    // A small Python project next to its live directory.
    const proj = path.join(app, 'proj')
    const live = path.join(app, 'live')
    fs.mkdirSync(path.join(proj, 'pkg'), {recursive: true})
    fs.mkdirSync(live)
    fs.writeFileSync(path.join(proj, 'pkg', '__init__.py'), 'VERSION = "1"\n')
    fs.writeFileSync(path.join(proj, 'requirements.txt'), '\n')
    const hotctl = (args: string[]) => run('npx', ['--no-install', 'hotctl', ...args], proj)

    const init = await hotctl(['init', '--target', '../live', '--template', 'generic'])
    expect(init.exitCode, why(init)).toBe(0)
    expect(fs.readFileSync(path.join(proj, 'hotctl.config.yaml'), 'utf8')).toContain('target: ../live')
    // The Python agent ships in templates/: --with-agent copies it (its config then names the agent's URLs).
    const other = path.join(app, 'other')
    fs.mkdirSync(other)
    fs.writeFileSync(path.join(other, 'requirements.txt'), '\n')
    const agent = await run('npx', ['--no-install', 'hotctl', 'init', '--target', '../live', '--with-agent'], other)
    expect(agent.exitCode, why(agent)).toBe(0)
    expect(fs.existsSync(path.join(other, 'hotreload_agent', 'agent.py'))).toBe(true)

    const check = await hotctl(['check', '--json'])
    expect(check.exitCode, why(check)).toBe(0)
    expect(JSON.parse(String(check.stdout)).preflight.length).toBeGreaterThan(0)
    expect(String(check.stderr)).not.toMatch(/Warning/)
    const deploy = await hotctl(['deploy', '--json'])
    expect(deploy.exitCode, why(deploy)).toBe(0)
    const result = JSON.parse(String(deploy.stdout))
    expect(result.outcome).toBe('deployed')
    expect(fs.readFileSync(path.join(live, 'pkg', '__init__.py'), 'utf8')).toBe('VERSION = "1"\n')
    expect(JSON.parse(fs.readFileSync(path.join(live, '.hotctl-release.json'), 'utf8')).id).toBe(result.release)

    // Shell completion (@oclif/plugin-autocomplete): bash completes commands and their flags.
    const cache = path.join(dir, 'cache')
    const setup = await run('npx', ['--no-install', 'hotctl', 'autocomplete', 'script', 'bash'], proj, {
      XDG_CACHE_HOME: cache,
    })
    expect(setup.exitCode, why(setup)).toBe(0)
    const ac = await run('npx', ['--no-install', 'hotctl', 'autocomplete', 'bash'], proj, {XDG_CACHE_HOME: cache})
    expect(ac.exitCode, why(ac)).toBe(0)
    const complete = async (words: string[]) => {
      const script = [
        String(setup.stdout).trim(),
        `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}`,
        '_hotctl_autocomplete; printf "%s\\n" "${COMPREPLY[@]}"',
      ].join('\n')
      const r = await run('bash', ['--norc', '--noprofile', '-c', script], proj, {XDG_CACHE_HOME: cache})
      expect(r.exitCode, why(r)).toBe(0)
      return String(r.stdout).split('\n').filter(Boolean)
    }
    expect(await complete(['hotctl', 'd'])).toEqual(expect.arrayContaining(['deploy', 'diff']))
    expect(await complete(['hotctl', 'deploy', '--no-r'])).toEqual(['--no-restart'])
    expect(await complete(['hotctl', 'log', '--s'])).toEqual(['--since'])
  })
})
