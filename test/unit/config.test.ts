import path from 'node:path'
import {describe, expect, it} from 'vitest'
import {parseConfig} from '../../src/config/load.js'
import {interpolateEnv} from '../../src/config/interpolate.js'
import {MARKER_NAME} from '../../src/config/resolve.js'
import {EXIT} from '../../src/errors.js'
import {redact, redactValue, registerSecret} from '../../src/secrets.js'
import {catchHotctl} from './helpers.js'

const FILE = '/srv/deploy/hotctl.config.json'
const parse = (raw: unknown, env: NodeJS.ProcessEnv = {}) => parseConfig(raw, FILE, env)
const fail = (raw: unknown, env: NodeJS.ProcessEnv = {}) => catchHotctl(() => parse(raw, env))
/** The message lines, each `<file>: <path>: <message>`. */
const lines = (raw: unknown, env: NodeJS.ProcessEnv = {}) => fail(raw, env).message.split('\n')
const fieldOf = (line: string) => {
  expect(line.startsWith(`${FILE}: `)).toBe(true)
  return line.slice(FILE.length + 2).split(': ')[0]
}

describe('parseConfig: defaults and resolution', () => {
  it('applies defaults: source is the config dir, stateDir beside the target, default excludes', () => {
    const c = parse({target: '../live/app'})
    expect(c.file).toBe(FILE)
    expect(c.source).toBe('/srv/deploy')
    expect(c.target).toBe('/srv/live/app')
    expect(c.stateDir).toBe('/srv/live/.app.hotctl')
    expect(c.exclude).toEqual(['.git', '__pycache__', '*.pyc', '.venv', 'node_modules'])
    expect(c.protect).toEqual([])
    expect(c.keep).toBe(10)
    expect(c.checks).toEqual([])
    expect(c.services).toEqual([])
    expect(c.smoke).toEqual([])
    expect(c.requireRestart).toEqual([])
    expect(c.reloadTimeoutMs).toBe(60_000)
    expect(c.restart).toBeUndefined()
  })

  it('resolves relative source/target/stateDir against the config file directory', () => {
    const c = parse({source: 'src', target: '/opt/app', stateDir: '../state'})
    expect(c.source).toBe('/srv/deploy/src')
    expect(c.target).toBe('/opt/app')
    expect(c.stateDir).toBe('/srv/state')
  })

  it('keeps user excludes instead of the defaults', () => {
    expect(parse({target: '/opt/app', exclude: ['*.log']}).exclude).toEqual(['*.log'])
  })

  it('unwraps an ESM default export', () => {
    expect(parse({default: {target: '/opt/app', keep: 3}}).keep).toBe(3)
  })

  it('normalises checks: a single command becomes a one-element list, order kept', () => {
    const c = parse({target: '/opt/app', checks: {lint: 'npm run lint', test: ['a', {argv: ['b', 'c']}]}})
    expect(c.checks).toEqual([
      {name: 'lint', commands: ['npm run lint']},
      {name: 'test', commands: ['a', {argv: ['b', 'c']}]},
    ])
  })

  it('single-service reload: one service named "service", timeout in ms, restart and requireRestart', () => {
    const c = parse({
      target: '/opt/app',
      reload: {
        trigger: {command: 'kill -HUP 1'},
        status: {url: 'http://localhost:8080/version'},
        timeout: '2m',
        restart: {command: {argv: ['systemctl', 'restart', 'app']}},
        requireRestart: ['**/*.so'],
      },
    })
    expect(c.services).toHaveLength(1)
    expect(c.services[0]!.name).toBe('service')
    expect(c.services[0]!.trigger).toEqual({command: 'kill -HUP 1'})
    expect(c.services[0]!.status).toMatchObject({
      url: 'http://localhost:8080/version',
      method: 'GET',
      version: 'version',
      retries: 2,
      timeout: '10s',
    })
    expect(c.reloadTimeoutMs).toBe(120_000)
    expect(c.restart).toEqual({argv: ['systemctl', 'restart', 'app']})
    expect(c.requireRestart).toEqual(['**/*.so'])
  })

  it('an HTTP trigger defaults to POST, a status to GET', () => {
    const c = parse({target: '/opt/app', reload: {trigger: {url: 'http://h/reload'}, status: {url: 'http://h/v'}}})
    expect(c.services[0]!.trigger).toMatchObject({method: 'POST'})
    expect(c.services[0]!.status).toMatchObject({method: 'GET'})
  })

  it('reload as a list of services keeps their names', () => {
    const c = parse({
      target: '/opt/app',
      reload: [
        {name: 'web', trigger: {command: 'x'}},
        {name: 'worker', status: {url: 'http://h/v'}},
      ],
    })
    expect(c.services.map((s) => s.name)).toEqual(['web', 'worker'])
    expect(c.reloadTimeoutMs).toBe(60_000)
  })

  it('reload with neither trigger nor status has no services', () => {
    expect(parse({target: '/opt/app', reload: {timeout: 5}}).services).toEqual([])
    expect(parse({target: '/opt/app', reload: {timeout: 5}}).reloadTimeoutMs).toBe(5000)
  })

  it('smoke defaults: expect status 200, GET, 2 retries; command smoke: 5m, 0 retries', () => {
    const c = parse({
      target: '/opt/app',
      smoke: [
        {name: 'home', url: 'http://h/'},
        {name: 'cli', command: 'true'},
      ],
    })
    expect(c.smoke[0]).toMatchObject({name: 'home', method: 'GET', expect: {status: 200}, retries: 2, timeout: '10s'})
    expect(c.smoke[1]).toMatchObject({name: 'cli', command: 'true', timeout: '5m', retries: 0})
  })

  it('the release marker name is a dotfile', () => {
    expect(MARKER_NAME).toBe('.hotctl-release.json')
  })
})

