#!/usr/bin/env node
// `npm run demo`: the whole hotctl loop against a real running Python service, narrated.
// In a temp dir: live/ (the running tree), src/ (the tree to deploy), the demo service on a free
// port. Deploy a change without a restart, deploy a broken change that is restored automatically
// (exit 3), roll back to the original tree, show status and backups. Exits non-zero if any step
// does not behave as described, so it doubles as a smoke test. `--keep` keeps the temp dir.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {execFileSync} from 'node:child_process'
import {bold, copyTree, createTokenFile, demoConfig, DemoFailure, dim, edit, expectThat, green, heading, hotctl, http, indent, PY, red, say, startService} from './lib.mjs'

const PYTHON = 'python3'

const keep = process.argv.includes('--keep')
const started = Date.now()
const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-demo-')))
const live = path.join(tmp, 'live')
const src = path.join(tmp, 'src')

// The agent's token, in a file only this user can read: the service reads the file, hotctl reads the
// same value from its environment (${HOTRELOAD_TOKEN} in the config). Without one the agent refuses reloads.
const tokenFile = createTokenFile(tmp)
const baseEnv = {...process.env, NO_COLOR: '1'}
for (const k of Object.keys(baseEnv)) if (k.startsWith('HOTCTL_') || k.startsWith('HOTRELOAD_TOKEN')) delete baseEnv[k]
delete baseEnv.FORCE_COLOR
const serviceEnv = {...baseEnv, HOTRELOAD_TOKEN_FILE: tokenFile}
const env = {...baseEnv, HOTRELOAD_TOKEN: fs.readFileSync(tokenFile, 'utf8').trim()}

let service
let cleaned = false
async function cleanup() {
  if (cleaned) return
  cleaned = true
  if (service) {
    await service.stop()
    say(dim(`\nStopped the demo service (pid ${service.proc.pid}).`))
  }
  if (keep) say(dim(`Kept ${tmp} (--keep).`))
  else fs.rmSync(tmp, {recursive: true, force: true})
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    say(red(`\n${sig}: stopping the demo`))
    cleanup().finally(() => process.exit(130))
  })
}
// Last resort if something exits the process synchronously: never leave the service running.
process.on('exit', () => {
  if (service && service.proc.exitCode === null && service.proc.signalCode === null) service.proc.kill('SIGKILL')
})

