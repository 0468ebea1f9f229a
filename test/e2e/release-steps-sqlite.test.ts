/**
 * Release steps against a real SQLite database (python3's sqlite3) and the real reference agent:
 * a migration that adds a column and rewrites every row runs in a maintenance window (the agent
 * answers 503), and is undone together with the code — after a failing smoke (exit 3), by a
 * rollback, and by the recovery of a hotctl killed mid-step. The database comes back byte for byte.
 */
import fs from 'node:fs'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {makeWorkspace, removeWorkspaces, requireBuild, runCli, startCli, type Workspace, writeFiles} from './helpers.js'
import {type Agent, agentConfig, exists, py, sha256File, startAgent, stopAgents, waitFor, why} from './steps-support.js'

const MIGRATION = `import sqlite3
db = sqlite3.connect("data/shop.db")
with db:
    db.execute("ALTER TABLE orders ADD COLUMN currency TEXT")
    db.execute("UPDATE orders SET amount = amount * 100, currency = 'EUR'")
db.close()
`
/** Run inside the window: the app must answer 503 + Retry-After, /health must still answer. */
const EXPECT_MAINTENANCE = `import os, sys, urllib.error, urllib.request
base = os.environ["APP_URL"]
code, retry = 200, None
try:
    urllib.request.urlopen(base + "/api/v1/hello", timeout=5).read()
except urllib.error.HTTPError as err:
    code, retry = err.code, err.headers.get("Retry-After")
if code != 503 or not retry:
    sys.exit("expected 503 with Retry-After during the migration, got %d" % code)
with urllib.request.urlopen(base + "/health", timeout=5) as resp:
    assert resp.status == 200
open(os.path.join(os.environ["HOTCTL_STEP_BACKUP_DIR"], "saw-503"), "w").write(retry)
`
const BACKUP = `python3 -c "import os, shutil; shutil.copy2('data/shop.db', os.path.join(os.environ['HOTCTL_STEP_BACKUP_DIR'], 'shop.db'))"`
const UNDO = `python3 -c "import os, shutil; shutil.copyfile(os.path.join(os.environ['HOTCTL_STEP_BACKUP_DIR'], 'shop.db'), 'data/shop.db.undo'); os.replace('data/shop.db.undo', 'data/shop.db')"`

function migrateStep(run = 'python3 migrations/expect_maintenance.py && python3 migrations/002_currency.py') {
  return {name: 'migrate', when: 'migrations/**', maintenance: true, backup: BACKUP, run, undo: UNDO}
}

/** A shop database in the live tree's protected data/: 25 orders. */
function createShop(live: string): string {
  const db = path.join(live, 'data', 'shop.db')
  py(
    `import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
with db:
    db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, amount INTEGER NOT NULL)")
    db.executemany("INSERT INTO orders (customer, amount) VALUES (?, ?)", [("c%d" % i, i * 7) for i in range(25)])
db.close()`,
    [db],
  )
  return db
}

const dump = (db: string) => py('import sqlite3, sys; print("\\n".join(sqlite3.connect(sys.argv[1]).iterdump()))', [db])
const hello = async (a: Agent) => (await (await fetch(`${a.base}/api/v1/hello`)).text()).trim()

interface Shop {
  ws: Workspace
  agent: Agent
  db: string
  before: {sha: string; dump: string}
  env: Record<string, string>
}

async function shop(over: Record<string, unknown> = {}): Promise<Shop> {
  const ws = makeWorkspace()
  const agent = await startAgent(ws.live)
  const db = createShop(ws.live)
  writeFiles(ws.src, {
    'migrations/002_currency.py': MIGRATION,
    'migrations/expect_maintenance.py': EXPECT_MAINTENANCE,
  })
  ws.writeConfig(agentConfig(agent, {steps: [migrateStep()], ...over}))
  return {ws, agent, db, before: {sha: sha256File(db), dump: dump(db)}, env: {APP_URL: agent.base}}
}

beforeAll(requireBuild)
afterEach(stopAgents)
afterAll(removeWorkspaces)

