import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {spawnSync} from 'node:child_process'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {
  inodes,
  LIVE_DB,
  makeWorkspace,
  MARKER,
  readMarker,
  removeWorkspaces,
  requireBuild,
  runCli,
  serviceConfig,
  startService,
  stopAllServices,
  treeContent,
  treeHash,
  type Workspace,
} from './helpers.js'

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
    for (const name of fs.readdirSync(fanDir))
      out.add(
        crypto
          .createHash('sha256')
          .update(fs.readFileSync(path.join(fanDir, name)))
          .digest('hex'),
      )
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
    expect(Object.keys(expected.content)).toEqual(
      expect.arrayContaining(['.env', 'data', 'data/app.db', 'data/uploads/a.txt']),
    )

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
      const h = crypto
        .createHash('sha256')
        .update(fs.readFileSync(path.join(ws.live, f)))
        .digest('hex')
      expect(stored.has(h), `${f} was stored in a backup`).toBe(false)
    }
  })
})

/** Releases A (r1), B (r2), C (r3, adds app/extra.py) deployed over the hand-installed v1 tree. */
async function threeReleases() {
  const ws = makeWorkspace()
  const svc = await startService(ws.live)
  ws.writeConfig(serviceConfig(svc, {checks: {}}))
  const h0 = treeHash(ws.live)
  const deploy = async (v: string) => {
    ws.setVersion(v)
    if (v === 'r3') fs.writeFileSync(path.join(ws.src, 'app', 'extra.py'), 'X = 3\n')
    const d = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(d.exitCode, why(d)).toBe(0)
    return {id: d.json.release as string, hash: treeHash(ws.live)}
  }
  const a = await deploy('r1')
  const b = await deploy('r2')
  const c = await deploy('r3')
  expect(await svc.hello()).toBe('hello r3')
  return {ws, svc, h0, A: a.id, B: b.id, C: c.id, hA: a.hash, hB: b.hash, hC: c.hash}
}

const jsonError = (r: {json: {error: {message: string; hint?: string}}}) =>
  `${r.json.error.message}\n${r.json.error.hint ?? ''}`

