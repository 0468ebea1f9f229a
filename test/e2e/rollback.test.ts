import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {inodes, LIVE_DB, makeWorkspace, MARKER, readMarker, removeWorkspaces, requireBuild, runCli, serviceConfig, startService, stopAllServices, treeContent, treeHash, type Workspace} from './helpers.js'

beforeAll(requireBuild)
afterEach(stopAllServices)
afterAll(removeWorkspaces)

const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`
const isProtected = (p: string) => p === '.env' || p === 'data' || p.startsWith('data/')

/** Content and inode/mtime of the protected paths only. */
function protectedState(live: string) {
  const content = treeContent(live, (p) => !isProtected(p))
  const ino = Object.fromEntries(Object.entries(inodes(live)).filter(([p]) => isProtected(p)))
  return {content, ino}
}

/** Every object in the state dir's store, by content hash. */
function storedHashes(ws: Workspace): Set<string> {
  const out = new Set<string>()
  const dir = path.join(ws.stateDir, 'objects')
  if (!fs.existsSync(dir)) return out
  for (const fan of fs.readdirSync(dir)) {
    const fanDir = path.join(dir, fan)
    if (!fs.statSync(fanDir).isDirectory()) continue
    for (const name of fs.readdirSync(fanDir)) out.add(crypto.createHash('sha256').update(fs.readFileSync(path.join(fanDir, name))).digest('hex'))
  }
  return out
}

/** v1 live (pre-hotctl), then v2 and v3 deployed. */
async function twoReleases() {
  const ws = makeWorkspace()
  const svc = await startService(ws.live)
  ws.writeConfig(serviceConfig(svc, {checks: {}}))
  const h0 = treeHash(ws.live)
  ws.setVersion('v2')
  const a = await runCli(['deploy', '--json'], {cwd: ws.src})
  expect(a.exitCode, why(a)).toBe(0)
  const hA = treeHash(ws.live)
  ws.setVersion('v3')
  fs.writeFileSync(path.join(ws.src, 'app', 'extra.py'), 'X = 3\n')
  const b = await runCli(['deploy', '--json'], {cwd: ws.src})
  expect(b.exitCode, why(b)).toBe(0)
  expect(await svc.hello()).toBe('hello v3')
  return {ws, svc, h0, hA, A: a.json.release as string, B: b.json.release as string}
}

describe('protected paths', {timeout: 90_000}, () => {
  it('data/ and .env stay byte-identical (same inodes) through deploy, failed deploy and rollback, even when the source has its own', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc))
    // The source carries its own data/ and .env, different from the live ones.
    fs.mkdirSync(path.join(ws.src, 'data'), {recursive: true})
    fs.writeFileSync(path.join(ws.src, 'data', 'app.db'), 'SOURCE DB, must never reach the target')
    fs.writeFileSync(path.join(ws.src, 'data', 'seed.sql'), 'insert into t values (1);\n')
    fs.writeFileSync(path.join(ws.src, '.env'), 'API_KEY=from-source\n')
    let expected = protectedState(ws.live)
    expect(Object.keys(expected.content)).toEqual(expect.arrayContaining(['.env', 'data', 'data/app.db', 'data/uploads/a.txt']))

    ws.setVersion('v2')
    const d = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(d.exitCode, why(d)).toBe(0)
    const all = [...d.json.changes.added, ...d.json.changes.changed, ...d.json.changes.deleted]
    expect(all.filter(isProtected)).toEqual([])
    expect(protectedState(ws.live)).toEqual(expected)

    // The running app writes its data; from now on that is what must survive.
    fs.writeFileSync(path.join(ws.live, 'data', 'app.db'), Buffer.concat([LIVE_DB, Buffer.from('new row')]))
    fs.writeFileSync(path.join(ws.live, 'data', 'uploads', 'b.txt'), 'uploaded after the deploy\n')
    expected = protectedState(ws.live)

    ws.setVersion('v3', {calcBroken: true})
    const failed = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(failed.exitCode, why(failed)).toBe(3)
    expect(failed.json.restore.ok).toBe(true)
    expect(protectedState(ws.live)).toEqual(expected)

    const rb = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(rb.exitCode, why(rb)).toBe(0)
    expect(await svc.hello()).toBe('hello v1')
    expect(protectedState(ws.live)).toEqual(expected)

    // Protected content is never backed up either.
    const stored = storedHashes(ws)
    expect(stored.size).toBeGreaterThan(0)
    for (const f of ['data/app.db', 'data/uploads/a.txt', 'data/uploads/b.txt', '.env']) {
      const h = crypto.createHash('sha256').update(fs.readFileSync(path.join(ws.live, f))).digest('hex')
      expect(stored.has(h), `${f} was stored in a backup`).toBe(false)
    }
  })
})

describe('rollback', {timeout: 90_000}, () => {
  it('rollback twice: v3 → v2 (service confirms) → v1, the pre-hotctl tree without marker; each adds an undo snapshot', async () => {
    const {ws, svc, h0, hA, A, B} = await twoReleases()
    const list0 = await runCli(['backups', '--json'], {cwd: ws.src})
    expect(list0.json.backups.map((b: {id: string}) => b.id)).toEqual([A, B])

    const r1 = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(r1.exitCode, why(r1)).toBe(0)
    expect(r1.json.outcome).toBe('rolled-back')
    expect(r1.json.to).toBe(B)
    expect(r1.json.release).toBe(A)
    expect(r1.json.undo).toMatch(/^\d{14}$/)
    expect(treeHash(ws.live)).toBe(hA)
    expect(readMarker(ws.live)?.id).toBe(A)
    expect((await svc.status()).version).toBe(A)
    expect(await svc.hello()).toBe('hello v2')
    expect(fs.existsSync(path.join(ws.live, 'app', 'extra.py'))).toBe(false)

    const list1 = await runCli(['backups', '--json'], {cwd: ws.src})
    expect(list1.json.backups.map((b: {id: string}) => b.id)).toEqual([A, B, r1.json.undo])
    expect(list1.json.backups.at(-1).reason).toBe('rollback')
    expect(list1.json.backups.at(-1).release).toBe(B) // the undo snapshot holds v3

    const r2 = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(r2.exitCode, why(r2)).toBe(0)
    expect(r2.json.to).toBe(A)
    expect(r2.json.release).toBeNull()
    expect(treeHash(ws.live)).toBe(h0)
    expect(fs.existsSync(path.join(ws.live, MARKER))).toBe(false)
    expect(fs.existsSync(path.join(ws.live, 'hotctl.config.yaml'))).toBe(false)
    expect(await svc.hello()).toBe('hello v1')
    expect((await svc.status()).version).toBeNull()

    const list2 = await runCli(['backups', '--json'], {cwd: ws.src})
    expect(list2.json.backups.map((b: {id: string}) => b.id)).toEqual([A, B, r1.json.undo, r2.json.undo])

    // A third rollback has nowhere to go: the live tree has no marker.
    const r3 = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(r3.exitCode, why(r3)).toBe(2)
    expect(treeHash(ws.live)).toBe(h0)

    // Undo: the undo snapshot of the first rollback puts v3 back.
    const undo = await runCli(['rollback', '--to', r1.json.undo, '--json'], {cwd: ws.src})
    expect(undo.exitCode, why(undo)).toBe(0)
    expect(readMarker(ws.live)?.id).toBe(B)
    expect(await svc.hello()).toBe('hello v3')
  })

  it('rollback --to a good id restores that tree; bad ids exit 2 listing the valid ones', async () => {
    const {ws, svc, h0, hA, A, B} = await twoReleases()
    const hB = treeHash(ws.live)
    for (const bad of ['../x', '2025', '20990101000000', '20251301000000']) {
      const r = await runCli(['rollback', '--to', bad, '--json'], {cwd: ws.src})
      expect(r.exitCode, `${bad}: ${why(r)}`).toBe(2)
      expect(r.json.ok).toBe(false)
      const text = `${r.json.error.message} ${r.json.error.hint ?? ''}`
      expect(text).toContain(bad)
      expect(text).toContain(A)
      expect(text).toContain(B)
      const human = await runCli(['rollback', '--to', bad], {cwd: ws.src})
      expect(human.exitCode).toBe(2)
      expect(human.stderr).toContain(A)
      expect(human.stderr).toContain(B)
    }
    expect(treeHash(ws.live)).toBe(hB)
    expect(ws.backupFiles()).toEqual([`${A}.json`, `${B}.json`]) // no undo snapshot for refused rollbacks

    const toB = await runCli(['rollback', '--to', B, '--json'], {cwd: ws.src})
    expect(toB.exitCode, why(toB)).toBe(0)
    expect(treeHash(ws.live)).toBe(hA)
    expect((await svc.status()).version).toBe(A)
    expect(await svc.hello()).toBe('hello v2')

    const toA = await runCli(['rollback', '--to', A, '--json'], {cwd: ws.src})
    expect(toA.exitCode, why(toA)).toBe(0)
    expect(treeHash(ws.live)).toBe(h0)
    expect(await svc.hello()).toBe('hello v1')
  })
})