async function main() {
  say(bold('hotctl demo: deploy into a running service without restarting it'))
  say(dim(`working in ${tmp}`))

  // Setup: the running tree, the tree to deploy (a copy), protected live data, the service.
  copyTree(path.join(PY, 'demo_app'), live)
  copyTree(path.join(PY, 'demo_app'), src)
  fs.mkdirSync(path.join(live, 'data'))
  fs.writeFileSync(path.join(live, 'data', 'visits.log'), 'live data: protected, never deployed over\n')
  service = startService(live, serviceEnv)
  const {port, pid} = await service.ready
  const base = `http://127.0.0.1:${port}`
  fs.writeFileSync(path.join(src, 'hotctl.config.yaml'), demoConfig(port))
  say(dim(`live/ runs as python3 demo_service.py --root live (port ${port}); src/ holds the same code plus hotctl.config.yaml:`))
  say(dim(indent(demoConfig(port).replace(/Bearer [^']*/, "Bearer ${HOTRELOAD_TOKEN}"))))
  const healthPid = async () => (await http(base, '/health')).json?.pid
  const run = (args) => hotctl(args, {cwd: src, env})

  heading(1, 'the running service')
  const hello1 = (await http(base, '/api/v1/hello')).text
  say(`  GET /api/v1/hello → ${JSON.stringify(hello1)}`)
  say(`  service pid ${pid}`)
  expectThat(hello1 === 'hello from v1', 'the service answers "hello from v1"', hello1)
  expectThat((await healthPid()) === pid, `/health reports pid ${pid}`)
  const tokenMode = (fs.statSync(tokenFile).mode & 0o777).toString(8)
  say(`  agent token: generated into ${tokenFile} (mode ${tokenMode}); the service reads it via HOTRELOAD_TOKEN_FILE`)
  const anonymous = await http(base, '/api/v1/hot-reload/check', {json: {}})
  say(`  POST /api/v1/hot-reload/check without the token → ${anonymous.status} ${anonymous.text}`)
  expectThat(tokenMode === '600' && anonymous.status === 401, 'the agent refuses a reload request without the token', anonymous.text)

  heading(2, 'change a handler and deploy it with --no-restart')
  edit(path.join(src, 'app', 'handlers.py'), 'GREETING + " from v1"', 'GREETING + " from v2, hot-deployed"')
  edit(path.join(src, 'tests', 'test_app.py'), 'assertIn("v1"', 'assertIn("v2"')
  say('  src/app/handlers.py: VERSION_TEXT = GREETING + " from v2, hot-deployed"   (and its test)')
  const d1 = await run(['deploy', '--no-restart'])
  expectThat(d1.code === 0, 'deploy exits 0', d1.stderr + d1.stdout)
  const hello2 = (await http(base, '/api/v1/hello')).text
  say(`  GET /api/v1/hello → ${JSON.stringify(hello2)}`)
  expectThat(hello2 === 'hello from v2, hot-deployed', 'the running service answers with the new code', hello2)
  const pid2 = await healthPid()
  expectThat(pid2 === pid, `PID unchanged: ${pid2} (no restart)`)
  const release1 = JSON.parse(fs.readFileSync(path.join(live, '.hotctl-release.json'), 'utf8')).id
  const backupsAfter1 = await hotctl(['backups', '--json'], {cwd: src, env, echo: false})
  const firstBackup = JSON.parse(backupsAfter1.stdout).backups?.[0]?.id
  expectThat(/^\d{14}$/.test(firstBackup ?? ''), `release ${release1} is live; backup ${firstBackup} holds the tree from before it`)

  heading(3, 'deploy a broken change: the smoke test fails, the backup is restored')
  edit(
    path.join(src, 'app', 'handlers.py'),
    'def calc(a, b):\n    return add(a, b)',
    'def calc(a, b):\n    result = add(a, b)\n    if result > 4:  # a "fast path" bug the unit tests (1 + 2) miss\n        raise OverflowError("result too large for the fast path")\n    return result',
  )
  say('  src/app/handlers.py: calc() now raises when the result is > 4; the unit test (1 + 2) still passes,')
  say('  the smoke test (2 + 3) does not.')
  const d2 = await run(['deploy', '--no-restart'])
  expectThat(d2.code === 3, 'deploy exits 3 (failed after changing the target; backup restored and proved live)', d2.stderr + d2.stdout)
  const calc = await http(base, '/api/v1/calc', {json: {a: 2, b: 3}})
  const hello3 = (await http(base, '/api/v1/hello')).text
  say(`  POST /api/v1/calc {"a":2,"b":3} → ${calc.status} ${calc.text}`)
  say(`  GET /api/v1/hello → ${JSON.stringify(hello3)}`)
  expectThat(calc.status === 200 && calc.json?.success === true && calc.json?.result === 5, 'the OLD version still answers calc correctly', calc.text)
  expectThat(hello3 === hello2, 'and still says "hello from v2, hot-deployed"', hello3)
  const status3 = (await http(base, '/api/v1/hot-reload/status')).json
  expectThat(status3?.version === release1, `the service reports release ${release1} again`, JSON.stringify(status3))
  expectThat((await healthPid()) === pid, `PID still ${pid}`)

  heading('3b', 'a database migration and code as one unit: the migration is undone with the code')
  const db = path.join(live, 'data', 'shop.db')
  const sqlite = (code) => execFileSync(PYTHON, ['-c', code, db], {encoding: 'utf8'}).trim()
  sqlite(`import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount INTEGER)")
c.executemany("INSERT INTO orders (amount) VALUES (?)", [(i,) for i in range(1, 11)])
c.commit()`)
  const dbSha = () => sqlite('import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())')
  const schema = () => sqlite('import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("select sql from sqlite_master").fetchone()[0])')
  const before = dbSha()
  fs.mkdirSync(path.join(src, 'migrations'))
  fs.writeFileSync(
    path.join(src, 'migrations', '002_currency.py'),
    `import sqlite3\nc = sqlite3.connect("data/shop.db")\nc.execute("ALTER TABLE orders ADD COLUMN currency TEXT")\nc.execute("UPDATE orders SET amount = amount * 100, currency = 'EUR'")\nc.commit()\n`,
  )
  const steps = `steps:
  - name: migrate
    when: [migrations/**]
    maintenance: true   # the agent answers 503 from here until the release is live
    backup: cp data/shop.db "$HOTCTL_STEP_BACKUP_DIR/shop.db"
    run: python3 migrations/002_currency.py
    undo: cp "$HOTCTL_STEP_BACKUP_DIR/shop.db" data/shop.db.undo && mv data/shop.db.undo data/shop.db
`
  fs.appendFileSync(path.join(src, 'hotctl.config.yaml'), steps)
  say(`  live/data/shop.db (protected): ${schema()}`)
  say('  src/migrations/002_currency.py adds a column and rewrites every row; hotctl.config.yaml gets:')
  say(dim(indent(steps)))
  say('  src/app/handlers.py still has the calc bug from step 3.')
  const d3 = await run(['deploy', '--no-restart'])
  expectThat(d3.code === 3, 'deploy exits 3: the migration ran, the smoke test failed, the migration was undone and the code restored', d3.stderr + d3.stdout)
  say(`  live/data/shop.db: ${schema()}`)
  expectThat(dbSha() === before, 'the database is byte for byte what it was before the deploy')
  const journal = fs.readFileSync(path.join(tmp, '.live.hotctl', 'journal.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  const stepEvents = journal.filter((e) => e.event === 'step' && e.ok !== undefined).map((e) => `${e.action} ${e.ok ? 'ok' : 'failed'}`)
  say(`  journal: migrate ${stepEvents.join(', ')}; maintenance ${journal.filter((e) => e.event === 'maintenance').map((e) => (e.on ? 'on' : 'off')).join(' → ')}`)
  expectThat(!fs.existsSync(path.join(live, '.hotctl-maintenance.json')), 'maintenance mode is off again (the marker is gone)')

  heading(4, `roll back to the tree before step 2 (backup ${firstBackup})`)
  const rb = await run(['rollback', '--to', 'initial'])
  expectThat(rb.code === 0, 'rollback exits 0', rb.stderr + rb.stdout)
  const hello4 = (await http(base, '/api/v1/hello')).text
  say(`  GET /api/v1/hello → ${JSON.stringify(hello4)}`)
  expectThat(hello4 === hello1, 'the original answer is back', hello4)
  expectThat((await healthPid()) === pid, `PID still ${pid}`)
  const data = fs.readFileSync(path.join(live, 'data', 'visits.log'), 'utf8')
  expectThat(data.startsWith('live data'), 'protected live/data/visits.log survived every deploy and the rollback')

  heading(5, 'hotctl status and hotctl backups')
  const st = await run(['status'])
  expectThat(st.code === 0, 'status exits 0', st.stderr)
  const bk = await run(['backups'])
  expectThat(bk.code === 0, 'backups exits 0', bk.stderr)
}

let exitCode = 0
try {
  await main()
  say(`\n${green(bold('Demo passed'))} in ${((Date.now() - started) / 1000).toFixed(1)}s: deployed without a restart, restored a broken release (exit 3) and, with it, undid its database migration, rolled back.`)
} catch (err) {
  exitCode = 1
  if (err instanceof DemoFailure) say(`\n${red(bold('Demo FAILED:'))} ${err.message}`)
  else say(`\n${red(bold('Demo FAILED with an error:'))} ${err?.stack ?? err}`)
  if (service) {
    const log = service.stderr().trim()
    if (log) say(dim(`service stderr:\n${indent(log.split('\n').slice(-30).join('\n'))}`))
  }
} finally {
  heading(6, 'stop the service and clean up')
  await cleanup()
}
process.exit(exitCode)