describe('parseConfig: errors name the file and the field', () => {
  it('errors are usage errors (exit code 2) with a hint and issue details', () => {
    const err = fail({target: '/opt/app', keep: 0})
    expect(err.exitCode).toBe(EXIT.usage)
    expect(err.exitCode).toBe(2)
    expect(err.hint).toBeTruthy()
    expect(err.details).toMatchObject({issues: [{path: 'keep'}]})
  })

  it('missing target', () => {
    const l = lines({})
    expect(l).toHaveLength(1)
    expect(fieldOf(l[0]!)).toBe('target')
  })

  it('keep must be an integer >= 1', () => {
    expect(lines({target: '/opt/app', keep: 0}).map(fieldOf)).toEqual(['keep'])
    expect(lines({target: '/opt/app', keep: 1.5}).map(fieldOf)).toEqual(['keep'])
    expect(lines({target: '/opt/app', keep: 'ten'}).map(fieldOf)).toEqual(['keep'])
  })

  it('an unknown top-level key is refused and named', () => {
    const l = lines({target: '/opt/app', exclud: ['x']})
    expect(l).toHaveLength(1)
    expect(fieldOf(l[0]!)).toBe('(root)')
    expect(l[0]).toContain('exclud')
  })

  it('an unknown key inside reload is named with its parent path', () => {
    const l = lines({target: '/opt/app', reload: {timout: '5s'}})
    expect(l).toHaveLength(1)
    expect(fieldOf(l[0]!)).toBe('reload')
    expect(l[0]).toContain('timout')
  })

  it('reload.status.url must be a URL', () => {
    const l = lines({target: '/opt/app', reload: {status: {url: 'not a url'}}})
    expect(l.map(fieldOf)).toEqual(['reload.status.url'])
  })

  it('reload.trigger.url must be a URL', () => {
    const l = lines({target: '/opt/app', reload: {trigger: {url: 'nope'}}})
    expect(l.map(fieldOf)).toContain('reload.trigger.url')
  })

  it('smoke.0.expect.status must be an integer (path into the smoke entry)', () => {
    const l = lines({target: '/opt/app', smoke: [{name: 'home', url: 'http://h/', expect: {status: 'ok'}}]})
    expect(l.map(fieldOf)).toEqual(['smoke.0.expect.status'])
  })

  it('smoke.1.url is named for the second entry', () => {
    const l = lines({
      target: '/opt/app',
      smoke: [
        {name: 'a', command: 'true'},
        {name: 'b', url: 'bad'},
      ],
    })
    expect(l.map(fieldOf)).toEqual(['smoke.1.url'])
  })

  it('several problems give one line each', () => {
    const l = lines({target: '/opt/app', keep: -1, exclude: 'x'})
    expect(l.map(fieldOf).sort()).toEqual(['exclude', 'keep'])
  })

  it('checks.<name> must be a non-empty command', () => {
    const l = lines({target: '/opt/app', checks: {lint: ''}})
    expect(l.map(fieldOf)[0]).toMatch(/^checks\.lint/)
  })

  it('a bad reload.timeout is a usage error naming the file and reload.timeout', () => {
    const err = fail({target: '/opt/app', reload: {timeout: 'soon'}})
    expect(err.exitCode).toBe(2)
    expect(err.message).toContain('reload.timeout')
    expect(err.message.split('\n').map(fieldOf)).toEqual(['reload.timeout'])
  })

  // Durations are only parsed when used (smoke/reload run after the sync has changed the target),
  // so a typo would surface mid-deploy. Config loading should refuse them up front.
  it('a bad smoke timeout is refused at load, naming smoke.0.timeout', () => {
    const err = fail({target: '/opt/app', smoke: [{name: 'a', command: 'true', timeout: 'soon'}]})
    expect(err.message.split('\n').map(fieldOf)).toEqual(['smoke.0.timeout'])
  })

  it('a bad reload.status.timeout is refused at load, naming reload.status.timeout', () => {
    const err = fail({target: '/opt/app', reload: {status: {url: 'http://h/v', timeout: '10 sec'}}})
    expect(err.message.split('\n').map(fieldOf)).toEqual(['reload.status.timeout'])
  })

  it('stateDir inside the target is refused, naming stateDir', () => {
    const err = fail({target: '/opt/app', stateDir: '/opt/app/.hotctl'})
    expect(err.exitCode).toBe(2)
    expect(fieldOf(err.message)).toBe('stateDir')
    expect(err.message).toContain('/opt/app/.hotctl')
  })

  it('stateDir equal to the target is refused', () => {
    expect(fieldOf(fail({target: '/opt/app', stateDir: '/opt/app'}).message)).toBe('stateDir')
  })

  it('a stateDir that merely shares a name prefix with the target is accepted', () => {
    expect(parse({target: '/opt/app', stateDir: '/opt/app-state'}).stateDir).toBe('/opt/app-state')
  })

  it('overlapping source and target are refused (either way round)', () => {
    expect(fieldOf(fail({source: '/opt/app/src', target: '/opt/app'}).message)).toBe('target')
    expect(fieldOf(fail({source: '/opt', target: '/opt/app', stateDir: '/var/st'}).message)).toBe('target')
    expect(fieldOf(fail({target: '.'}).message)).toBe('target') // source defaults to the config dir
  })
})

