import {describe, expect, it} from 'vitest'
import type {ResolvedConfig, StepSpec} from '../../src/config/resolve.js'
import {EXIT} from '../../src/errors.js'
import {deploy, type DeployFlags} from '../../src/pipeline/deploy.js'
import {rollback} from '../../src/pipeline/rollback.js'
import {registerSecret} from '../../src/secrets.js'
import type {JournalEvent} from '../../src/state/journal.js'
import {COMMAND_SERVICE, DEPLOY_FLAGS, ended, FakeTarget, fakeConfig, fakeContext, journalLines} from './fake-target.js'

/**
 * Release steps (issue 9) on the in-memory FakeTarget: where they run in the deploy, their undo
 * (newest first, before the files are restored) at each failure, recovery of a killed run,
 * rollback replaying the undo, and the maintenance window. Commands are recorded, not run.
 */

const R0 = '20240101000000'
const LIVE = {'app.py': 'v1', 'requirements.txt': 'a==1', 'migrations/001.sql': 'create'}
const SOURCE = {
  'app.py': 'v2',
  'requirements.txt': 'a==2',
  'migrations/001.sql': 'create',
  'migrations/002.sql': 'alter',
}

const step = (name: string, over: Partial<StepSpec> = {}): StepSpec => ({
  name,
  run: {argv: [`run-${name}`]},
  backup: {argv: [`backup-${name}`]},
  undo: {argv: [`undo-${name}`]},
  at: 'after-sync',
  maintenance: false,
  timeoutMs: 60_000,
  ...over,
})
const DEPS = step('deps', {at: 'before-sync', when: ['requirements.txt']})
const MIGRATE = step('migrate', {when: ['migrations/**'], maintenance: true})

function setup(over: Partial<ResolvedConfig> = {}, signal?: AbortSignal) {
  const fake = new FakeTarget({source: SOURCE})
  fake.setLive(LIVE, R0)
  const config = fakeConfig({...COMMAND_SERVICE, steps: [DEPS, MIGRATE], ...over})
  const {ctx, said} = fakeContext(fake, config, signal)
  /** Whether maintenance was on when each command ran. */
  const inMaintenance: Record<string, boolean> = {}
  /** Command → how many more runs fail. */
  const failing = new Map<string, number>()
  fake.onCommand = ({fake: f, command}) => {
    inMaintenance[command] = f.maintenance !== undefined
    const left = failing.get(command) ?? 0
    if (left > 0) failing.set(command, left - 1)
    return left === 0
  }
  return {
    fake,
    ctx,
    said,
    inMaintenance,
    /** `command` fails its next `times` runs (the restore's own smoke passes again). */
    fail: (command: string, times = 1) => failing.set(command, times),
    run: (flags: Partial<DeployFlags> = {}) => ended(deploy(ctx, {...DEPLOY_FLAGS, ...flags})),
  }
}

/** Commands run, without the directory creation. */
const commands = (fake: FakeTarget) => fake.commands.filter((c) => !c.startsWith('mkdir '))