describe('rollback', {timeout: 120_000}, () => {
  it('rollback twice: v3 → v2 (service confirms) → v1, the pre-hotctl tree without marker; each adds an undo snapshot', async () => {
    const {ws, svc, h0, hA, A, B} = await twoReleases()
    const list0 = await runCli(['backups', '--json'], {cwd: ws.src})
    expect(list0.json.backups.map((b: {id: string}) => b.id)).toEqual([A, B])

    const r1 = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(r1.exitCode, why(r1)).toBe(0)
    expect(r1.json.outcome).toBe('rolled-back')
    expect(r1.json.snapshot).toBe(B) // taken before deploy B: it holds A
    expect(r1.json.release).toBe(A)
    expect(r1.json.undo).toMatch(/^\d{14}$/)
    expect(r1.json.undoWith).toBe(`hotctl rollback --to ${B}`)
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
    expect(r2.json.snapshot).toBe(A)
    expect(r2.json.release).toBeNull()
    expect(r2.json.undoWith).toBe(`hotctl rollback --to ${A}`)
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
    expect(r3.json.error.message).toContain('no release marker')
    expect(treeHash(ws.live)).toBe(h0)

    // The undo snapshot's own id is not a release: refused, saying which release it holds.
    const byId = await runCli(['rollback', '--to', r1.json.undo, '--json'], {cwd: ws.src})
    expect(byId.exitCode, why(byId)).toBe(2)
    expect(jsonError(byId)).toContain(
      `undo snapshot of rollback ${r1.json.undo}, which holds release ${B} (\`--to ${B}\`)`,
    )

    // Undo the first rollback: --to the release it replaced (its undo snapshot holds it).
    const undo = await runCli(['rollback', '--to', B, '--json'], {cwd: ws.src})
    expect(undo.exitCode, why(undo)).toBe(0)
    expect(undo.json.snapshot).toBe(r1.json.undo)
    expect(readMarker(ws.live)?.id).toBe(B)
    expect((await svc.status()).version).toBe(B)
    expect(await svc.hello()).toBe('hello v3')
  })

  it('rollback --to RELEASE ends with that release live (content, marker, service); --to the live one changes nothing; --to initial', async () => {
    const {ws, svc, h0, hA, hC, A, B, C} = await threeReleases()

    const toA = await runCli(['rollback', '--to', A, '--json'], {cwd: ws.src})
    expect(toA.exitCode, why(toA)).toBe(0)
    expect(toA.json).toMatchObject({
      outcome: 'rolled-back',
      release: A,
      snapshot: B,
      from: C,
      undoWith: `hotctl rollback --to ${C}`,
    })
    expect(toA.json.proof.confirmed).toBe(A)
    expect(treeHash(ws.live)).toBe(hA)
    expect(readMarker(ws.live)?.id).toBe(A)
    expect((await svc.status()).version).toBe(A)
    expect(await svc.hello()).toBe('hello r1')
    expect(fs.existsSync(path.join(ws.live, 'app', 'extra.py'))).toBe(false)
    // The journal records which snapshot the rollback restored (what `backups` trusts it by).
    expect(ws.journal().find((e) => e.event === 'start' && e.opId === toA.json.undo)).toMatchObject({
      op: 'rollback',
      restores: B,
      release: A,
      from: C,
    })

    // Undo it, in human mode: the message says what is live and how to undo.
    const toC = await runCli(['rollback', '--to', C], {cwd: ws.src})
    expect(toC.exitCode, why(toC)).toBe(0)
    expect(toC.stdout).toContain(
      `Rolled back to release ${C} (snapshot ${toA.json.undo}). Undo: hotctl rollback --to ${A}`,
    )
    expect(treeHash(ws.live)).toBe(hC)
    expect((await svc.status()).version).toBe(C)
    expect(await svc.hello()).toBe('hello r3')
    const undoC = ws.backupFiles().at(-1)!.replace('.json', '')

    // Asking for the live release: confirmed, exit 0, nothing snapshotted, restored or journaled.
    const files = ws.backupFiles()
    const journal = ws.journal().length
    const reloads = (await svc.status()).reloads
    const same = await runCli(['rollback', '--to', C, '--json'], {cwd: ws.src})
    expect(same.exitCode, why(same)).toBe(0)
    expect(same.json).toMatchObject({outcome: 'already-live', release: C})
    expect(same.json.proof.confirmed).toBe(C)
    expect(same.json.proof.smoke.length).toBeGreaterThan(0)
    expect(ws.backupFiles()).toEqual(files)
    expect(ws.journal()).toHaveLength(journal)
    expect((await svc.status()).reloads).toBe(reloads) // no reload was triggered
    expect(treeHash(ws.live)).toBe(hC)
    const sameHuman = await runCli(['rollback', '--to', C], {cwd: ws.src})
    expect(sameHuman.exitCode, why(sameHuman)).toBe(0)
    expect(sameHuman.stdout).toContain(`Release ${C} is already live (confirmed); nothing changed.`)

    // `backups` says which release each snapshot holds and which releases --to reaches.
    const list = await runCli(['backups', '--json'], {cwd: ws.src})
    expect(list.exitCode, why(list)).toBe(0)
    expect(list.json.liveRelease).toBe(C)
    expect(list.json.backups.map((b: {id: string; release: string | null}) => [b.id, b.release])).toEqual([
      [A, null],
      [B, A],
      [C, B],
      [toA.json.undo, C],
      [undoC, A],
    ])
    expect(list.json.targets.map((t: {to: string; snapshot: string}) => [t.to, t.snapshot])).toEqual([
      [A, undoC],
      [B, C],
      ['initial', A],
    ])
    expect(list.json.previous).toEqual({to: B, release: B, snapshot: C})
    const human = await runCli(['backups'], {cwd: ws.src})
    expect(human.exitCode, why(human)).toBe(0)
    const row = (id: string) => human.stdout.split('\n').find((l) => l.startsWith(id)) ?? ''
    expect(row(A)).toMatch(/deploy\s+before hotctl .*--to initial$/)
    expect(row(B)).toContain('older copy: --to')
    expect(row(C)).toMatch(new RegExp(`deploy\\s+${B} .*--to ${B} \\(or plain \`hotctl rollback\`\\)$`))
    expect(row(toA.json.undo)).toMatch(/rollback\s+\d{14} .*holds the live release$/)
    expect(human.stdout).toContain(`--to       ${A}, ${B}, initial`)

    // The explicit way back to the tree hotctl found.
    const initial = await runCli(['rollback', '--to', 'initial', '--json'], {cwd: ws.src})
    expect(initial.exitCode, why(initial)).toBe(0)
    expect(initial.json).toMatchObject({release: null, snapshot: A, undoWith: `hotctl rollback --to ${C}`})
    expect(treeHash(ws.live)).toBe(h0)
    expect(fs.existsSync(path.join(ws.live, MARKER))).toBe(false)
    expect(await svc.hello()).toBe('hello v1')
  })

  it('refused --to values exit 2, say what the id is and list the valid targets; nothing changes', async () => {
    const {ws, svc, A, B, C} = await threeReleases()
    // A plain rollback (B live, its undo holds C), then a deploy whose smoke fails (restored).
    const rb = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(rb.exitCode, why(rb)).toBe(0)
    const U = rb.json.undo as string
    ws.setVersion('r4', {calcBroken: true})
    const bad = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(bad.exitCode, why(bad)).toBe(3)
    const D = bad.json.release as string
    expect(readMarker(ws.live)?.id).toBe(B)

    const refused = async (to: string, says: string[], hint: string) => {
      const files = ws.backupFiles()
      const hash = treeHash(ws.live)
      const r = await runCli(['rollback', '--to', to, '--json'], {cwd: ws.src})
      expect(r.exitCode, `${to}: ${why(r)}`).toBe(2)
      expect(r.json.ok).toBe(false)
      for (const s of says) expect(r.json.error.message, to).toContain(s)
      expect(r.json.error.hint, to).toContain(hint)
      expect(ws.backupFiles(), to).toEqual(files) // no undo snapshot for a refused rollback
      expect(treeHash(ws.live), to).toBe(hash)
      return r
    }
    const targets = `Valid --to targets, newest first: ${C}, ${A}, initial (the tree from before hotctl); release ${B} is live.`
    const never = await refused(
      D,
      [
        `release ${D} was never live: its deploy was restored at `,
        '(smoke failed: calc',
        `backup taken before deploy ${D}, which holds release ${B}`,
      ],
      targets,
    )
    expect(never.json.error.targets).toEqual([C, A, 'initial'])
    await refused(
      U,
      [`no release ${U} on this target`, `undo snapshot of rollback ${U}, which holds release ${C} (\`--to ${C}\`)`],
      targets,
    )
    await refused('20990101000000', ['no release 20990101000000 on this target'], targets)
    for (const malformed of ['../x', '2025', '20251301000000']) await refused(malformed, [malformed], targets)
    const human = await runCli(['rollback', '--to', D], {cwd: ws.src})
    expect(human.exitCode).toBe(2)
    expect(human.stderr).toContain(`release ${D} was never live`)
    expect(human.stderr).toContain(targets)

    // `backups` says the same: D is no target, and why.
    const list = await runCli(['backups', '--json'], {cwd: ws.src})
    expect(list.json.neverLive).toMatchObject([{release: D, result: 'restored'}])
    expect((await runCli(['backups'], {cwd: ws.src})).stdout).toContain(
      `not a target: release ${D} was never live: its deploy was restored`,
    )

    // Prune everything but the two newest snapshots (and the newest holding a good release): A and
    // the tree from before hotctl are gone.
    const prune = await runCli(['backups', 'prune', '--keep', '2', '--json'], {cwd: ws.src})
    expect(prune.exitCode, why(prune)).toBe(0)
    expect(ws.backupFiles()).toEqual([`${U}.json`, `${D}.json`])
    const after = `Valid --to targets, newest first: ${C}; release ${B} is live.`
    await refused(A, [`release ${A} was live, but no snapshot of it is left (pruned`], after)
    await refused('initial', ['no snapshot holds the tree from before hotctl'], after)

    // And the one that is left still works.
    const toC = await runCli(['rollback', '--to', C, '--json'], {cwd: ws.src})
    expect(toC.exitCode, why(toC)).toBe(0)
    expect((await svc.status()).version).toBe(C)

    // --to the live release while the service is down: the preflight's status probe refuses it, exit 1, nothing changed.
    await svc.stop()
    const files = ws.backupFiles()
    const hash = treeHash(ws.live)
    const down = await runCli(['rollback', '--to', C, '--json'], {cwd: ws.src})
    expect(down.exitCode, why(down)).toBe(1)
    expect(down.json.error.message).toMatch(/preflight failed: status of service: .*no answer/)
    expect(down.json.error.hint).toContain('Nothing was touched')
    expect(ws.backupFiles()).toEqual(files)
    expect(treeHash(ws.live)).toBe(hash)
  })
})

