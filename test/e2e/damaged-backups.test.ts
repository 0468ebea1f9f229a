import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {
  handlersPy,
  inodes,
  makeWorkspace,
  MARKER,
  readMarker,
  removeWorkspaces,
  requireBuild,
  runCli,
  serviceConfig,
  startCli,
  startService,
  stopAllServices,
  treeContent,
  waitFor,
  type Workspace,
} from './helpers.js'

beforeAll(requireBuild)
afterEach(stopAllServices)
afterAll(removeWorkspaces)

const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`
const sha = (s: string | Buffer) => crypto.createHash('sha256').update(s).digest('hex')

/** Content, mode, inode and mtime of every entry: equal before and after = nothing was written. */
const snapshotLive = (ws: Workspace) => ({content: treeContent(ws.live), ino: inodes(ws.live)})

const objectPath = (ws: Workspace, hash: string) => path.join(ws.stateDir, 'objects', hash.slice(0, 2), hash)

/** Rewrites a stored file (objects are read-only), keeping its name: what disk damage or a stray edit does. */
function rewrite(file: string, edit: (b: Buffer) => Buffer): void {
  const data = edit(fs.readFileSync(file))
  fs.chmodSync(file, 0o644)
  fs.writeFileSync(file, data)
  fs.chmodSync(file, 0o444)
}

const flipByte = (file: string, at = 5) =>
  rewrite(file, (b) => {
    const out = Buffer.from(b)
    out[at] = out[at]! ^ 0x01
    return out
  })

function backupMeta(
  ws: Workspace,
  id: string,
): {root: Record<string, string>; files: number; bytes: number; release: string | null} {
  return JSON.parse(fs.readFileSync(path.join(ws.stateDir, 'backups', `${id}.json`), 'utf8'))
}

/**
 * v1 live (installed by hand), then v2 and v3 deployed: backup A holds v1, backup B holds v2.
 * handlers.py of v1 and v2 have the same size, so a chunk can be edited to swap one for the other.
 */
async function twoDeploys() {
  const ws = makeWorkspace()
  const svc = await startService(ws.live)
  ws.writeConfig(serviceConfig(svc, {checks: {}}))
  ws.setVersion('v2')
  const a = await runCli(['deploy', '--json'], {cwd: ws.src})
  expect(a.exitCode, why(a)).toBe(0)
  ws.setVersion('v3')
  const b = await runCli(['deploy', '--json'], {cwd: ws.src})
  expect(b.exitCode, why(b)).toBe(0)
  expect(await svc.hello()).toBe('hello v3')
  return {ws, svc, A: a.json.release as string, B: b.json.release as string}
}

describe('a damaged backup is refused by rollback before anything is written', {timeout: 120_000}, () => {
  it('a directory chunk edited to point a file at another object of the same size: exit 1, names backup and chunk, live untouched', async () => {
    const {ws, svc, A} = await twoDeploys()
    const v1 = sha(handlersPy('v1'))
    const v2 = sha(handlersPy('v2'))
    expect(handlersPy('v1').length).toBe(handlersPy('v2').length)
    expect(fs.existsSync(objectPath(ws, v2))).toBe(true) // another existing object
    const appChunk = backupMeta(ws, A).root['app']!
    const chunkFile = objectPath(ws, appChunk)
    expect(fs.readFileSync(chunkFile, 'utf8')).toContain(v1)
    rewrite(chunkFile, (b) => Buffer.from(b.toString('utf8').replace(v1, v2)))
    const before = snapshotLive(ws)

    const r = await runCli(['rollback', '--to', 'initial'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(1)
    expect(r.stderr).toContain(`backup ${A} is damaged`)
    expect(r.stderr).toContain(`directory app/: chunk ${appChunk} does not match its hash`)
    expect(r.stdout + r.stderr).not.toContain('Rolled back')
    expect(snapshotLive(ws)).toEqual(before)
    expect(await svc.hello()).toBe('hello v3')

    const j = await runCli(['rollback', '--to', 'initial', '--json'], {cwd: ws.src})
    expect(j.exitCode, why(j)).toBe(1)
    expect(j.json.error.backup).toBe(A)
    const chunkDamage = {backup: A, what: 'chunk', problem: 'hash-mismatch', path: 'app', hash: appChunk}
    expect(j.json.error.damage).toEqual([expect.objectContaining(chunkDamage)])
    expect(snapshotLive(ws)).toEqual(before)
  })

  it('a flipped byte in a file object: exit 1 naming backup, path and object hash; live untouched, no blame on the target', async () => {
    const {ws, svc, A} = await twoDeploys()
    const v1 = sha(handlersPy('v1'))
    flipByte(objectPath(ws, v1))
    const before = snapshotLive(ws)
    const r = await runCli(['rollback', '--to', 'initial'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(1)
    expect(r.stderr).toContain(`backup ${A} is damaged: app/handlers.py: object ${v1} does not match its hash`)
    expect(r.stderr).not.toContain('target differs')
    expect(snapshotLive(ws)).toEqual(before)
    expect(await svc.hello()).toBe('hello v3')
    // The journal records a failed rollback (not one needing attention); status is fine.
    const st = await runCli(['status', '--json'], {cwd: ws.src})
    expect(st.exitCode, why(st)).toBe(0)
    expect(st.json.recent[0]).toMatchObject({op: 'rollback', result: 'failed', exitCode: 1})
  })

  it('an object that is missing: exit 1 naming it; an object a restore does not need is not read', async () => {
    const {ws, A} = await twoDeploys()
    const readme = sha('# demo app\n') // same in every version: the restore does not copy it
    fs.rmSync(objectPath(ws, readme))
    const v1 = sha(handlersPy('v1'))
    fs.rmSync(objectPath(ws, v1))
    const before = snapshotLive(ws)
    const r = await runCli(['rollback', '--to', 'initial', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(1)
    expect(r.json.error.message).toContain(`backup ${A} is damaged: app/handlers.py: object ${v1} is missing`)
    // Only what this restore would copy is checked (O(changed)): README.md is equal in live and not named.
    expect(r.json.error.damage.map((d: {path: string}) => d.path)).toEqual(['app/handlers.py'])
    expect(snapshotLive(ws)).toEqual(before)
  })

  it('truncated metadata: rollback --to it is refused as damaged (exit 1), live untouched', async () => {
    const {ws, A} = await twoDeploys()
    const file = path.join(ws.stateDir, 'backups', `${A}.json`)
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').slice(0, 40))
    const before = snapshotLive(ws)
    const r = await runCli(['rollback', '--to', 'initial'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(1)
    expect(r.stderr).toContain(`backup ${A} is damaged: metadata backups/${A}.json is unreadable: not valid JSON`)
    expect(snapshotLive(ws)).toEqual(before)
  })

  it('metadata edited to record other totals, or a directory its parent does not hold: refused', async () => {
    const {ws, A, B} = await twoDeploys()
    const file = (id: string) => path.join(ws.stateDir, 'backups', `${id}.json`)
    const metaA = backupMeta(ws, A)
    fs.writeFileSync(file(A), JSON.stringify({...metaA, files: metaA.files + 1}))
    const metaB = backupMeta(ws, B)
    // B's root map gains a chunk for "static/css", which its "static" listing does not hold.
    fs.writeFileSync(file(B), JSON.stringify({...metaB, root: {...metaB.root, 'static/css': metaB.root['app']}}))
    const before = snapshotLive(ws)
    const a = await runCli(['rollback', '--to', 'initial'], {cwd: ws.src})
    expect(a.exitCode, why(a)).toBe(1)
    expect(a.stderr).toContain(`metadata backups/${A}.json records ${metaA.files + 1} files`)
    const b = await runCli(['rollback', '--to', A], {cwd: ws.src})
    expect(b.exitCode, why(b)).toBe(1)
    expect(b.stderr).toContain(`lists directory static/css/, which its parent static/ does not hold`)
    expect(snapshotLive(ws)).toEqual(before)
  })

  it('a chunk whose JSON is malformed (valid hash name, bad content) is refused naming the directory', async () => {
    const {ws, A} = await twoDeploys()
    // A well-formed object named by its own hash, but not a listing: the metadata points "app" at it.
    const bogus = Buffer.from('[["../../escape", "f", 420, 3, "abc"]')
    const hash = sha(bogus)
    fs.mkdirSync(path.dirname(objectPath(ws, hash)), {recursive: true})
    fs.writeFileSync(objectPath(ws, hash), bogus)
    const meta = backupMeta(ws, A)
    fs.writeFileSync(
      path.join(ws.stateDir, 'backups', `${A}.json`),
      JSON.stringify({...meta, root: {...meta.root, app: hash}}),
    )
    const before = snapshotLive(ws)
    const r = await runCli(['rollback', '--to', 'initial'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(1)
    expect(r.stderr).toContain(`directory app/: chunk ${hash} is not a valid directory listing: it is not valid JSON`)
    expect(snapshotLive(ws)).toEqual(before)
  })
})

describe('a damaged backup during an automatic restore', {timeout: 120_000}, () => {
  it('a deploy fails after the sync and its backup is damaged: exit 4, nothing restored from it, status names the backup', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    const v1 = sha(handlersPy('v1'))
    // The failing smoke test damages the deploy's own backup first (a byte of the v1 handlers.py it must put back).
    const damage = path.join(ws.dir, 'damage.mjs')
    const script = [
      `import fs from 'node:fs'`,
      `const f = process.env.HOTCTL_STATE_DIR + '/objects/${v1.slice(0, 2)}/${v1}'`,
      'const b = fs.readFileSync(f)',
      'b[3] ^= 1',
      'fs.chmodSync(f, 0o644)',
      'fs.writeFileSync(f, b)',
      'process.exit(1)',
    ]
    fs.writeFileSync(damage, `${script.join('\n')}\n`)
    ws.writeConfig(serviceConfig(svc, {checks: {}, smoke: [{name: 'damage-then-fail', command: `node ${damage}`}]}))
    ws.setVersion('v2')
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(4)
    const id = r.json.release as string
    expect(r.json.outcome).toBe('needs-attention')
    expect(r.json.restore.ok).toBe(false)
    expect(r.json.restore.error).toContain(
      `backup ${id} is damaged: app/handlers.py: object ${v1} does not match its hash`,
    )
    expect(r.json.restore.damage).toEqual([
      expect.objectContaining({backup: id, what: 'object', path: 'app/handlers.py', hash: v1}),
    ])
    expect(r.json.restore.written).toBe(0)
    // Nothing was restored: live is still exactly the synced v2 tree (plus marker and protected files).
    const ours = (p: string) => p === MARKER || p === '.env' || p === 'data' || p.startsWith('data/')
    expect(treeContent(ws.live, ours)).toEqual(treeContent(ws.src))
    expect(readMarker(ws.live)?.id).toBe(id)

    const st = await runCli(['status', '--json'], {cwd: ws.src})
    expect(st.exitCode, why(st)).toBe(4)
    expect(st.json.attention).toContain(`backup ${id} is damaged`)
    const human = await runCli(['status'], {cwd: ws.src})
    expect(human.stdout).toContain(`NEEDS ATTENTION`)
    expect(human.stdout).toContain(`backup ${id} is damaged`)

    const v = await runCli(['backups', 'verify', '--json'], {cwd: ws.src})
    expect(v.exitCode, why(v)).toBe(1)
    const objectDamage = {backup: id, what: 'object', problem: 'hash-mismatch', path: 'app/handlers.py', hash: v1}
    expect(v.json.damage).toEqual([expect.objectContaining(objectDamage)])
  })

  it('journal recovery after a kill finds the interrupted backup damaged: exit 4, live untouched by the recovery, status names it', async () => {
    const ws = makeWorkspace()
    const cfgFile = path.join(ws.dir, 'hotctl.yaml')
    const config = (svc: Awaited<ReturnType<typeof startService>>, timeout: string) => {
      const c = serviceConfig(svc, {source: './src', target: './live', checks: {}})
      ;(c.reload as Record<string, unknown>).timeout = timeout
      ws.writeConfig(c, cfgFile)
    }
    const args = (...a: string[]) => [...a, '--config', cfgFile]
    // A service that never confirms: the deploy sits in its confirm step, target synced; kill it there.
    let svc = await startService(ws.live, {neverReport: true})
    config(svc, '30s')
    ws.setVersion('v2')
    const proc = startCli(args('deploy'), {cwd: ws.dir})
    try {
      const reloading = () => ws.journal().some((e) => e.event === 'phase' && e.phase === 'reload')
      await waitFor('the deploy to reach the reload phase', reloading, 30_000)
      await new Promise((res) => setTimeout(res, 300))
    } finally {
      process.kill(-proc.pid!, 'SIGKILL')
      await proc
    }
    const opId = ws.journal().find((e) => e.event === 'start')!.opId as string
    fs.rmSync(objectPath(ws, sha(handlersPy('v1'))))
    await svc.stop()
    svc = await startService(ws.live)
    config(svc, '5s')
    const before = snapshotLive(ws)

    const r = await runCli(args('deploy'), {cwd: ws.dir})
    expect(r.exitCode, why(r)).toBe(4)
    const refused = `could not restore backup ${opId} of interrupted deploy ${opId}: backup ${opId} is damaged: app/handlers.py: object`
    expect(r.stderr).toContain(refused)
    expect(snapshotLive(ws)).toEqual(before)
    const st = await runCli(args('status', '--json'), {cwd: ws.dir})
    expect(st.exitCode, why(st)).toBe(4)
    expect(st.json.attention).toContain(`backup ${opId} is damaged`)
  })
})

describe('hotctl backups verify', {timeout: 120_000}, () => {
  it('a clean store exits 0; unused objects and temp files are info, not damage', async () => {
    const {ws, A, B} = await twoDeploys()
    const clean = await runCli(['backups', 'verify', '--json'], {cwd: ws.src})
    expect(clean.exitCode, why(clean)).toBe(0)
    expect(clean.json).toMatchObject({ok: true, command: 'backups:verify', backup: null, damage: []})
    expect(clean.json.backups.map((b: {id: string; ok: boolean}) => [b.id, b.ok])).toEqual([
      [A, true],
      [B, true],
    ])
    expect(clean.json.checked.objects).toBeGreaterThan(0)
    expect(clean.json.info).toMatchObject({orphanObjects: 0, tempFiles: []})

    const orphan = Buffer.from('content no backup names')
    fs.mkdirSync(path.dirname(objectPath(ws, sha(orphan))), {recursive: true})
    fs.writeFileSync(objectPath(ws, sha(orphan)), orphan)
    fs.mkdirSync(path.join(ws.stateDir, 'objects', 'tmp'), {recursive: true})
    fs.writeFileSync(path.join(ws.stateDir, 'objects', 'tmp', '123-abc'), 'half written')
    const info = await runCli(['backups', 'verify'], {cwd: ws.src})
    expect(info.exitCode, why(info)).toBe(0)
    expect(info.stdout).toContain('Info: 1 object(s) no backup uses')
    expect(info.stdout).toContain('Info: 1 temp file(s)')
    expect(info.stdout).toContain('No damage found.')
  })

  it('lists every damage (chunk edited, byte flipped, object missing, metadata truncated) with exit 1; with an ID, that backup only', async () => {
    const {ws, A, B} = await twoDeploys()
    const third = await runCli(['rollback', '--to', A, '--json'], {cwd: ws.src}) // C: the undo snapshot (holds v3)
    expect(third.exitCode, why(third)).toBe(0)
    const C = third.json.undo as string
    const v1 = sha(handlersPy('v1'))
    const v2 = sha(handlersPy('v2'))
    const v3 = sha(handlersPy('v3'))
    flipByte(objectPath(ws, v1)) // A's handlers.py
    fs.rmSync(objectPath(ws, v3)) // C's handlers.py
    const metaB = path.join(ws.stateDir, 'backups', `${B}.json`)
    fs.writeFileSync(metaB, fs.readFileSync(metaB, 'utf8').slice(0, 30)) // B's metadata
    const before = snapshotLive(ws)

    const all = await runCli(['backups', 'verify', '--json'], {cwd: ws.src})
    expect(all.exitCode, why(all)).toBe(1)
    expect(all.json.ok).toBe(false)
    type Row = {backup: string; what: string; problem: string; path?: string; hash?: string}
    const found = all.json.damage.map((d: Row) => [d.backup, d.what, d.problem, d.path, d.hash])
    expect(found).toEqual(
      expect.arrayContaining([
        [A, 'object', 'hash-mismatch', 'app/handlers.py', v1],
        [B, 'metadata', 'unreadable', undefined, undefined],
        [C, 'object', 'missing', 'app/handlers.py', v3],
        // The index still names the deleted object: a later backup of that content would rely on it.
        [undefined, 'index', 'invalid', undefined, v3],
      ]),
    )
    expect(found).toHaveLength(4)
    expect(all.json.backups.map((b: {id: string; ok: boolean}) => [b.id, b.ok])).toEqual([
      [A, false],
      [B, false],
      [C, false],
    ])
    expect(fs.existsSync(objectPath(ws, v2))).toBe(true)

    const human = await runCli(['backups', 'verify'], {cwd: ws.src})
    expect(human.exitCode, why(human)).toBe(1)
    expect(human.stdout).toContain(`DAMAGED backup ${A}:\n  app/handlers.py: object ${v1} does not match its hash`)
    expect(human.stdout).toContain(`DAMAGED backup ${B}:\n  metadata backups/${B}.json is unreadable`)
    expect(human.stdout).toContain(`DAMAGED backup ${C}:\n  app/handlers.py: object ${v3} is missing`)

    const one = await runCli(['backups', 'verify', A, '--json'], {cwd: ws.src})
    expect(one.exitCode, why(one)).toBe(1)
    expect(one.json.backup).toBe(A)
    expect(one.json.damage.map((d: {backup: string}) => d.backup)).toEqual([A])
    const unknown = await runCli(['backups', 'verify', '20000101000000'], {cwd: ws.src})
    expect(unknown.exitCode, why(unknown)).toBe(2)
    expect(unknown.stderr).toContain(`Snapshot ids: ${A}, ${B}, ${C}`)
    expect(snapshotLive(ws)).toEqual(before) // verify is read-only
  })

  it('the store index naming an object that is gone is damage (a later backup would rely on it)', async () => {
    const {ws} = await twoDeploys()
    const ghost = sha('never stored')
    fs.appendFileSync(path.join(ws.stateDir, 'objects', 'index'), `\n${ghost}`)
    const r = await runCli(['backups', 'verify', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(1)
    expect(r.json.damage).toEqual([expect.objectContaining({what: 'index', hash: ghost})])
  })

  it('with no backups yet: exit 0 and no state dir is created', async () => {
    const ws = makeWorkspace()
    ws.writeConfig({target: '../live'})
    const r = await runCli(['backups', 'verify'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    expect(fs.existsSync(ws.stateDir)).toBe(false)
  })
})