describe('release steps in a deploy', () => {
  it('backs every step up before anything is touched, then runs each at its place; maintenance from the migration to the confirmed reload', async () => {
    const {fake, run, inMaintenance} = setup()
    let syncedWhenDepsRan: boolean | undefined
    fake.at('runServiceCommand', (c) => {
      const argv = (c.args[0] as {argv?: string[]}).argv
      if (argv?.[0] === 'run-deps') syncedWhenDepsRan = fake.count('sync') > 0
    })
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.ok, outcome: 'deployed'})
    const id = r.result!.release!
    expect(commands(fake)).toEqual([
      'backup-deps',
      'backup-migrate',
      'run-deps',
      'run-migrate',
      'reload-app',
      'smoke-home',
    ])
    expect(syncedWhenDepsRan).toBe(false) // before: sync
    const dirs = fake.commands.filter((c) => c.startsWith('mkdir '))
    expect(dirs).toEqual([
      `mkdir -p /fake/.live.hotctl/step-backups/${id}/01-deps`,
      `mkdir -p /fake/.live.hotctl/step-backups/${id}/02-migrate`,
    ])
    // Old code must not serve the migrated data: the window lasts until the new release is live; smoke runs open.
    expect(inMaintenance).toMatchObject({
      'run-deps': false,
      'run-migrate': true,
      'reload-app': true,
      'smoke-home': false,
    })
    expect(fake.maintenance).toBeUndefined()
    expect(fake.maintenanceLog).toEqual([{reason: 'step migrate', until: expect.any(String)}])
    const lines = journalLines(fake.journal)
    expect(lines).toEqual([
      'deploy start',
      'deploy phase backup',
      'deploy step deps backup',
      'deploy child 4343', // its process group: a killed run's command is stopped by the next
      'deploy step deps backup ok',
      'deploy step migrate backup',
      'deploy child 4343', // its process group: a killed run's command is stopped by the next
      'deploy step migrate backup ok',
      'deploy step deps run',
      'deploy child 4343', // its process group: a killed run's command is stopped by the next
      'deploy step deps run ok',
      'deploy phase sync',
      'deploy child 4242',
      'deploy phase marker',
      'deploy maintenance on',
      'deploy step migrate run',
      'deploy child 4343', // its process group: a killed run's command is stopped by the next
      'deploy step migrate run ok',
      'deploy phase reload',
      'deploy maintenance off',
      'deploy phase smoke',
      'deploy end ok 0',
    ])
    expect(r.result!.releaseSteps).toEqual({ran: ['deps', 'migrate'], skipped: [], undone: [], notUndone: []})
  })

  it('a step whose `when` matches no changed path neither backs up nor runs', async () => {
    const {fake, run} = setup()
    fake.source = new Map([...fake.source].filter(([p]) => p !== 'migrations/002.sql'))
    const r = await run()
    expect(r.exitCode).toBe(EXIT.ok)
    expect(commands(fake)).toEqual(['backup-deps', 'run-deps', 'reload-app', 'smoke-home'])
    expect(r.result!.releaseSteps!.skipped).toEqual(['migrate'])
    expect(fake.maintenanceLog).toEqual([])
  })

  it('a failing smoke undoes every step, newest first, before the files are restored: exit 3', async () => {
    const {fake, run, fail, inMaintenance} = setup()
    fail('smoke-home')
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.restored, outcome: 'restored'})
    expect(commands(fake)).toEqual([
      'backup-deps',
      'backup-migrate',
      'run-deps',
      'run-migrate',
      'reload-app',
      'smoke-home',
      'undo-migrate',
      'undo-deps',
      'reload-app',
      'smoke-home',
    ])
    const lines = journalLines(fake.journal)
    expect(lines.indexOf('deploy step deps undo ok')).toBeLessThan(lines.indexOf('deploy phase restore'))
    expect(lines.indexOf('deploy step migrate undo ok')).toBeLessThan(lines.indexOf('deploy step deps undo'))
    expect(fake.tree()).toEqual(LIVE)
    expect(fake.marker).toBe(R0)
    expect(inMaintenance['undo-migrate']).toBe(true) // the migration's undo runs in the window too ...
    expect(fake.commands.at(-1)).toBe('smoke-home')
    expect(inMaintenance['smoke-home']).toBe(false) // ... which closes once the old release is confirmed
    expect(fake.maintenance).toBeUndefined()
    expect(r.result!.releaseSteps).toMatchObject({undone: ['migrate', 'deps'], notUndone: []})
  })

  it('a failing step is undone itself (it may have half-run), and the steps before it', async () => {
    const {fake, run, fail} = setup()
    fail('run-migrate')
    const r = await run()
    expect(r.exitCode).toBe(EXIT.restored)
    expect(r.result!.error).toMatch(/^step migrate failed \(exit 1\)/)
    expect(commands(fake).slice(4)).toEqual(['undo-migrate', 'undo-deps', 'reload-app', 'smoke-home'])
    expect(fake.maintenance).toBeUndefined()
  })

  it('a step that fails before the sync: the files are untouched, its undo still runs, exit 3', async () => {
    const {fake, run, fail} = setup()
    fail('run-deps')
    const r = await run()
    expect(r.exitCode).toBe(EXIT.restored)
    expect(fake.count('sync')).toBe(0)
    expect(commands(fake)).toContain('undo-deps')
    expect(commands(fake)).not.toContain('run-migrate')
  })

  it('a failing backup stops the deploy before anything is touched: exit 1, no step runs', async () => {
    const {fake, run, fail} = setup()
    fail('backup-migrate')
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.failed, outcome: 'failed'})
    expect(commands(fake)).toEqual(['backup-deps', 'backup-migrate'])
    expect(fake.tree()).toEqual(LIVE)
  })

  it('an undo that fails: the files are still restored, but the target needs attention (exit 4)', async () => {
    const {fake, run, fail} = setup()
    fail('smoke-home')
    fail('undo-migrate')
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.needsAttention, outcome: 'needs-attention'})
    expect(r.result!.restore!.error).toMatch(/undo step migrate of \d{14} failed/)
    expect(commands(fake)).not.toContain('undo-deps') // stopped at the first undo that failed
    expect(r.result!.releaseSteps!.notUndone.map((n) => n.step)).toEqual(['migrate', 'deps'])
    expect(fake.tree()).toEqual(LIVE)
    expect(fake.maintenance).toBeUndefined()
  })

  it('a step without undo that ran: the deploy that fails after it needs attention (exit 4), naming it', async () => {
    const {run, fail} = setup({steps: [{...DEPS, undo: undefined}]})
    fail('smoke-home')
    const r = await run()
    expect(r.exitCode).toBe(EXIT.needsAttention)
    expect(r.result!.restore!.error).toMatch(/step deps has no undo: what it changed is still in place/)
  })

  it('deploy --maintenance: the window spans the first change to the proof, and closes after a failure too', async () => {
    const {fake, run, fail, inMaintenance} = setup({steps: []})
    const ok = await run({maintenance: true})
    expect(ok.exitCode).toBe(EXIT.ok)
    expect(inMaintenance).toEqual({'reload-app': true, 'smoke-home': false})
    expect(fake.maintenance).toBeUndefined()
    fake.source.set('app.py', 'v3')
    fail('smoke-home')
    const bad = await run({maintenance: true})
    expect(bad.exitCode).toBe(EXIT.restored)
    expect(fake.maintenance).toBeUndefined()
    expect(journalLines(fake.journal).filter((l) => l.includes('maintenance'))).toEqual([
      'deploy maintenance on',
      'deploy maintenance off',
      'deploy maintenance on',
      'deploy maintenance off',
    ])
  })

  it('maintenance.on/off commands replace the marker file for services without the agent', async () => {
    const {fake, run} = setup({maintenance: {on: {argv: ['maint-on']}, off: {argv: ['maint-off']}}})
    const r = await run()
    expect(r.exitCode).toBe(EXIT.ok)
    expect(commands(fake)).toEqual([
      'backup-deps',
      'backup-migrate',
      'run-deps',
      'maint-on',
      'run-migrate',
      'reload-app',
      'maint-off',
      'smoke-home',
    ])
    expect(fake.maintenanceLog).toEqual([])
  })

  it('an interrupt during a step: its undo and the ones before it still run (to the end), then the restore: exit 130', async () => {
    const ac = new AbortController()
    const {fake, run} = setup({}, ac.signal)
    fake.at('runServiceCommand', (c) => {
      if ((c.args[0] as {argv?: string[]}).argv?.[0] === 'run-migrate') ac.abort()
    })
    const r = await run()
    expect(r).toMatchObject({exitCode: EXIT.interrupted, outcome: 'interrupted'})
    expect(commands(fake).slice(3)).toEqual(['run-migrate', 'undo-migrate', 'undo-deps', 'reload-app'])
    expect(fake.tree()).toEqual(LIVE)
    expect(fake.maintenance).toBeUndefined()
  })

  it('pruning a backup removes its release steps backup directory too', async () => {
    const {fake, run} = setup({keep: 1})
    const first = (await run()).result!.release!
    fake.source.set('requirements.txt', 'a==3')
    const second = await run()
    expect(second.exitCode).toBe(EXIT.ok)
    expect(second.result!.pruned).toEqual([first])
    expect(fake.commands.at(-1)).toBe(`rm -rf -- /fake/.live.hotctl/step-backups/${first}`)
  })

  it('a dry run lists the steps and runs none', async () => {
    const {fake, run} = setup()
    const r = await run({dryRun: true})
    expect(r.exitCode).toBe(EXIT.ok)
    expect(r.result!.steps).toEqual(
      expect.arrayContaining([
        'back up what the steps change (deps, migrate)',
        'step deps: run (undo on failure) when requirements.txt changed',
        'step migrate: run (undo on failure) when migrations/** changed',
      ]),
    )
    expect(fake.commands).toEqual([])
  })
})

