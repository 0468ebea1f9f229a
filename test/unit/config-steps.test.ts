import {describe, expect, it} from 'vitest'
import {parseConfig} from '../../src/config/load.js'
import {EXIT} from '../../src/errors.js'
import {selectSteps, stepBackupDir} from '../../src/pipeline/release-steps.js'
import {catchHotctl} from './helpers.js'

const FILE = '/srv/deploy/hotctl.config.json'
const parse = (raw: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) =>
  parseConfig({target: '../live', ...raw}, FILE, env)
const fail = (raw: Record<string, unknown>) => catchHotctl(() => parse(raw))

describe('config: steps and maintenance (issue 9)', () => {
  it('resolves a step: place (default after sync), when as a list, timeout in ms', () => {
    const c = parse({
      steps: [
        {name: 'deps', run: 'pip install -r requirements.txt', before: 'sync', when: 'requirements*.txt'},
        {name: 'migrate', run: {argv: ['alembic', 'upgrade', 'head']}, backup: 'b', undo: 'u', maintenance: true},
      ],
    })
    expect(c.steps).toEqual([
      {
        name: 'deps',
        run: 'pip install -r requirements.txt',
        when: ['requirements*.txt'],
        at: 'before-sync',
        backup: undefined,
        undo: undefined,
        maintenance: false,
        timeoutMs: 600_000,
        written: {run: 'pip install -r requirements.txt'},
      },
      {
        name: 'migrate',
        run: {argv: ['alembic', 'upgrade', 'head']},
        when: undefined,
        at: 'after-sync',
        backup: 'b',
        undo: 'u',
        maintenance: true,
        timeoutMs: 600_000,
        written: {run: {argv: ['alembic', 'upgrade', 'head']}, backup: 'b', undo: 'u'},
      },
    ])
    expect(parse({}).steps).toEqual([])
    expect(parse({}).maintenance).toBeUndefined()
  })

  it("keeps each step's commands as written, before ${VAR} (what a deploy records), beside the filled ones", () => {
    const c = parse(
      {steps: [{name: 'm', run: {argv: ['migrate', '--token=${DB_TOKEN}']}, undo: 'restore "${DB_TOKEN}"'}]},
      {DB_TOKEN: 'db-token-77aa'},
    )
    expect(c.steps[0]!.run).toEqual({argv: ['migrate', '--token=db-token-77aa']})
    expect(c.steps[0]!.written).toEqual({
      run: {argv: ['migrate', '--token=${DB_TOKEN}']},
      undo: 'restore "${DB_TOKEN}"',
    })
  })

  it('names the field of a bad step: both places, a duplicate name, an unknown key, a bad timeout', () => {
    const both = fail({steps: [{name: 'a', run: 'x', before: 'sync', after: 'sync'}]})
    expect(both.exitCode).toBe(EXIT.usage)
    expect(both.message).toBe(`${FILE}: steps.0: has both before: sync and after: sync`)
    const dup = fail({
      steps: [
        {name: 'a', run: 'x'},
        {name: 'a', run: 'y'},
      ],
    })
    expect(dup.message).toBe(`${FILE}: steps.1.name: "a" is used by an earlier step`)
    expect(fail({steps: [{name: 'a', run: 'x', rollback: 'y'}]}).message).toMatch(/steps\.0: Unrecognized key/)
    expect(fail({steps: [{name: 'a', run: 'x', timeout: 'soon'}]}).message).toMatch(/steps\.0\.timeout: not a duration/)
    expect(fail({steps: [{name: 'a', run: 'x', before: 'deploy'}]}).message).toMatch(/steps\.0\.before/)
    expect(fail({maintenance: {on: 'a'}}).message).toMatch(/maintenance\.off/)
  })

  it('keeps ${VAR} in step and maintenance shell commands for the shell; argv elements are interpolated', () => {
    const c = parse(
      {
        steps: [{name: 'm', run: 'psql "$DATABASE_URL" -c ${SQL}', undo: {argv: ['restore', '${DB}']}}],
        maintenance: {on: 'touch ${FLAG}', off: 'rm ${FLAG}'},
      },
      {SQL: 'x', DB: 'shop', FLAG: 'f'},
    )
    expect(c.steps[0]!.run).toBe('psql "$DATABASE_URL" -c ${SQL}')
    expect(c.steps[0]!.undo).toEqual({argv: ['restore', 'shop']})
    expect(c.maintenance).toEqual({on: 'touch ${FLAG}', off: 'rm ${FLAG}'})
  })
})

describe('steps: selection and backup directories', () => {
  const c = parse({
    steps: [
      {name: 'deps', run: 'x', when: ['requirements*.txt']},
      {name: 'migrate', run: 'x', when: 'migrations/**'},
      {name: 'always', run: 'x'},
    ],
  })
  const names = (paths: string[]) =>
    selectSteps(c.steps, {added: paths, changed: [], deleted: []} as never).map((s) => s.name)

  it('a step runs when a changed path matches its when (added, changed or deleted), or always without one', () => {
    expect(names(['app/x.py'])).toEqual(['always'])
    expect(names(['requirements-dev.txt'])).toEqual(['deps', 'always'])
    expect(names(['migrations/versions/002.py'])).toEqual(['migrate', 'always'])
    expect(
      selectSteps(c.steps, {added: [], changed: [], deleted: ['migrations/001.py']} as never).map((s) => s.name),
    ).toEqual(['migrate', 'always'])
  })

  it('each step of each release gets its own directory in the state dir, named safely', () => {
    expect(stepBackupDir('/srv/.app.hotctl', '20260101000000', 0, 'Migrate DB (alembic)')).toBe(
      '/srv/.app.hotctl/step-backups/20260101000000/01-migrate-db-alembic',
    )
    expect(stepBackupDir('/s', 'r', 11, '../..')).toBe('/s/step-backups/r/12-step')
  })
})
