/**
 * The SSH target's side of issues 8 and 9 end to end, through a real sshd (sshd-host.mjs): `hotctl
 * diff` against the tree as deployed on the host, release steps run and undone on the host, the
 * maintenance marker written and removed there.
 */
import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {
  makeWorkspace,
  removeWorkspaces,
  requireBuild,
  runCli,
  serviceConfig,
  startCli,
  startService,
  stopAllServices,
  waitFor,
  type Workspace,
} from '../e2e/helpers.js'
import {type SshHost, startSshHost, stopSshHosts} from './sshd-host.mjs'

const why = (r: {stdout: string; stderr: string}) =>
  `stdout:\n${r.stdout.slice(0, 3000)}\nstderr:\n${r.stderr.slice(0, 3000)}`

let host: SshHost
beforeAll(async () => {
  requireBuild()
  // Process ids of its own: stopping a command left on the host must happen on the host.
  host = await startSshHost({pidNamespace: true})
})
afterEach(stopAllServices)
afterAll(async () => {
  await stopSshHosts()
  removeWorkspaces()
})

function remote(ws: Workspace, cfg: Record<string, unknown>) {
  ws.writeConfig({...cfg, target: `root@${host.alias}:${ws.live}`, ssh: {config: host.sshConfig, timeout: '20s'}})
}

const MAINTENANCE = '.hotctl-maintenance.json'