describe('a migration step on SQLite', {timeout: 180_000}, () => {
  it('a failing smoke after the migration: undone with the code, exit 3, the database byte for byte as before', async () => {
    const s = await shop()
    s.ws.setVersion('v2', {calcBroken: true})
    const r = await runCli(['deploy', '--json'], {cwd: s.ws.src, env: s.env})
    expect(r.exitCode, why(r)).toBe(3)
    expect(r.json.outcome).toBe('restored')
    expect(r.json.error).toMatch(/^smoke failed: calc/) // the migration itself passed, 503 included
    expect(r.json.releaseSteps).toMatchObject({ran: ['migrate'], undone: ['migrate'], notUndone: []})
    expect(sha256File(s.db)).toBe(s.before.sha)
    expect(dump(s.db)).toBe(s.before.dump)
    expect(await hello(s.agent)).toBe('hello v1')
    expect(exists(path.join(s.ws.live, '.hotctl-maintenance.json'))).toBe(false)
    expect((await fetch(`${s.agent.base}/api/v1/hello`)).status).toBe(200)
    // The window was open while the migration ran (the step saw 503 + Retry-After).
    const stepDir = path.join(s.ws.stateDir, 'step-backups', r.json.release, '01-migrate')
    expect(Number(fs.readFileSync(path.join(stepDir, 'saw-503'), 'utf8'))).toBeGreaterThan(0)
    const steps = s.ws.journal().filter((e) => e.event === 'step')
    expect(steps.map((e) => `${e.action}${e.ok === undefined ? '' : e.ok ? ' ok' : ' failed'}`)).toEqual([
      'backup',
      'backup ok',
      'run',
      'run ok',
      'undo',
      'undo ok',
    ])
  })

  it('a good deploy migrates; rollback undoes the migration with the code', async () => {
    const s = await shop()
    s.ws.setVersion('v2')
    const r = await runCli(['deploy', '--json'], {cwd: s.ws.src, env: s.env})
    expect(r.exitCode, why(r)).toBe(0)
    expect(await hello(s.agent)).toBe('hello v2')
    expect(dump(s.db)).toMatch(/"currency"|currency TEXT/)
    expect(
      py(
        'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select sum(amount) from orders").fetchone()[0])',
        [s.db],
      ).trim(),
    ).toBe(String(7 * 300 * 100))

    const rb = await runCli(['rollback', '--json'], {cwd: s.ws.src, env: s.env})
    expect(rb.exitCode, why(rb)).toBe(0)
    expect(rb.json.releaseSteps).toEqual({
      undone: ['migrate'],
      skipped: [],
      irreversible: [],
      reapplied: [],
      redone: [],
      notes: [],
    })
    expect(sha256File(s.db)).toBe(s.before.sha)
    expect(await hello(s.agent)).toBe('hello v1')
  })

  it('a release deployed by an older hotctl (no recorded commands), over a step without undo: refused (exit 1, naming it) unless --force', async () => {
    const s = await shop()
    s.ws.setVersion('v2')
    const d = await runCli(['deploy', '--json'], {cwd: s.ws.src, env: s.env})
    expect(d.exitCode).toBe(0)
    fs.rmSync(path.join(s.ws.stateDir, 'step-backups', d.json.release, '01-migrate', '.hotctl-step.json'))
    const noUndo: Record<string, unknown> = migrateStep()
    delete noUndo.undo
    s.ws.writeConfig(agentConfig(s.agent, {steps: [noUndo]}))
    const refused = await runCli(['rollback'], {cwd: s.ws.src, env: s.env})
    expect(refused.exitCode, why(refused)).toBe(1)
    expect(refused.stderr).toMatch(/steps that have no undo: migrate \(release \d{14}\)/)
    expect(refused.stderr).toMatch(/--force/)
    expect(refused.stderr).toMatch(
      /step migrate \(release \d{14}\): no recorded commands \(deployed by an older hotctl\)/,
    )
    expect(await hello(s.agent)).toBe('hello v2')
    const forced = await runCli(['rollback', '--force', '--json'], {cwd: s.ws.src, env: s.env})
    expect(forced.exitCode, why(forced)).toBe(0)
    expect(forced.json.releaseSteps).toMatchObject({undone: [], skipped: ['migrate']})
    expect(await hello(s.agent)).toBe('hello v1')
    expect(dump(s.db)).toMatch(/currency/) // left in place, as --force says
  })

  it('hotctl killed mid-step: the next run undoes the migration, closes the window, then deploys', async () => {
    const s = await shop()
    s.ws.setVersion('v2')
    const marker = path.join(s.ws.live, '.hotctl-maintenance.json')
    const slow = migrateStep(
      'python3 migrations/002_currency.py && touch "$HOTCTL_STEP_BACKUP_DIR/migrated" && sleep 20',
    )
    s.ws.writeConfig(agentConfig(s.agent, {steps: [slow]}))
    const sub = startCli(['deploy'], {cwd: s.ws.src, env: s.env})
    await waitFor(() =>
      s.ws
        .journal()
        .some((e) => e.event === 'step' && e.action === 'run' && exists(path.join(String(e.dir), 'migrated'))),
    )
    process.kill(-sub.pid!, 'SIGKILL')
    await sub
    // The step's command runs in a process group of its own, journaled: it outlives hotctl ...
    const groups = s.ws
      .journal()
      .filter((e) => e.event === 'child')
      .map((e) => Number(e.pgid))
    const alive = (pgid: number) => {
      try {
        process.kill(-pgid, 0)
        return true
      } catch {
        return false
      }
    }
    expect(groups.some(alive)).toBe(true)
    expect(dump(s.db)).toMatch(/currency/)
    expect(exists(marker)).toBe(true) // the killed run's window is still open ...
    expect((await fetch(`${s.agent.base}/api/v1/hello`)).status).toBe(503)

    s.ws.writeConfig(agentConfig(s.agent, {steps: [migrateStep('python3 migrations/002_currency.py')]}))
    const r = await runCli(['deploy', '--json'], {cwd: s.ws.src, env: s.env})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.recovery).toMatchObject({restored: {ok: true}})
    expect(groups.filter(alive)).toEqual([]) // ... until the next run stops it, before undoing the migration
    const recover = s.ws.journal().filter((e) => String(e.opId).endsWith('-recover'))
    expect(recover.filter((e) => e.event === 'step').map((e) => `${e.step} ${e.action} ${e.ok ?? ''}`)).toEqual([
      'migrate undo ',
      'migrate undo true',
    ])
    expect(recover.some((e) => e.event === 'maintenance' && e.on === false)).toBe(true)
    // Migrated exactly once: the killed run's migration was undone before the new one ran.
    expect(
      py(
        'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select sum(amount) from orders").fetchone()[0])',
        [s.db],
      ).trim(),
    ).toBe(String(7 * 300 * 100))
    expect(exists(marker)).toBe(false)
    expect(await hello(s.agent)).toBe('hello v2')
  })

  it('deploy --maintenance: the agent answers 503 from the first change until the release is live', async () => {
    // A step without `maintenance: true` sees 503 only because of --maintenance; smoke runs after the window.
    const probe = {name: 'probe', run: 'python3 migrations/expect_maintenance.py', undo: 'true'} // nothing to undo
    const s = await shop({steps: [probe]})
    s.ws.setVersion('v2')
    const without = await runCli(['deploy', '--json'], {cwd: s.ws.src, env: s.env})
    expect(without.exitCode, why(without)).toBe(3)
    expect(without.json.error).toMatch(/expected 503 with Retry-After during the migration, got 200/)
    const r = await runCli(['deploy', '--maintenance', '--json'], {cwd: s.ws.src, env: s.env})
    expect(r.exitCode, why(r)).toBe(0)
    expect(await hello(s.agent)).toBe('hello v2')
    expect(exists(path.join(s.ws.live, '.hotctl-maintenance.json'))).toBe(false)
  })
})