describe('release steps: recovery and rollback', () => {
  const T = '2025-01-01T00:00:00.000Z'
  const X = '20250101000000'
  const dir = (name: string) => `/fake/.live.hotctl/step-backups/${X}/${name}`

  it('a deploy killed mid-step: the next run undoes the steps it ran (newest first), closes the window, restores the files', async () => {
    const fake = new FakeTarget({source: SOURCE})
    fake.setLive({...SOURCE}, R0)
    fake.seedBackup(X, LIVE, {release: R0})
    const ev = (e: Record<string, unknown>) => ({opId: X, t: T, ...e}) as JournalEvent
    fake.journal.push(
      ev({event: 'start', op: 'deploy', backup: X, release: X, user: 'f', host: 'h', pid: 99999, argv: []}),
      ev({event: 'phase', phase: 'backup'}),
      ev({event: 'step', step: 'deps', action: 'run', release: X, dir: dir('01-deps')}),
      ev({event: 'step', step: 'deps', action: 'run', release: X, dir: dir('01-deps'), ok: true}),
      ev({event: 'phase', phase: 'sync'}),
      ev({event: 'maintenance', on: true}),
      ev({event: 'step', step: 'migrate', action: 'run', release: X, dir: dir('02-migrate')}),
      ev({event: 'child', pgid: 4343}),
    )
    fake.maintenance = {reason: 'step migrate', until: T}
    const {ctx, said} = fakeContext(fake, fakeConfig({...COMMAND_SERVICE, steps: [DEPS, MIGRATE]}))
    const envs: Record<string, string> = {}
    fake.onCommand = ({command, opts}) => void (envs[command] = opts.env.HOTCTL_STEP_BACKUP_DIR ?? '')
    const r = await ended(deploy(ctx, DEPLOY_FLAGS))
    expect(r.result?.recovery).toMatchObject({interrupted: X, restored: {ok: true}})
    expect(fake.reaped[0]).toEqual([4343]) // the killed migration's process group is stopped first
    expect(fake.commands.slice(0, 2)).toEqual(['undo-migrate', 'undo-deps'])
    expect(envs).toMatchObject({'undo-migrate': dir('02-migrate'), 'undo-deps': dir('01-deps')})
    expect(fake.maintenance).toBeUndefined()
    expect(said.join('\n')).toMatch(/undo step migrate of 20250101000000/)
    const lines = journalLines(fake.journal)
    expect(lines).toContain('recover step migrate undo ok')
  })

  it('rollback replays the undo of the steps of the releases it undoes, from their stored backups', async () => {
    const {fake, ctx, run} = setup()
    const r1 = await run()
    expect(r1.exitCode).toBe(EXIT.ok)
    const id = r1.result!.release!
    fake.commands.length = 0
    const envs: Record<string, string> = {}
    fake.onCommand = ({command, opts}) => void (envs[command] = opts.env.HOTCTL_STEP_BACKUP_DIR ?? '')
    const rb = await ended(rollback(ctx, {}))
    expect(rb).toMatchObject({exitCode: EXIT.ok, outcome: 'rolled-back'})
    expect(fake.commands).toEqual(['undo-migrate', 'undo-deps', 'reload-app', 'smoke-home'])
    expect(envs['undo-migrate']).toBe(`/fake/.live.hotctl/step-backups/${id}/02-migrate`)
    expect(rb.result!.releaseSteps).toEqual({
      undone: ['migrate', 'deps'],
      skipped: [],
      irreversible: [],
      reapplied: [],
      redone: [],
      notes: [],
    })
    expect(fake.tree()).toEqual(LIVE)
    // Undone once: a later rollback does not undo them again.
    const lines = journalLines(fake.journal)
    expect(lines).toContain('rollback step migrate undo ok')
  })

  it("a release deployed by an older hotctl (no record): the config's steps, said; without undo refused unless --force", async () => {
    const {fake, ctx, run, said} = setup()
    expect((await run()).exitCode).toBe(EXIT.ok)
    fake.stateFiles.clear() // as an older hotctl left it
    const noUndo = {...ctx, config: {...ctx.config, steps: [{...DEPS, undo: undefined}, MIGRATE]}}
    const refused = await ended(rollback(noUndo, {}))
    expect(refused.exitCode).toBe(EXIT.failed)
    expect(refused.error!.message).toMatch(/steps that have no undo: deps \(release \d{14}\)/)
    expect(said.join('\n')).toMatch(
      /step deps \(release \d{14}\): no recorded commands \(deployed by an older hotctl\); the config's commands run/,
    )
    expect(fake.tree()).toEqual(SOURCE) // nothing changed
    fake.commands.length = 0
    const forced = await ended(rollback(noUndo, {force: true}))
    expect(forced.exitCode).toBe(EXIT.ok)
    expect(fake.commands).toEqual(['undo-migrate', 'reload-app', 'smoke-home'])
    expect(forced.result!.releaseSteps).toMatchObject({undone: ['migrate'], skipped: ['deps']})
    expect(fake.tree()).toEqual(LIVE)
  })
})