/** Rewrites `file` in place with same-size content and puts its mtime back (touch -r, to the ns): only its ctime moves. */
function editKeepingSizeAndMtime(file: string, content: string): void {
  const before = fs.statSync(file, {bigint: true})
  expect(BigInt(Buffer.byteLength(content))).toBe(before.size)
  const ref = `${file}.mtime-ref`
  fs.writeFileSync(ref, '')
  expect(spawnSync('touch', ['-m', '-r', file, ref]).status).toBe(0)
  fs.writeFileSync(file, content)
  expect(spawnSync('touch', ['-m', '-r', ref, file]).status).toBe(0)
  fs.rmSync(ref)
  const after = fs.statSync(file, {bigint: true})
  expect(after.mtimeNs).toBe(before.mtimeNs)
  expect(after.ctimeNs).not.toBe(before.ctimeNs)
}

// The restore compares the backup's directory listings with those of the undo snapshot it has just
// taken of the live tree, and reads only those that differ: a live file changed behind hotctl's
// back must make its directory's listing differ, even with its size and mtime kept.
describe('rollback over a live tree edited behind hotctl', {timeout: 90_000}, () => {
  it('a live file edited in place keeping its size and mtime is put back; the undo snapshot holds the edit', async () => {
    const {ws, svc, hA, B} = await twoReleases()
    // static/style.css is the same in v2 and v3: only the edit makes static/ differ from the backup.
    const css = path.join(ws.live, 'static', 'style.css')
    const original = fs.readFileSync(css, 'utf8')
    const edited = original.replace('black', 'white')
    editKeepingSizeAndMtime(css, edited)

    const r = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.outcome).toBe('rolled-back')
    expect(fs.readFileSync(css, 'utf8')).toBe(original)
    expect(treeHash(ws.live)).toBe(hA)
    expect(await svc.hello()).toBe('hello v2')

    // Undoing the rollback brings back the tree as it was, edit included.
    const undo = await runCli(['rollback', '--to', B, '--json'], {cwd: ws.src})
    expect(undo.exitCode, why(undo)).toBe(0)
    expect(fs.readFileSync(css, 'utf8')).toBe(edited)
  })
})