const sum = (db: string) =>
  py(
    'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select sum(amount) from orders").fetchone()[0])',
    [db],
  ).trim()
const MIGRATED_ONCE = String(7 * 300 * 100)
/** A command smoke that fails once while data/fail-once exists (and removes it): the next proof passes. */
const FAIL_ONCE = {
  name: 'fail-once',
  command: `python3 -c "import os, sys; p = 'data/fail-once'; f = os.path.exists(p); f and os.remove(p); sys.exit(1 if f else 0)"`,
}
function withFailOnce(s: Shop, steps: unknown[] = [migrateStep()]): void {
  const config = agentConfig(s.agent, {steps})
  config.smoke = [...(config.smoke as unknown[]), FAIL_ONCE]
  s.ws.writeConfig(config)
}

describe(
  'rollback replays what was deployed, redoes on failure, and rolls forward (SQLite)',
  {timeout: 240_000},
  () => {
    it('the config changed after the deploy: rollback runs the recorded undo (its ${VAR} filled now, never stored)', async () => {
      const s = await shop()
      const token = 'undo-token-5a7c93'
      const undo = {
        argv: [
          'python3',
          '-c',
          `import os, shutil, sys
assert sys.argv[1] == os.environ["SHOP_UNDO_TOKEN"], "undo ran without its token"
shutil.copyfile(os.path.join(os.environ["HOTCTL_STEP_BACKUP_DIR"], "shop.db"), "data/shop.db")`,
          '${SHOP_UNDO_TOKEN}',
        ],
      }
      s.ws.writeConfig(agentConfig(s.agent, {steps: [{...migrateStep(), undo}]}))
      s.ws.setVersion('v2')
      const env = {...s.env, SHOP_UNDO_TOKEN: token}
      const d = await runCli(['deploy', '--json'], {cwd: s.ws.src, env})
      expect(d.exitCode, why(d)).toBe(0)
      const record = path.join(s.ws.stateDir, 'step-backups', d.json.release, '01-migrate', '.hotctl-step.json')
      expect(fs.statSync(record).mode & 0o777).toBe(0o600)
      const text = fs.readFileSync(record, 'utf8')
      expect(JSON.parse(text).undo).toEqual(undo) // as written: the reference, not the value
      expect(text).not.toContain(token)
      expect(fs.readFileSync(path.join(s.ws.stateDir, 'journal.jsonl'), 'utf8')).not.toMatch(/shutil|SHOP_UNDO_TOKEN/)

      // Edited after the deploy: an undo that would fail. The recorded one runs, and the plan says so.
      s.ws.writeConfig(agentConfig(s.agent, {steps: [{...migrateStep(), undo: 'false'}]}))
      const rb = await runCli(['rollback', '--json'], {cwd: s.ws.src, env})
      expect(rb.exitCode, why(rb)).toBe(0)
      expect(rb.json.releaseSteps.undone).toEqual(['migrate'])
      expect(rb.json.releaseSteps.notes).toEqual([
        expect.stringMatching(
          /^step migrate \(release \d{14}\): the config's undo differs from the one recorded at deploy time; the recorded one runs$/,
        ),
      ])
      expect(rb.stderr).toContain("the config's undo differs")
      expect(dump(s.db)).toBe(s.before.dump)
      expect(sha256File(s.db)).toBe(s.before.sha)
      expect(await hello(s.agent)).toBe('hello v1')
    })

    it('a rollback whose proof fails after undoing the migration: the files go back and the migration runs again (exit 3)', async () => {
      const s = await shop()
      withFailOnce(s)
      s.ws.setVersion('v2')
      const d = await runCli(['deploy', '--json'], {cwd: s.ws.src, env: s.env})
      expect(d.exitCode, why(d)).toBe(0)
      expect(sum(s.db)).toBe(MIGRATED_ONCE)
      fs.writeFileSync(path.join(s.ws.live, 'data', 'fail-once'), '')
      const rb = await runCli(['rollback', '--json'], {cwd: s.ws.src, env: s.env})
      expect(rb.exitCode, why(rb)).toBe(3)
      expect(rb.json.error).toMatch(/fail-once/)
      expect(rb.json.releaseSteps).toMatchObject({undone: ['migrate'], redone: ['migrate']})
      expect(rb.json.restore).toMatchObject({ok: true})
      // Data and code agree again: release v2's code, its migration applied exactly once.
      expect(await hello(s.agent)).toBe('hello v2')
      expect(dump(s.db)).toMatch(/currency/)
      expect(sum(s.db)).toBe(MIGRATED_ONCE)
      expect(exists(path.join(s.ws.live, '.hotctl-maintenance.json'))).toBe(false)
      const steps = s.ws.journal().filter((e) => e.event === 'step' && e.opId === rb.json.undo)
      expect(steps.map((e) => `${e.action}${e.ok === undefined ? '' : e.ok ? ' ok' : ' failed'}`)).toEqual([
        'undo',
        'undo ok',
        'run',
        'run ok',
      ])
      // Applied again: a later rollback undoes it from the same backup, byte for byte.
      const again = await runCli(['rollback', '--json'], {cwd: s.ws.src, env: s.env})
      expect(again.exitCode, why(again)).toBe(0)
      expect(sha256File(s.db)).toBe(s.before.sha)
    })

    it('a rollback killed after undoing the migration: the next run puts the files back and migrates again', async () => {
      const s = await shop()
      const slowUndo = `${UNDO} && touch "$HOTCTL_STEP_BACKUP_DIR/undone" && if [ -f data/slow-undo ]; then sleep 30; fi`
      s.ws.writeConfig(agentConfig(s.agent, {steps: [{...migrateStep(), undo: slowUndo}]}))
      s.ws.setVersion('v2')
      const d = await runCli(['deploy', '--json'], {cwd: s.ws.src, env: s.env})
      expect(d.exitCode, why(d)).toBe(0)
      const slow = path.join(s.ws.live, 'data', 'slow-undo')
      fs.writeFileSync(slow, '')
      const sub = startCli(['rollback'], {cwd: s.ws.src, env: s.env})
      const undone = path.join(s.ws.stateDir, 'step-backups', d.json.release, '01-migrate', 'undone')
      await waitFor(() => exists(undone))
      process.kill(-sub.pid!, 'SIGKILL')
      await sub.catch(() => undefined)
      expect(sha256File(s.db)).toBe(s.before.sha) // undone, and the code is still v2's
      fs.rmSync(slow)

      const r = await runCli(['deploy', '--json'], {cwd: s.ws.src, env: s.env})
      expect(r.exitCode, why(r)).toBe(0)
      expect(r.json.recovery).toMatchObject({op: 'rollback', restored: {ok: true}})
      expect(sum(s.db)).toBe(MIGRATED_ONCE)
      expect(await hello(s.agent)).toBe('hello v2')
      expect(exists(path.join(s.ws.live, '.hotctl-maintenance.json'))).toBe(false)
      const recover = s.ws.journal().filter((e) => String(e.opId).endsWith('-recover') && e.event === 'step')
      // The undo it cut short is finished from the backup, then the migration runs again.
      expect(recover.map((e) => `${e.step} ${e.action} ${e.ok ?? ''}`)).toEqual([
        'migrate undo ',
        'migrate undo true',
        'migrate run ',
        'migrate run true',
      ])
    })

    it('rollback --to a newer release re-runs its migration (backed up first); a failure undoes it with the code', async () => {
      const s = await shop()
      withFailOnce(s)
      s.ws.setVersion('v2')
      const d = await runCli(['deploy', '--json'], {cwd: s.ws.src, env: s.env})
      expect(d.exitCode, why(d)).toBe(0)
      const v2 = d.json.release
      expect((await runCli(['rollback'], {cwd: s.ws.src, env: s.env})).exitCode).toBe(0)
      expect(sha256File(s.db)).toBe(s.before.sha)

      const fwd = await runCli(['rollback', '--to', v2, '--json'], {cwd: s.ws.src, env: s.env})
      expect(fwd.exitCode, why(fwd)).toBe(0)
      expect(fwd.json.releaseSteps).toMatchObject({undone: [], reapplied: ['migrate']})
      expect(await hello(s.agent)).toBe('hello v2')
      expect(sum(s.db)).toBe(MIGRATED_ONCE)
      // Its own backup, beside the one the deploy took: taken before the migration ran again.
      const dir = path.join(s.ws.stateDir, 'step-backups', v2, `01-migrate.reapplied-${fwd.json.undo}`)
      expect(sha256File(path.join(dir, 'shop.db'))).toBe(s.before.sha)
      expect(exists(path.join(dir, '.hotctl-step.json'))).toBe(true)

      // Back again (undone from that backup), then a roll-forward whose proof fails: one unit.
      expect((await runCli(['rollback'], {cwd: s.ws.src, env: s.env})).exitCode).toBe(0)
      expect(sha256File(s.db)).toBe(s.before.sha)
      fs.writeFileSync(path.join(s.ws.live, 'data', 'fail-once'), '')
      const failed = await runCli(['rollback', '--to', v2, '--json'], {cwd: s.ws.src, env: s.env})
      expect(failed.exitCode, why(failed)).toBe(3)
      expect(failed.json.releaseSteps).toMatchObject({reapplied: ['migrate']})
      expect(sha256File(s.db)).toBe(s.before.sha)
      expect(dump(s.db)).toBe(s.before.dump)
      expect(await hello(s.agent)).toBe('hello v1')
      expect(exists(path.join(s.ws.live, '.hotctl-maintenance.json'))).toBe(false)
    })
  },
)