describe('release steps: the commands recorded at deploy time', () => {
  it("each step's run, backup and undo are recorded as written, in its backup directory", async () => {
    const {fake, run} = setup()
    const id = (await run()).result!.release!
    const rec = JSON.parse(fake.stateFiles.get(`/fake/.live.hotctl/step-backups/${id}/02-migrate/.hotctl-step.json`)!)
    expect(rec).toEqual({
      hotctl: 1,
      name: 'migrate',
      index: 1,
      at: 'after-sync',
      maintenance: true,
      timeoutMs: 60_000,
      run: {argv: ['run-migrate']},
      backup: {argv: ['backup-migrate']},
      undo: {argv: ['undo-migrate']},
    })
    expect([...fake.stateFiles.keys()]).toHaveLength(2)
    expect(journalLines(fake.journal).join('\n')).not.toMatch(/run-migrate|undo-migrate/) // never in the journal
  })

  it('the config changed after the deploy: rollback runs the recorded undo, and the plan says the config differs', async () => {
    const {fake, ctx, run, said} = setup()
    expect((await run()).exitCode).toBe(EXIT.ok)
    fake.commands.length = 0
    // Edited: migrate's undo is another command; deps is gone from the config.
    const edited = {...ctx, config: {...ctx.config, steps: [{...MIGRATE, undo: {argv: ['undo-migrate-v2']}}]}}
    const rb = await ended(rollback(edited, {}))
    expect(rb.exitCode).toBe(EXIT.ok)
    expect(fake.commands).toEqual(['undo-migrate', 'undo-deps', 'reload-app', 'smoke-home'])
    const notes = rb.result!.releaseSteps!.notes
    expect(notes).toEqual([
      expect.stringMatching(
        /^step migrate \(release \d{14}\): the config's undo differs from the one recorded at deploy time; the recorded one runs$/,
      ),
      expect.stringMatching(/^step deps \(release \d{14}\): no longer in the config; its recorded commands run$/),
    ])
    expect(said.join('\n')).toContain(notes[0])
  })

  it('${VAR} in an {argv} command: recorded uninterpolated (the value is a secret), filled from the environment at replay', async () => {
    process.env.HOTCTL_TEST_DB_TOKEN = 'tok-9f8e7d6c'
    try {
      const written = {run: {argv: ['run-m']}, undo: {argv: ['undo-m', '--token=${HOTCTL_TEST_DB_TOKEN}']}}
      const m = step('m', {...written, backup: undefined, undo: {argv: ['undo-m', '--token=tok-9f8e7d6c']}, written})
      const {fake, ctx, run} = setup({steps: [m]})
      expect((await run()).exitCode).toBe(EXIT.ok)
      const text = [...fake.stateFiles.values()].join('\n')
      expect(text).toContain('--token=${HOTCTL_TEST_DB_TOKEN}')
      expect(text).not.toContain('tok-9f8e7d6c')
      fake.commands.length = 0
      delete process.env.HOTCTL_TEST_DB_TOKEN // needed to replay the undo: refused before anything changes
      const refused = await ended(rollback(ctx, {}))
      expect(refused.exitCode).toBe(EXIT.usage)
      expect(refused.error!.message).toMatch(
        /\.hotctl-step\.json: steps\.0\.undo\.argv\.1: environment variable HOTCTL_TEST_DB_TOKEN is not set/,
      )
      expect(fake.commands).toEqual([])
      expect(fake.tree()).toEqual(SOURCE)
      process.env.HOTCTL_TEST_DB_TOKEN = 'tok-rotated-1234'
      expect((await ended(rollback(ctx, {}))).exitCode).toBe(EXIT.ok)
      expect(fake.commands[0]).toBe('undo-m --token=tok-rotated-1234')
    } finally {
      delete process.env.HOTCTL_TEST_DB_TOKEN
    }
  })

  it("a command holding a value masked as a secret is not recorded (a warning says so); the rollback takes the config's", async () => {
    registerSecret('hook-secret-4f2a91')
    const m = step('m', {run: {argv: ['run-m', 'hook-secret-4f2a91']}, backup: undefined})
    const {fake, ctx, run, said} = setup({steps: [m]})
    expect((await run()).exitCode).toBe(EXIT.ok)
    expect(fake.stateFiles.size).toBe(0)
    expect(said.join('\n')).toMatch(
      /warning: step m: its commands hold a value hotctl treats as a secret, so they are not recorded/,
    )
    fake.commands.length = 0
    const rb = await ended(rollback(ctx, {}))
    expect(rb.exitCode).toBe(EXIT.ok)
    expect(fake.commands[0]).toBe('undo-m')
    expect(rb.result!.releaseSteps!.notes).toEqual([
      expect.stringMatching(/^step m \(release \d{14}\): no recorded commands/),
    ])
  })

  it('a killed deploy is recovered with its recorded undo, whatever the config says now', async () => {
    const {fake, ctx, run} = setup()
    fake.at('runServiceCommand', (c) => {
      if ((c.args[0] as {argv?: string[]}).argv?.[0] === 'run-migrate') throw new Error('hotctl killed here')
    })
    const killed = await run()
    expect(killed.exitCode).not.toBe(EXIT.ok)
    // As a SIGKILL leaves it: the journal ends with the migration started (no undo, no end).
    fake.journal.splice(
      fake.journal.findIndex((e) => e.event === 'step' && e.step === 'migrate' && e.action === 'run') + 1,
    )
    fake.files.set('app.py', fake.source.get('app.py')!)
    fake.at('runServiceCommand', () => undefined)
    fake.commands.length = 0
    const edited = {...ctx, config: {...ctx.config, steps: [{...MIGRATE, undo: {argv: ['undo-other']}}]}}
    const r = await ended(deploy(edited, {...DEPLOY_FLAGS, dryRun: false}))
    expect(r.result?.recovery).toMatchObject({restored: {ok: true}})
    expect(fake.commands.slice(0, 2)).toEqual(['undo-migrate', 'undo-deps'])
  })
})

