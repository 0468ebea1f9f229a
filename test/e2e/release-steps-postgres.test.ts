/**
 * A migration step against a real PostgreSQL server (Debian's `postgresql`, installed by .ci/run),
 * started by the test as the `postgres` user on a private data dir and socket dir (no TCP). The
 * migration adds a column and rewrites every row; the smoke then fails: after exit 3 the schema
 * and every row are as before, compared by `pg_dump` output. A good deploy followed by a rollback
 * undoes it the same way.
 */
import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {makeWorkspace, removeWorkspaces, requireBuild, runCli, writeFiles} from './helpers.js'
import {agentConfig, startAgent, stopAgents, why} from './steps-support.js'

/** initdb/pg_ctl live in /usr/lib/postgresql/N/bin on Debian (not on PATH). */
function pgBin(name: string): string {
  const base = '/usr/lib/postgresql'
  const versions = fs.existsSync(base) ? fs.readdirSync(base).sort((a, b) => Number(b) - Number(a)) : []
  for (const v of versions) {
    const p = path.join(base, v, 'bin', name)
    if (fs.existsSync(p)) return p
  }
  return name
}

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(cmd, args, {encoding: 'utf8', env})
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`)
  return r.stdout
}

interface Pg {
  dir: string
  env: Record<string, string>
  stop(): void
}

let pg: Pg | undefined

/** A private server: data dir and socket dir under a temp dir owned by `postgres`. */
function startPostgres(): Pg {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-pg-'))
  const data = path.join(dir, 'data')
  const sock = path.join(dir, 'sock')
  fs.mkdirSync(sock)
  sh('chown', ['-R', 'postgres:postgres', dir])
  const asPostgres = (bin: string, args: string[]) => sh('runuser', ['-u', 'postgres', '--', pgBin(bin), ...args])
  asPostgres('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C'])
  const opts = `-c listen_addresses='' -c unix_socket_directories=${sock} -c fsync=off -p 54329`
  asPostgres('pg_ctl', ['-D', data, '-l', path.join(dir, 'log'), '-o', opts, '-w', '-t', '60', 'start'])
  const env = {PGHOST: sock, PGPORT: '54329', PGUSER: 'postgres', PGDATABASE: 'shop'}
  return {
    dir,
    env,
    stop() {
      spawnSync('runuser', ['-u', 'postgres', '--', pgBin('pg_ctl'), '-D', data, '-m', 'immediate', 'stop'])
      fs.rmSync(dir, {recursive: true, force: true})
    },
  }
}

function psql(sql: string, db = 'shop'): string {
  return sh('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', db, '-At', '-c', sql], {...process.env, ...pg!.env})
}

/** Plain-text dump; recent pg_dump versions add a random `\restrict` key per run: left out. */
const pgDump = () =>
  sh('pg_dump', ['--no-owner', 'shop'], {...process.env, ...pg!.env})
    .split('\n')
    .filter((l) => !/^\\(un)?restrict /.test(l))
    .join('\n')

const MIGRATION = `BEGIN;
ALTER TABLE orders ADD COLUMN currency text;
UPDATE orders SET amount = amount * 100, currency = 'EUR';
COMMIT;
`
const STEP = {
  name: 'migrate',
  when: 'migrations/**',
  maintenance: true,
  backup: 'pg_dump -Fc -f "$HOTCTL_STEP_BACKUP_DIR/shop.dump"',
  run: 'psql -X -v ON_ERROR_STOP=1 -f migrations/002_currency.sql',
  undo: 'pg_restore --clean --if-exists --single-transaction -d shop "$HOTCTL_STEP_BACKUP_DIR/shop.dump"',
}

beforeAll(() => {
  requireBuild()
  pg = startPostgres()
}, 120_000)
afterEach(async () => {
  await stopAgents()
  psql('DROP DATABASE IF EXISTS shop', 'postgres')
})
afterAll(() => {
  pg?.stop()
  removeWorkspaces()
})

async function setup() {
  psql('CREATE DATABASE shop', 'postgres')
  psql(`CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, amount integer NOT NULL);
        INSERT INTO orders (customer, amount) SELECT 'c' || i, i * 7 FROM generate_series(0, 24) AS i;`)
  const ws = makeWorkspace()
  const agent = await startAgent(ws.live)
  writeFiles(ws.src, {'migrations/002_currency.sql': MIGRATION})
  ws.writeConfig(agentConfig(agent, {steps: [STEP]}))
  return {ws, agent, before: pgDump(), env: pg!.env}
}

describe('a migration step on PostgreSQL', {timeout: 180_000}, () => {
  it('a failing smoke after the migration: exit 3, pg_dump output identical to before', async () => {
    const s = await setup()
    expect(s.before).toMatch(/CREATE TABLE public\.orders/)
    s.ws.setVersion('v2', {calcBroken: true})
    const r = await runCli(['deploy', '--json'], {cwd: s.ws.src, env: s.env})
    expect(r.exitCode, why(r)).toBe(3)
    expect(r.json.error).toMatch(/^smoke failed: calc/)
    expect(r.json.releaseSteps).toMatchObject({ran: ['migrate'], undone: ['migrate']})
    expect(pgDump()).toBe(s.before)
    expect(psql('SELECT sum(amount) FROM orders').trim()).toBe(String(7 * 300))
  })

  it('a good deploy migrates; rollback restores schema and rows', async () => {
    const s = await setup()
    s.ws.setVersion('v2')
    const r = await runCli(['deploy', '--json'], {cwd: s.ws.src, env: s.env})
    expect(r.exitCode, why(r)).toBe(0)
    expect(psql("SELECT count(*) FROM orders WHERE currency = 'EUR'").trim()).toBe('25')
    expect(pgDump()).not.toBe(s.before)
    const rb = await runCli(['rollback', '--json'], {cwd: s.ws.src, env: s.env})
    expect(rb.exitCode, why(rb)).toBe(0)
    expect(rb.json.releaseSteps.undone).toEqual(['migrate'])
    expect(pgDump()).toBe(s.before)
  })
})