// A rollback leaves the record of the release it puts back (deployed/<release>.json) with its
// directories' new signatures, so the next deploy's backup reuses their listings: that backup must
// still see a file edited behind hotctl's back after the rollback.
describe('deploy → rollback → deploy → rollback', {timeout: 120_000}, () => {
  it('each rollback puts back the release before; an edit after the first (size and mtime kept) is in the next backup and comes back', async () => {
    const {ws, svc, hA, A, B} = await twoReleases()
    const r1 = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(r1.exitCode, why(r1)).toBe(0)
    expect(r1.json.release).toBe(A)
    expect(treeHash(ws.live)).toBe(hA)
    const clean = await runCli(['diff', '--json'], {cwd: ws.src})
    expect(clean.exitCode, why(clean)).toBe(0)
    expect([...clean.json.added, ...clean.json.changed, ...clean.json.deleted]).toEqual([])

    // static/style.css is the same in v2, v3 and v4: the deploy of v4 puts it back by content,
    // after its backup recorded the edit.
    const css = path.join(ws.live, 'static', 'style.css')
    const original = fs.readFileSync(css, 'utf8')
    const edited = original.replace('black', 'white')
    editKeepingSizeAndMtime(css, edited)
    ws.setVersion('v4')
    const c = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(c.exitCode, why(c)).toBe(0)
    const C = c.json.release as string
    expect(c.json.changes.changed).toEqual(expect.arrayContaining(['app/handlers.py', 'static/style.css']))
    expect(fs.readFileSync(css, 'utf8')).toBe(original)
    expect(await svc.hello()).toBe('hello v4')
    const hC = treeHash(ws.live)

    const r2 = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(r2.exitCode, why(r2)).toBe(0)
    expect(r2.json.release).toBe(A)
    expect(r2.json.snapshot).toBe(C) // the backup taken before deploy C
    expect(readMarker(ws.live)?.id).toBe(A)
    expect(await svc.hello()).toBe('hello v2')
    expect(fs.readFileSync(css, 'utf8')).toBe(edited)
    // Against release A as deployed, the edit is still what differs.
    const drift = await runCli(['diff', '--json'], {cwd: ws.src})
    expect(drift.json.changed.map((e: {path: string}) => e.path)).toEqual(['static/style.css'])
    expect([...drift.json.added, ...drift.json.deleted]).toEqual([])

    // Back and forth once more: the undo of the second rollback, then a rollback again.
    const undo = await runCli(['rollback', '--to', C, '--json'], {cwd: ws.src})
    expect(undo.exitCode, why(undo)).toBe(0)
    expect(treeHash(ws.live)).toBe(hC)
    const r3 = await runCli(['rollback', '--to', A, '--json'], {cwd: ws.src})
    expect(r3.exitCode, why(r3)).toBe(0)
    expect(fs.readFileSync(css, 'utf8')).toBe(edited)
    expect(readMarker(ws.live)?.id).toBe(A)
    const b = await runCli(['rollback', '--to', B, '--json'], {cwd: ws.src})
    expect(b.exitCode, why(b)).toBe(0)
    expect(await svc.hello()).toBe('hello v3')
    const verify = await runCli(['backups', 'verify', '--json'], {cwd: ws.src})
    expect(verify.exitCode, why(verify)).toBe(0)
  })
})
