/**
 * Which paths a deploy and a rollback touch: protect and exclude patterns as rsync applies them,
 * directories left holding only excluded leftovers, special files in the live tree, the protect
 * list a backup was taken with, and a state dir that would be deployed with the source.
 */
import fs from 'node:fs'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {
  makeWorkspace,
  removeWorkspaces,
  requireBuild,
  runCli,
  serviceConfig,
  startService,
  stopAllServices,
  treeContent,
  treeHash,
  writeFiles,
} from './helpers.js'

beforeAll(requireBuild)
afterEach(stopAllServices)
afterAll(removeWorkspaces)

const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`

describe('patterns, leftovers and special files', {timeout: 60_000}, () => {
  // rsync gets anchored patterns (and the no-directory form of `**/`) that agree with
  // hotctl's own matcher: a `config/**/secrets.env` protect covers `config/secrets.env`, and an
  // `exclude: config/local.py` does not hide `lib/config/local.py`.
  it('protect with `**` keeps config/secrets.env through deploy and rollback; an inner-slash exclude is anchored', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(
      serviceConfig(svc, {
        checks: {},
        protect: ['data/', '.env', 'config/**/secrets.env'],
        exclude: ['config/local.py'],
      }),
    )
    const LIVE_SECRETS = 'LIVE_SECRET=keep-me\n'
    fs.mkdirSync(path.join(ws.live, 'config', 'prod'), {recursive: true})
    fs.writeFileSync(path.join(ws.live, 'config', 'secrets.env'), LIVE_SECRETS)
    fs.writeFileSync(path.join(ws.live, 'config', 'prod', 'secrets.env'), LIVE_SECRETS)
    writeFiles(ws.src, {
      'config/secrets.env': 'FROM_SOURCE=1\n',
      'config/prod/secrets.env': 'FROM_SOURCE=1\n',
      'config/app.ini': '[app]\n',
      'config/local.py': 'LOCAL = 1\n',
      'lib/config/local.py': 'LIB = 1\n',
    })
    ws.setVersion('v2')
    const before = treeHash(ws.live)

    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    expect(fs.readFileSync(path.join(ws.live, 'config', 'secrets.env'), 'utf8')).toBe(LIVE_SECRETS)
    expect(fs.readFileSync(path.join(ws.live, 'config', 'prod', 'secrets.env'), 'utf8')).toBe(LIVE_SECRETS)
    expect(fs.readFileSync(path.join(ws.live, 'config', 'app.ini'), 'utf8')).toBe('[app]\n')
    expect(fs.existsSync(path.join(ws.live, 'config', 'local.py'))).toBe(false) // excluded, anchored at the root
    expect(fs.readFileSync(path.join(ws.live, 'lib', 'config', 'local.py'), 'utf8')).toBe('LIB = 1\n') // not excluded

    const rb = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(rb.exitCode, why(rb)).toBe(0)
    expect(fs.readFileSync(path.join(ws.live, 'config', 'secrets.env'), 'utf8')).toBe(LIVE_SECRETS)
    expect(fs.readFileSync(path.join(ws.live, 'config', 'prod', 'secrets.env'), 'utf8')).toBe(LIVE_SECRETS)
    expect(treeHash(ws.live)).toBe(before)
  })

  // A directory the deploy added that now holds only excluded leftovers (__pycache__) is
  // removed by the restore, so verify passes: exit 3 (restored), not 4 (needs attention).
  it('a failed deploy that added newmod/ is restored (exit 3) even after the smoke wrote newmod/__pycache__', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    const pycache = 'mkdir -p newmod/__pycache__ && echo x > newmod/__pycache__/x.cpython-311.pyc'
    const smoke = [
      {name: 'imports', command: `if [ -d newmod ]; then ${pycache} && echo "newmod is broken" && exit 1; fi`},
    ]
    ws.writeConfig(serviceConfig(svc, {checks: {}, smoke}))
    writeFiles(ws.src, {'newmod/__init__.py': '', 'newmod/x.py': 'X = 1\n'})
    ws.setVersion('v2')
    const before = treeHash(ws.live)

    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(3)
    expect(r.json.outcome).toBe('restored')
    expect(r.json.restore.ok).toBe(true)
    expect(fs.existsSync(path.join(ws.live, 'newmod'))).toBe(false)
    expect(treeHash(ws.live)).toBe(before)
    const st = await runCli(['status', '--json'], {cwd: ws.src})
    expect(st.exitCode, why(st)).toBe(0)
    expect(st.json.needsAttention).toBe(false)
  })

  // The plan only deletes what the walk manages: a FIFO (or socket) in the live tree is
  // neither deleted nor a reason to fail.
  it('a FIFO in the live tree survives a deploy of another change', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc, {checks: {}}))
    const fifo = path.join(ws.live, 'app', 'control.fifo')
    const mk = await import('node:child_process').then((cp) => cp.spawnSync('mkfifo', [fifo]))
    expect(mk.status).toBe(0)
    ws.setVersion('v2')

    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.changes.deleted).not.toContain('app/control.fifo')
    expect(fs.lstatSync(fifo).isFIFO()).toBe(true)
    expect(await svc.hello()).toBe('hello v2')
  })

  // A backup records the protect list it was taken with; a restore leaves those paths alone
  // even after `protect` lost them.
  it('rollback after removing `data/` from protect leaves live data/ byte-identical', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc, {checks: {}, protect: ['data/', '.env']}))
    const data = () => treeContent(path.join(ws.live, 'data'))
    const dataBefore = data()
    expect(Object.keys(dataBefore)).toContain('app.db')
    ws.setVersion('v2')
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)

    ws.writeConfig(serviceConfig(svc, {checks: {}, protect: ['.env']}))
    const rb = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(rb.exitCode, why(rb)).toBe(0)
    expect(fs.existsSync(path.join(ws.live, 'data'))).toBe(true)
    expect(data()).toEqual(dataBefore)
    expect(await svc.hello()).toBe('hello v1')
  })

  // A stateDir inside the source would be deployed into the target with every backup.
  it('a stateDir inside the source is refused with exit 2 naming stateDir', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc, {checks: {}, stateDir: './.hotctl-state'}))
    ws.setVersion('v2')
    const before = treeHash(ws.live)
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(2)
    expect(r.json.error.message).toContain('stateDir')
    expect(fs.existsSync(path.join(ws.src, '.hotctl-state'))).toBe(false)
    expect(treeHash(ws.live)).toBe(before)
  })
})