describe('release steps: a rollback that fails after undoing steps redoes them', () => {
  it('smoke of the rolled-back release fails: the files go back, then the undone steps run again (oldest first), exit 3', async () => {
    const {fake, ctx, run, fail, inMaintenance} = setup()
    const id = (await run()).result!.release!
    fake.commands.length = 0
    const envs: Record<string, string> = {}
    fake.onCommand = ({command, opts}) => {
      envs[command] = opts.env.HOTCTL_STEP_BACKUP_DIR ?? ''
      inMaintenance[command] = fake.maintenance !== undefined
      return !(command === 'smoke-home' && fake.marker === R0)
    }
    void fail
    const rb = await ended(rollback(ctx, {}))
    expect(rb).toMatchObject({exitCode: EXIT.restored, outcome: 'restored'})
    expect(fake.commands).toEqual([
      'undo-migrate',
      'undo-deps',
      'reload-app',
      'smoke-home',
      'run-deps',
      'run-migrate',
      'reload-app',
      'smoke-home',
    ])
    expect(envs['run-migrate']).toBe(`/fake/.live.hotctl/step-backups/${id}/02-migrate`)
    expect(inMaintenance['run-migrate']).toBe(true)
    expect(fake.maintenance).toBeUndefined()
    expect(fake.tree()).toEqual(SOURCE)
    expect(fake.marker).toBe(id)
    expect(rb.result!.releaseSteps).toMatchObject({undone: ['migrate', 'deps'], redone: ['deps', 'migrate']})
    const lines = journalLines(fake.journal)
    const at = (l: string) => lines.lastIndexOf(l)
    expect(at('rollback phase restore')).toBeLessThan(at('rollback step deps run'))
    expect(at('rollback step migrate run ok')).toBeLessThan(at('rollback phase restore-reload'))
    // Applied again: the next rollback undoes them once more.
    fake.onCommand = () => true
    fake.commands.length = 0
    expect((await ended(rollback(ctx, {}))).exitCode).toBe(EXIT.ok)
    expect(fake.commands).toEqual(['undo-migrate', 'undo-deps', 'reload-app', 'smoke-home'])
  })

  it('a redo that fails: exit 4, naming the step and what to do', async () => {
    const {fake, ctx, run} = setup()
    await run()
    fake.onCommand = ({command}) => !(command === 'smoke-home' && fake.marker === R0) && command !== 'run-migrate'
    const rb = await ended(rollback(ctx, {}))
    expect(rb).toMatchObject({exitCode: EXIT.needsAttention, outcome: 'needs-attention'})
    expect(rb.result!.restore!.error).toMatch(
      /redo of step migrate \(release \d{14}\) failed: redo step migrate of \d{14} failed \(exit 1\).*run the step's run command by hand \(recorded in \/fake\/\.live\.hotctl\/step-backups\/\d{14}\/02-migrate\/\.hotctl-step\.json\) or deploy that release again/s,
    )
    expect(rb.result!.releaseSteps!.redone).toEqual(['deps'])
    expect(fake.maintenance).toBeUndefined()
  })

  it('an undo of the rollback that fails: its step is in an unknown state, so nothing is redone over it (exit 4)', async () => {
    const {fake, ctx, run} = setup()
    await run()
    fake.commands.length = 0
    fake.onCommand = ({command}) => command !== 'undo-deps'
    const rb = await ended(rollback(ctx, {}))
    expect(rb).toMatchObject({exitCode: EXIT.needsAttention, outcome: 'needs-attention'})
    expect(rb.result!.restore!.error).toMatch(
      /undo step deps of \d{14} failed.*\(the release steps it undid are not redone: migrate\)/s,
    )
    expect(commands(fake)).toEqual(['undo-migrate', 'undo-deps', 'reload-app', 'smoke-home'])
    expect(fake.tree()).toEqual(SOURCE) // the files are back
  })

  it('a rollback killed after undoing steps: the next run restores its files, then redoes them before the proof', async () => {
    const {fake, ctx, run} = setup()
    const id = (await run()).result!.release!
    const dir = (n: string) => `/fake/.live.hotctl/step-backups/${id}/${n}`
    const U = '29990101000000'
    fake.seedBackup(U, SOURCE, {release: id, reason: 'rollback'})
    const T = '2999-01-01T00:00:00.000Z'
    const ev = (e: Record<string, unknown>) => ({opId: U, t: T, ...e}) as JournalEvent
    fake.journal.push(
      ev({
        event: 'start',
        op: 'rollback',
        backup: U,
        release: R0,
        restores: 'x',
        user: 'f',
        host: 'h',
        pid: 9,
        argv: [],
      }),
      ev({event: 'phase', phase: 'backup'}),
      ev({event: 'maintenance', on: true}),
      ev({event: 'step', step: 'migrate', action: 'undo', release: id, dir: dir('02-migrate')}),
      ev({event: 'step', step: 'migrate', action: 'undo', release: id, dir: dir('02-migrate'), ok: true}),
      ev({event: 'step', step: 'deps', action: 'undo', release: id, dir: dir('01-deps')}),
    )
    fake.files.set('app.py', {...fake.files.get('app.py')!}) // the files: still the release's
    fake.commands.length = 0
    const edited = {...ctx, config: {...ctx.config, steps: []}} // recorded commands, not the config's
    const r = await ended(deploy(edited, DEPLOY_FLAGS))
    expect(r.result?.recovery).toMatchObject({interrupted: U, restored: {ok: true}})
    // deps' undo was cut short: finished first; then both run again, oldest first, before the reload.
    expect(fake.commands).toEqual(['undo-deps', 'run-deps', 'run-migrate', 'reload-app', 'smoke-home'])
    const lines = journalLines(fake.journal).filter((l) => l.startsWith('recover'))
    expect(lines).toEqual(
      expect.arrayContaining(['recover step deps undo ok', 'recover step deps run ok', 'recover step migrate run ok']),
    )
    expect(lines.indexOf('recover phase restore')).toBeLessThan(lines.indexOf('recover step deps run'))
    expect(fake.maintenance).toBeUndefined()
    expect(fake.tree()).toEqual(SOURCE)
  })
})

