/**
 * Backups on an SSH host (src/target/ssh-backups.ts) end to end through a real sshd: packs of the
 * copies each backup adds, a manifest naming each object's pack, restore from them, prune's
 * garbage collection, damage found before a restore writes, and backups of the earlier layout
 * (hard-link trees, manifests without packs).
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {
  makeWorkspace,
  removeWorkspaces,
  requireBuild,
  runCli,
  treeHash,
  type Workspace,
  writeFiles,
} from '../e2e/helpers.js'
import {type SshHost, startSshHost, stopSshHosts} from './sshd-host.mjs'

const why = (r: {stdout: string; stderr: string}) =>
  `stdout:\n${r.stdout.slice(0, 3000)}\nstderr:\n${r.stderr.slice(0, 3000)}`

let host: SshHost
beforeAll(async () => {
  requireBuild()
  host = await startSshHost()
})
afterAll(async () => {
  await stopSshHosts()
  removeWorkspaces()
})

function remote(ws: Workspace, cfg: Record<string, unknown> = {}) {
  ws.writeConfig({
    target: `root@${host.alias}:${ws.live}`,
    protect: ['data/', '.env'],
    ...cfg,
    ssh: {config: host.sshConfig, timeout: '20s'},
  })
}

const backupIds = (ws: Workspace) =>
  fs
    .readdirSync(path.join(ws.stateDir, 'backups'))
    .filter((n) => /^\d{14}\.json$/.test(n))
    .map((n) => n.slice(0, 14))
    .sort()
const pack = (ws: Workspace, id: string, rel = '') => path.join(ws.stateDir, 'backups', id, rel)

async function deploy(ws: Workspace, version: string) {
  ws.setVersion(version)
  const r = await runCli(['deploy', '--json'], {cwd: ws.src})
  expect(r.exitCode, why(r)).toBe(0)
  return r
}

describe('SSH backups: packs and manifests on the host', {timeout: 240_000}, () => {
  it('prune removes the objects no kept backup uses, keeps those later backups reuse; the rest verifies and restores', async () => {
    const ws = makeWorkspace()
    remote(ws, {keep: 2})
    await deploy(ws, 'v2')
    const first = backupIds(ws)[0]!
    await deploy(ws, 'v3')
    const v4 = await deploy(ws, 'v4')
    const liveV4 = treeHash(ws.live)
    await deploy(ws, 'v5')
    expect(backupIds(ws)).not.toContain(first)
    // The first backup's copy of a file that changed since is gone; one every later backup reuses stays.
    expect(fs.existsSync(pack(ws, first, 'app/handlers.py'))).toBe(false)
    expect(fs.existsSync(pack(ws, first, 'README.md'))).toBe(true)
    const verify = await runCli(['backups', 'verify', '--json'], {cwd: ws.src})
    expect(verify.exitCode, why(verify)).toBe(0)
    const back = await runCli(['rollback', '--to', v4.json.release, '--json'], {cwd: ws.src})
    expect(back.exitCode, why(back)).toBe(0)
    expect(treeHash(ws.live)).toBe(liveV4)

    // `backups prune`: a dry run counts and removes nothing; then keep 1 removes the rest's copies.
    const ids = backupIds(ws)
    const dry = await runCli(['backups', 'prune', '--keep', '1', '--dry-run', '--json'], {cwd: ws.src})
    expect(dry.exitCode, why(dry)).toBe(0)
    expect(backupIds(ws)).toEqual(ids)
    expect(dry.json.freedBytes, why(dry)).toBeGreaterThan(0)
    const newest = ids.at(-1)!
    const shown = await runCli(['backups', 'show', newest, '--json'], {cwd: ws.src})
    expect(shown.exitCode, why(shown)).toBe(0)
    expect(JSON.stringify(shown.json)).toContain('app/handlers.py')
    const pruned = await runCli(['backups', 'prune', '--keep', '1', '--json'], {cwd: ws.src})
    expect(pruned.exitCode, why(pruned)).toBe(0)
    // The newest stays, and the newest known-good one (pinned) if another: a kept backup between removed ones.
    expect(backupIds(ws)).toContain(newest)
    expect(backupIds(ws).length).toBeLessThan(ids.length)
    const left = await runCli(['backups', 'verify', '--json'], {cwd: ws.src})
    expect(left.exitCode, why(left)).toBe(0)
  })

  it('a backup manifest is a delta from the last full one; prune keeps that full manifest while a kept backup needs it, and removes it after', async () => {
    const ws = makeWorkspace()
    remote(ws, {keep: 2})
    // A delta is `<id>.delta.json.gz`: a hotctl that predates deltas finds no manifest, never a partial one.
    const manifestOf = (id: string) => {
      const delta = path.join(ws.stateDir, 'backups', `${id}.delta.json.gz`)
      const file = fs.existsSync(delta) ? delta : path.join(ws.stateDir, 'backups', `${id}.manifest.json.gz`)
      return JSON.parse(zlib.gunzipSync(fs.readFileSync(file)).toString('utf8')) as {
        base?: string
        baseSha?: string
        entries: unknown[]
      }
    }
    const metaOf = (id: string) =>
      JSON.parse(fs.readFileSync(path.join(ws.stateDir, 'backups', `${id}.json`), 'utf8')) as {
        root: Record<string, string>
      }
    const v2 = await deploy(ws, 'v2')
    const full = v2.json.backup.id as string
    expect(manifestOf(full).base).toBeUndefined()
    const liveV2 = treeHash(ws.live)
    const v3 = await deploy(ws, 'v3')
    const delta = v3.json.backup.id as string
    // Only what changed since the full manifest: the handlers and the release marker.
    expect(manifestOf(delta).base).toBe(full)
    expect(fs.existsSync(path.join(ws.stateDir, 'backups', `${delta}.manifest.json.gz`))).toBe(false)
    expect(metaOf(delta).root.base).toBe(full)
    expect(manifestOf(delta).entries.length).toBeLessThan(manifestOf(full).entries.length)
    await deploy(ws, 'v4')
    // keep 2: the full backup is pruned, its manifest stays for the deltas kept.
    expect(backupIds(ws)).not.toContain(full)
    expect(fs.existsSync(path.join(ws.stateDir, 'backups', `${full}.manifest.json.gz`))).toBe(true)
    const verify = await runCli(['backups', 'verify', '--json'], {cwd: ws.src})
    expect(verify.exitCode, why(verify)).toBe(0)
    const back = await runCli(['rollback', '--to', v2.json.release, '--json'], {cwd: ws.src})
    expect(back.exitCode, why(back)).toBe(0)
    expect(treeHash(ws.live)).toBe(liveV2)

    // A delta that would outgrow the rule is a full manifest again; once no kept backup needs the
    // old full manifest, prune removes it.
    for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(ws.src, `many-${i}.txt`), `file ${i}\n`)
    await deploy(ws, 'v5')
    const again = (await deploy(ws, 'v6')).json.backup.id as string
    expect(manifestOf(again).base).toBeUndefined()
    await deploy(ws, 'v7')
    await deploy(ws, 'v8')
    expect(fs.existsSync(path.join(ws.stateDir, 'backups', `${full}.manifest.json.gz`))).toBe(false)
    // The deltas of pruned backups went with their metadata.
    const names = fs.readdirSync(path.join(ws.stateDir, 'backups'))
    for (const n of names.filter((x) => x.endsWith('.delta.json.gz')))
      expect(names).toContain(n.replace('.delta.json.gz', '.json'))
    const left = await runCli(['backups', 'verify', '--json'], {cwd: ws.src})
    expect(left.exitCode, why(left)).toBe(0)
  })

  it('a damaged full manifest a delta changes is damage of the backup that needs it', async () => {
    const ws = makeWorkspace()
    remote(ws)
    const full = (await deploy(ws, 'v2')).json.backup.id as string
    const delta = (await deploy(ws, 'v3')).json.backup.id as string
    const gz = path.join(ws.stateDir, 'backups', `${full}.manifest.json.gz`)
    const text = zlib.gunzipSync(fs.readFileSync(gz)).toString('utf8')
    fs.writeFileSync(gz, zlib.gzipSync(text.replace('handlers.py', 'handlerz.py')))
    const verify = await runCli(['backups', 'verify', '--json'], {cwd: ws.src})
    expect(verify.exitCode, why(verify)).toBe(1)
    const damaged = verify.json.backups.filter((b: {ok: boolean}) => !b.ok).map((b: {id: string}) => b.id)
    expect(damaged.sort()).toEqual([full, delta].sort())
  })

  it("the full manifest parsed ahead (the controller's hint) is used only when the host's metadata names it", async () => {
    const ws = makeWorkspace()
    remote(ws)
    const env = {XDG_CACHE_HOME: path.join(ws.dir, 'cache')}
    const at = async (version: string) => {
      ws.setVersion(version)
      const r = await runCli(['deploy', '--json'], {cwd: ws.src, env})
      expect(r.exitCode, why(r)).toBe(0)
      return r
    }
    const full = (await at('v2')).json.backup.id as string
    const v3 = await at('v3')
    // The hint names the full backup with another manifest, valid by its own sha256 in the cache:
    // its objects in the wrong pack (a manifest the host never wrote for that backup).
    const dir = path.join(ws.dir, 'cache', 'hotctl', 'ssh-manifests')
    const hints = fs.readdirSync(dir).filter((n) => n.startsWith('last-'))
    expect(hints).toHaveLength(1)
    const [id, sha] = fs.readFileSync(path.join(dir, hints[0]!), 'utf8').split(' ')
    expect(id).toBe(full)
    const text = fs.readFileSync(path.join(dir, `${sha}.json`), 'utf8')
    const forged = text.replace(`"backups/${full}"`, `"backups/${v3.json.backup.id}"`)
    expect(forged).not.toBe(text)
    const forgedSha = crypto.createHash('sha256').update(forged).digest('hex')
    fs.writeFileSync(path.join(dir, `${forgedSha}.json`), forged)
    fs.writeFileSync(path.join(dir, hints[0]!), `${full} ${forgedSha}`)
    await at('v4')
    const verify = await runCli(['backups', 'verify', '--json'], {cwd: ws.src, env})
    expect(verify.exitCode, why(verify)).toBe(0)
    const back = await runCli(['rollback', '--to', v3.json.release, '--json'], {cwd: ws.src, env})
    expect(back.exitCode, why(back)).toBe(0)
  })

  it('a damaged object is refused before the restore writes anything (exit 1); only what the restore copies is read', async () => {
    const ws = makeWorkspace()
    remote(ws)
    await deploy(ws, 'v2')
    const [first] = backupIds(ws)
    await deploy(ws, 'v3')
    const victim = pack(ws, first!, 'app/handlers.py')
    const bytes = fs.readFileSync(victim)
    bytes[0] = bytes[0]! ^ 1
    fs.writeFileSync(victim, bytes)
    fs.rmSync(pack(ws, first!, 'README.md')) // equal in live: the restore does not need it
    const before = treeHash(ws.live)
    const r = await runCli(['rollback', '--to', 'initial', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(1)
    expect(r.json.error.message).toContain(`backup ${first} is damaged`)
    expect(r.json.error.damage.map((d: {path: string}) => d.path)).toEqual(['app/handlers.py'])
    expect(treeHash(ws.live)).toBe(before)
    // `backups verify` reads every object: both are named.
    const verify = await runCli(['backups', 'verify', '--json'], {cwd: ws.src})
    expect(verify.exitCode, why(verify)).toBe(1)
    const damaged = verify.json.damage.map((d: {path: string; problem: string}) => `${d.path} ${d.problem}`).sort()
    expect(damaged).toEqual(expect.arrayContaining(['README.md missing', 'app/handlers.py hash-mismatch']))
  })

  it('a backup of the earlier layout (a whole tree, manifest without packs) restores, and later backups reuse its files', async () => {
    const ws = makeWorkspace()
    remote(ws)
    const initial = treeHash(ws.live)
    await deploy(ws, 'v2')
    const [legacy] = backupIds(ws)
    // The first backup holds the whole tree, as a hard-link tree did: give it a manifest of the
    // earlier layout (no packs) and the metadata naming that manifest's sha256.
    const gz = path.join(ws.stateDir, 'backups', `${legacy}.manifest.json.gz`)
    const m = JSON.parse(zlib.gunzipSync(fs.readFileSync(gz)).toString('utf8')) as {v: number; entries: unknown[][]}
    expect(m.v).toBe(2)
    const v1 = JSON.stringify({
      entries: m.entries.map((e) => (e[1] === 'f' ? e.slice(0, 5) : e[1] === 'l' ? e.slice(0, 4) : e)),
    })
    fs.writeFileSync(gz, zlib.gzipSync(v1))
    const metaFile = path.join(ws.stateDir, 'backups', `${legacy}.json`)
    const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8'))
    meta.root = {'': crypto.createHash('sha256').update(v1).digest('hex')}
    fs.writeFileSync(metaFile, JSON.stringify(meta))

    const v3 = await deploy(ws, 'v3')
    // The next backup reused the legacy tree's unchanged files.
    expect(fs.existsSync(pack(ws, v3.json.backup.id, 'README.md'))).toBe(false)
    expect(fs.existsSync(pack(ws, v3.json.backup.id, 'app/handlers.py'))).toBe(true)
    const verify = await runCli(['backups', 'verify', '--json'], {cwd: ws.src})
    expect(verify.exitCode, why(verify)).toBe(0)
    const back = await runCli(['rollback', '--to', 'initial', '--json'], {cwd: ws.src})
    expect(back.exitCode, why(back)).toBe(0)
    expect(treeHash(ws.live)).toBe(initial)
  })
  /**
   * A workspace whose target does not exist yet, with more files than a backup links from a tree as
   * deployed (ssh-backups.ts LINK_MIN), deployed once with --create-target: the backup before it
   * was empty, so the next backup's predecessor holds nothing and the tree as deployed holds a copy
   * of every file.
   */
  async function firstDeployed(keep = 5) {
    const ws = makeWorkspace()
    fs.rmSync(ws.live, {recursive: true, force: true})
    writeFiles(
      ws.src,
      Object.fromEntries(Array.from({length: 150}, (_, i) => [`lib/m${i}.py`, `N = ${i}\n`.repeat(i + 1)])),
    )
    remote(ws, {keep})
    const first = await runCli(['deploy', '--create-target', '--json'], {cwd: ws.src})
    expect(first.exitCode, why(first)).toBe(0)
    return {ws, release: first.json.release as string, tree: treeHash(ws.live)}
  }
  const deployedCopy = (ws: Workspace, release: string, rel: string) => path.join(ws.stateDir, 'deployed', release, rel)

  it('the first backup after a first deploy links the copies the tree as deployed holds (never copies them again); it verifies, restores, and outlives that tree', async () => {
    const {ws, release, tree} = await firstDeployed(3)
    const v2 = await deploy(ws, 'v2')
    const id = v2.json.backup.id as string
    for (const rel of ['lib/m7.py', 'lib/m149.py', 'app/handlers.py']) {
      const linked = fs.statSync(pack(ws, id, rel))
      expect(linked.ino, rel).toBe(fs.statSync(deployedCopy(ws, release, rel)).ino)
      expect(linked.ino, `${rel} is never a link to the live file`).not.toBe(fs.statSync(path.join(ws.live, rel)).ino)
    }
    expect(v2.json.backup.added, 'no file content added but the manifest').toBeLessThan(v2.json.backup.bytes / 2)
    const verify = await runCli(['backups', 'verify', '--json'], {cwd: ws.src})
    expect(verify.exitCode, why(verify)).toBe(0)
    // Two more deploys: keep 3 prunes the first tree as deployed, not this backup: its links are its own.
    await deploy(ws, 'v3')
    await deploy(ws, 'v4')
    expect(fs.existsSync(path.join(ws.stateDir, 'deployed', release))).toBe(false)
    expect(backupIds(ws)).toContain(id)
    const again = await runCli(['backups', 'verify', '--json'], {cwd: ws.src})
    expect(again.exitCode, why(again)).toBe(0)
    const back = await runCli(['rollback', '--to', release, '--json'], {cwd: ws.src})
    expect(back.exitCode, why(back)).toBe(0)
    expect(treeHash(ws.live)).toBe(tree)
  })

  it('a copy missing from the tree as deployed: its batch is copied from live instead, and no copy the tree holds is written through a link', async () => {
    const {ws, release, tree} = await firstDeployed()
    fs.rmSync(deployedCopy(ws, release, 'lib/m3.py'))
    const kept = fs.readFileSync(deployedCopy(ws, release, 'lib/m4.py'))
    const v2 = await deploy(ws, 'v2')
    const id = v2.json.backup.id as string
    for (const rel of ['lib/m3.py', 'lib/m4.py']) {
      expect(fs.readFileSync(pack(ws, id, rel), 'utf8')).toBe(fs.readFileSync(path.join(ws.src, rel), 'utf8'))
      expect(fs.statSync(pack(ws, id, rel)).nlink, rel).toBe(1)
    }
    expect(fs.statSync(deployedCopy(ws, release, 'lib/m4.py')).nlink).toBe(1)
    expect(fs.readFileSync(deployedCopy(ws, release, 'lib/m4.py'))).toEqual(kept)
    const verify = await runCli(['backups', 'verify', '--json'], {cwd: ws.src})
    expect(verify.exitCode, why(verify)).toBe(0)
    const back = await runCli(['rollback', '--to', release, '--json'], {cwd: ws.src})
    expect(back.exitCode, why(back)).toBe(0)
    expect(treeHash(ws.live)).toBe(tree)
  })

  it("a file edited on the host behind hotctl's back (same size and mtime) is copied from live, not linked from the tree as deployed", async () => {
    const {ws, release} = await firstDeployed()
    const rel = 'lib/m9.py'
    const file = path.join(ws.live, rel)
    const before = fs.statSync(file)
    const edited = fs.readFileSync(file, 'utf8').replace('N = 9', 'N = 8')
    fs.writeFileSync(file, edited)
    fs.utimesSync(file, before.atime, before.mtime)
    const v2 = await deploy(ws, 'v2')
    const id = v2.json.backup.id as string
    // The backup holds what was live (the edit), the tree as deployed what was deployed.
    expect(fs.readFileSync(pack(ws, id, rel), 'utf8')).toBe(edited)
    expect(fs.statSync(pack(ws, id, rel)).ino).not.toBe(fs.statSync(deployedCopy(ws, release, rel)).ino)
    expect(fs.statSync(pack(ws, id, 'lib/m10.py')).ino).toBe(fs.statSync(deployedCopy(ws, release, 'lib/m10.py')).ino)
    const verify = await runCli(['backups', 'verify', '--json'], {cwd: ws.src})
    expect(verify.exitCode, why(verify)).toBe(0)
  })
})