describe('environment interpolation', () => {
  it('substitutes ${VAR} anywhere in strings, including nested arrays/objects', () => {
    const c = parse(
      {
        target: '${APP_DIR}/live',
        reload: {status: {url: 'http://h/v', headers: {Authorization: 'Bearer ${TOKEN_A}'}}},
        exclude: ['${EXC}'],
      },
      {APP_DIR: '/opt/x', TOKEN_A: 'sekrit-token-1', EXC: '*.tmp'},
    )
    expect(c.target).toBe('/opt/x/live')
    expect(c.services[0]!.status!.headers).toEqual({Authorization: 'Bearer sekrit-token-1'})
    expect(c.exclude).toEqual(['*.tmp'])
  })

  it('a missing variable is a usage error naming the variable and the field', () => {
    const err = fail({
      target: '/opt/app',
      reload: {status: {url: 'http://h/v', headers: {Authorization: 'Bearer ${MISSING}'}}},
    })
    expect(err.exitCode).toBe(2)
    expect(err.message).toContain('MISSING')
    expect(fieldOf(err.message)).toBe('reload.status.headers.Authorization')
    expect(err.hint).toContain('MISSING')
  })

  it('a missing variable inside an array names the index', () => {
    const err = fail({
      target: '/opt/app',
      smoke: [
        {name: 'a', command: 'x'},
        {name: 'b', command: 'echo ${NOPE_VAR}'},
      ],
    })
    expect(fieldOf(err.message)).toBe('smoke.1.command')
    expect(err.message).toContain('NOPE_VAR')
  })

  it('an empty-string variable is set (not missing)', () => {
    expect(interpolateEnv('a${E}b', {E: ''}, FILE)).toBe('ab')
  })

  it('leaves $VAR without braces and non-strings alone', () => {
    expect(interpolateEnv({a: '$HOME', n: 3, b: true, z: null}, {HOME: '/h'}, FILE)).toEqual({
      a: '$HOME',
      n: 3,
      b: true,
      z: null,
    })
  })

  it('substituted values are registered as secrets and redacted', () => {
    interpolateEnv('x ${SECRET_X}', {SECRET_X: 'hunter2-very-secret'}, FILE)
    expect(redact('token=hunter2-very-secret; again hunter2-very-secret')).toBe('token=***; again ***')
  })
})

describe('secrets', () => {
  it('redacts registered values, leaves the rest', () => {
    registerSecret('abcd-secret-zz')
    expect(redact('x abcd-secret-zz y')).toBe('x *** y')
    expect(redact('nothing here')).toBe('nothing here')
  })

  it('ignores values shorter than 4 chars (would mangle output)', () => {
    registerSecret('ab')
    expect(redact('abcabc ab')).toBe('abcabc ab')
  })

  it('redactValue deep-copies with secrets masked', () => {
    registerSecret('deep-secret-99')
    const v = {a: ['deep-secret-99', 1], b: {c: 'pre deep-secret-99 post'}}
    const r = redactValue(v)
    expect(r).toEqual({a: ['***', 1], b: {c: 'pre *** post'}})
    expect(v.a[0]).toBe('deep-secret-99')
  })
})

describe('resolve path sanity', () => {
  it('default stateDir is never inside the target', () => {
    const c = parse({target: '../x/live'})
    expect(c.stateDir).toBe('/srv/x/.live.hotctl')
    expect(path.relative(c.target, c.stateDir).startsWith('..')).toBe(true)
  })
})