describe('release steps: roll-forward (rollback --to a newer release)', () => {
  it('re-applies the steps of the releases in between: backed up first, run at their place around the restore', async () => {
    const {fake, ctx, run} = setup()
    const id = (await run()).result!.release!
    expect((await ended(rollback(ctx, {}))).exitCode).toBe(EXIT.ok)
    expect(fake.tree()).toEqual(LIVE)
    fake.commands.length = 0
    const envs: Record<string, string> = {}
    let restoredWhenDepsRan: boolean | undefined
    fake.onCommand = ({command, opts}) => {
      envs[command] = opts.env.HOTCTL_STEP_BACKUP_DIR ?? ''
      if (command === 'run-deps') restoredWhenDepsRan = fake.marker === id
      return true
    }
    const fwd = await ended(rollback(ctx, {to: id}))
    expect(fwd).toMatchObject({exitCode: EXIT.ok, outcome: 'rolled-back'})
    expect(commands(fake)).toEqual([
      'backup-deps',
      'backup-migrate',
      'run-deps',
      'run-migrate',
      'reload-app',
      'smoke-home',
    ])
    expect(restoredWhenDepsRan).toBe(false) // before: sync, as in the deploy
    expect(fake.tree()).toEqual(SOURCE)
    const rbId = fwd.result!.undo!
    expect(envs['run-migrate']).toBe(`/fake/.live.hotctl/step-backups/${id}/02-migrate.reapplied-${rbId}`)
    expect(envs['backup-migrate']).toBe(envs['run-migrate'])
    expect(fake.stateFiles.has(`${envs['run-migrate']}/.hotctl-step.json`)).toBe(true)
    expect(fwd.result!.releaseSteps).toMatchObject({undone: [], reapplied: ['deps', 'migrate']})
    // Applied again, from the new backups: a rollback undoes them from there.
    fake.commands.length = 0
    expect((await ended(rollback(ctx, {}))).exitCode).toBe(EXIT.ok)
    expect(fake.commands.slice(0, 2)).toEqual(['undo-migrate', 'undo-deps'])
    expect(envs['undo-migrate']).toBe(`/fake/.live.hotctl/step-backups/${id}/02-migrate.reapplied-${rbId}`)
  })

  it('a failure after re-applying: the re-applied steps are undone (newest first) before the files go back, exit 3', async () => {
    const {fake, ctx, run} = setup()
    const id = (await run()).result!.release!
    expect((await ended(rollback(ctx, {}))).exitCode).toBe(EXIT.ok)
    fake.commands.length = 0
    fake.onCommand = ({command}) => !(command === 'smoke-home' && fake.marker === id)
    const fwd = await ended(rollback(ctx, {to: id}))
    expect(fwd).toMatchObject({exitCode: EXIT.restored, outcome: 'restored'})
    expect(commands(fake)).toEqual([
      'backup-deps',
      'backup-migrate',
      'run-deps',
      'run-migrate',
      'reload-app',
      'smoke-home',
      'undo-migrate',
      'undo-deps',
      'reload-app',
      'smoke-home',
    ])
    expect(fake.tree()).toEqual(LIVE)
    expect(fake.marker).toBe(R0)
    // Nothing applied any more: a roll-forward tries again from the start.
    fake.onCommand = () => true
    fake.commands.length = 0
    expect((await ended(rollback(ctx, {to: id}))).exitCode).toBe(EXIT.ok)
    expect(commands(fake).slice(0, 4)).toEqual(['backup-deps', 'backup-migrate', 'run-deps', 'run-migrate'])
  })
})