describe('SSH target: diff, release steps, maintenance', {timeout: 180_000}, () => {
  it('hotctl diff shows a hand edit on the host against the release as deployed, with its patch', async () => {
    const ws = makeWorkspace()
    remote(ws, {target: 'x', protect: ['data/', '.env']})
    ws.setVersion('v2')
    const d = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(d.exitCode, why(d)).toBe(0)
    const r1 = d.json.release as string
    expect(fs.existsSync(path.join(ws.stateDir, 'deployed', `${r1}.json`))).toBe(true)

    const clean = await runCli(['diff', '--json'], {cwd: ws.src})
    expect(clean.exitCode, why(clean)).toBe(0)
    expect(clean.json.a.label).toBe(`release ${r1} as deployed`)
    expect([...clean.json.added, ...clean.json.changed, ...clean.json.deleted]).toEqual([])

    // Someone edits a file on the host in place (the tree as deployed is not a link to it).
    const handlers = path.join(ws.live, 'app/handlers.py')
    const before = fs.statSync(handlers).size
    const hotfix = 'HOTFIX = "edited on the host"\n'
    fs.appendFileSync(handlers, hotfix)
    // and a file the deploy did not write (its as-deployed content is in the backup before it)
    const readme = path.join(ws.live, 'README.md')
    const readmeSize = fs.statSync(readme).size
    fs.appendFileSync(readme, 'note from the host\n')
    fs.writeFileSync(path.join(ws.live, 'data/app.db'), 'protected: never a difference')
    const edited = await runCli(['diff', '--json', '--patch'], {cwd: ws.src})
    expect(edited.exitCode, why(edited)).toBe(0)
    expect(edited.json.changed).toEqual([
      {path: 'README.md', type: 'file', before: readmeSize, after: readmeSize + 19},
      {path: 'app/handlers.py', type: 'file', before, after: before + hotfix.length},
    ])
    expect([...edited.json.added, ...edited.json.deleted]).toEqual([])
    expect(edited.json.patch).toContain(`+${hotfix}`)
    expect(edited.json.patch).toContain('+note from the host\n')

    // A second release: the two trees as deployed compare without the live tree.
    ws.setVersion('v3')
    const d2 = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(d2.exitCode, why(d2)).toBe(0)
    const between = await runCli(['diff', r1, d2.json.release, '--json'], {cwd: ws.src})
    expect(between.exitCode, why(between)).toBe(0)
    expect(between.json.changed.map((e: {path: string}) => e.path)).toContain('app/handlers.py')

    // prune --dry-run counts without removing; prune removes the old trees as deployed too.
    const dry = await runCli(['backups', 'prune', '--keep', '1', '--dry-run', '--json'], {cwd: ws.src})
    expect(dry.exitCode, why(dry)).toBe(0)
    expect(fs.existsSync(path.join(ws.stateDir, 'deployed', r1))).toBe(true)
    const pruned = await runCli(['backups', 'prune', '--keep', '1', '--json'], {cwd: ws.src})
    expect(pruned.exitCode, why(pruned)).toBe(0)
    expect(fs.existsSync(path.join(ws.stateDir, 'deployed', r1))).toBe(false)
    expect(fs.existsSync(path.join(ws.stateDir, 'deployed', `${d2.json.release}.json`))).toBe(true)
  })

  it('a release step is undone on the host after a failing smoke (exit 3)', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    const db = path.join(ws.dir, 'schema.txt')
    fs.writeFileSync(db, 'schema 1\n')
    const migrate = {
      name: 'migrate',
      backup: `cp ${db} "$HOTCTL_STEP_BACKUP_DIR/schema.txt"`,
      // Runs on the host, in the target directory, with the step's variables.
      run: `test -f app/handlers.py && echo "schema 2 ($HOTCTL_STEP_NAME)" > ${db}`,
      undo: `cp "$HOTCTL_STEP_BACKUP_DIR/schema.txt" ${db}`,
    }
    remote(ws, {...serviceConfig(svc), steps: [migrate]})
    ws.setVersion('v2', {calcBroken: true})
    const bad = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(bad.exitCode, why(bad)).toBe(3)
    expect(fs.readFileSync(db, 'utf8')).toBe('schema 1\n')
    expect(JSON.stringify(bad.json)).toContain('migrate')
    // The step command's process group on the host was journaled (recovery could stop it).
    const journal = fs.readFileSync(path.join(ws.stateDir, 'journal.jsonl'), 'utf8')
    expect(journal).toMatch(/"event":"child"/)

    ws.setVersion('v3')
    const good = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(good.exitCode, why(good)).toBe(0)
    expect(fs.readFileSync(db, 'utf8')).toBe('schema 2 (migrate)\n')

    // Its commands were recorded on the host (0600); edited in the config afterwards, the
    // recorded undo is what a rollback runs there, and a roll-forward runs the step again.
    const record = path.join(ws.stateDir, 'step-backups', good.json.release, '01-migrate', '.hotctl-step.json')
    expect(fs.statSync(record).mode & 0o777).toBe(0o600)
    remote(ws, {...serviceConfig(svc), steps: [{...migrate, undo: 'false'}]})
    const rb = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(rb.exitCode, why(rb)).toBe(0)
    expect(rb.json.releaseSteps.notes.join('\n')).toMatch(/the config's undo differs .* the recorded one runs/)
    expect(fs.readFileSync(db, 'utf8')).toBe('schema 1\n')
    const fwd = await runCli(['rollback', '--to', good.json.release, '--json'], {cwd: ws.src})
    expect(fwd.exitCode, why(fwd)).toBe(0)
    expect(fwd.json.releaseSteps.reapplied).toEqual(['migrate'])
    expect(fs.readFileSync(db, 'utf8')).toBe('schema 2 (migrate)\n')
  })

  it('deploy --maintenance writes the marker on the host while the deploy runs and removes it; never synced or backed up', async () => {
    const ws = makeWorkspace()
    remote(ws, {
      target: 'x',
      protect: ['data/', '.env'],
      // Sees the marker during the deploy (run on the host, in the target dir).
      steps: [{name: 'probe', run: `test -f ${MAINTENANCE} && cp ${MAINTENANCE} ../seen.json`, undo: 'true'}],
    })
    ws.setVersion('v2')
    const r = await runCli(['deploy', '--maintenance', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    const seen = JSON.parse(fs.readFileSync(path.join(ws.live, '../seen.json'), 'utf8'))
    expect(typeof seen.reason).toBe('string')
    expect(typeof seen.until).toBe('string')
    expect(fs.existsSync(path.join(ws.live, MAINTENANCE))).toBe(false)
    expect(fs.existsSync(path.join(ws.stateDir, 'backups', r.json.backup.id, MAINTENANCE))).toBe(false)
    expect(fs.existsSync(path.join(ws.stateDir, 'deployed', r.json.release, MAINTENANCE))).toBe(false)
  })

  it('a step command left on the host by a killed controller is stopped by the next run before the step is undone', async () => {
    const ws = makeWorkspace()
    const db = path.join(ws.dir, 'schema.txt')
    const go = path.join(ws.dir, 'go')
    fs.writeFileSync(db, 'schema 1\n')
    const marker = String(40 + Math.floor(Math.random() * 1000))
    remote(ws, {
      target: 'x',
      protect: ['data/', '.env'],
      steps: [
        {
          name: 'migrate',
          backup: `cp ${db} "$HOTCTL_STEP_BACKUP_DIR/schema.txt"`,
          run: `echo "schema 2 after $(cat ${db})" > ${db}.new && mv ${db}.new ${db}; [ -f ${go} ] || exec sleep ${marker}.7`,
          undo: `cp "$HOTCTL_STEP_BACKUP_DIR/schema.txt" ${db}`,
        },
      ],
    })
    const sleeping = () =>
      fs
        .readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8') === `sleep\0${marker}.7\0`
          } catch {
            return false
          }
        })
    ws.setVersion('v2')
    const proc = startCli(['deploy'], {cwd: ws.src})
    const journal = path.join(ws.stateDir, 'journal.jsonl')
    await waitFor(
      'the step command to run on the host, journaled',
      () =>
        sleeping().length === 1 &&
        /"event":"child"/.test(fs.existsSync(journal) ? fs.readFileSync(journal, 'utf8') : ''),
      60_000,
    )
    process.kill(proc.pid!, 'SIGKILL') // hotctl only: the command on the host goes on
    await proc.catch(() => undefined)
    expect(sleeping()).toHaveLength(1)
    expect(fs.readFileSync(db, 'utf8')).toBe('schema 2 after schema 1\n')

    fs.writeFileSync(go, '')
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    expect(sleeping()).toEqual([])
    expect(r.json.recovery?.interrupted).toBeTruthy()
    // Undone by recovery (schema 1 back), then run again by this deploy.
    const events = fs
      .readFileSync(journal, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as {event: string; action?: string; ok?: boolean})
    expect(events.some((e) => e.event === 'step' && e.action === 'undo' && e.ok === true)).toBe(true)
    expect(fs.readFileSync(db, 'utf8')).toBe('schema 2 after schema 1\n')
  })

  it('planning from the host hash record: an in-place edit keeping size and mtime is put back; an unchanged tree hashes nothing on the host', async () => {
    const ws = makeWorkspace()
    remote(ws, {target: 'x', protect: ['data/', '.env']})
    const first = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(first.exitCode, why(first)).toBe(0)
    const record = path.join(ws.stateDir, 'target-hashes.json.gz')
    expect(fs.existsSync(record)).toBe(true)
    // Nothing changed: every host file's hash comes from the record (nothing hashed on the host).
    const same = await runCli(['deploy', '--json', '--verbose'], {cwd: ws.src})
    expect(same.json?.outcome, why(same)).toBe('nothing-to-deploy')
    expect(same.stderr).not.toMatch(/planning: hashing/)

    const rel = 'app/handlers.py'
    const live = path.join(ws.live, rel)
    const touchRef = (ref: string, file: string) => expect(spawnSync('touch', ['-m', '-r', ref, file]).status).toBe(0)
    // Source and live agree on size and mtime to the nanosecond: only the ctime tells the edit.
    touchRef(live, path.join(ws.src, rel))
    const original = fs.readFileSync(live, 'utf8')
    const ref = path.join(ws.dir, 'mtime-ref')
    fs.writeFileSync(ref, '')
    touchRef(live, ref)
    fs.writeFileSync(live, original.replace(/v1/g, 'v9'))
    touchRef(ref, live)
    expect(fs.statSync(live, {bigint: true}).mtimeNs).toBe(fs.statSync(path.join(ws.src, rel), {bigint: true}).mtimeNs)
    expect(fs.readFileSync(live, 'utf8')).not.toBe(original)

    const dry = await runCli(['deploy', '--dry-run', '--json', '--verbose'], {cwd: ws.src})
    expect(dry.json?.changes?.changed, why(dry)).toEqual([rel])
    const r = await runCli(['deploy', '--json', '--verbose'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.changes.changed).toEqual([rel])
    expect(r.stderr).toMatch(/planning: hashing 1 file\(s\)/)
    expect(fs.readFileSync(live, 'utf8')).toBe(original)
    // What that deploy hashed and wrote went into the record's patch (appended), not a rewrite.
    expect(fs.readFileSync(path.join(ws.stateDir, 'target-hashes.patch.jsonl'), 'utf8')).toContain(`["${rel}",`)
    const again = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(again.json?.outcome, why(again)).toBe('nothing-to-deploy')
  })
})
