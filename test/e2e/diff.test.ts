import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {makeWorkspace, removeWorkspaces, requireBuild, runCli} from './helpers.js'

beforeAll(requireBuild)
afterAll(removeWorkspaces)

const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`
const paths = (es: {path: string}[]) => es.map((e) => e.path)

describe('hotctl diff and backups show', {timeout: 120_000}, () => {
  it('shows hand edits on the server against the live release as deployed, between releases, snapshots and live', async () => {
    const ws = makeWorkspace()
    ws.writeConfig({target: '../live', protect: ['data/', '.env']})
    ws.setVersion('v2')
    const d1 = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(d1.exitCode, why(d1)).toBe(0)
    const r1 = d1.json.release as string

    const clean = await runCli(['diff', '--json'], {cwd: ws.src})
    expect(clean.exitCode, why(clean)).toBe(0)
    expect(clean.json.a.label).toBe(`release ${r1} as deployed`)
    expect(clean.json.b.ref).toBe('live')
    expect([...clean.json.added, ...clean.json.changed, ...clean.json.deleted]).toEqual([])
    expect((await runCli(['diff'], {cwd: ws.src})).stdout).toContain('No differences.')

    // Hand edits on the server; protected content changes too, and is not a difference.
    const handlers = path.join(ws.live, 'app/handlers.py')
    const before = fs.statSync(handlers).size
    const hotfix = 'HOTFIX = "edited on the server"\n'
    fs.appendFileSync(handlers, hotfix)
    fs.writeFileSync(path.join(ws.live, 'app/debug.py'), 'print("debug")\n')
    fs.rmSync(path.join(ws.live, 'static/style.css'))
    fs.writeFileSync(path.join(ws.live, 'data/app.db'), crypto.randomBytes(100))

    const edited = await runCli(['diff', '--json'], {cwd: ws.src})
    expect(edited.exitCode, why(edited)).toBe(0)
    expect(edited.json.added).toEqual([{path: 'app/debug.py', type: 'file', after: 15}])
    expect(edited.json.changed).toEqual([
      {path: 'app/handlers.py', type: 'file', before, after: before + hotfix.length},
    ])
    expect(edited.json.deleted).toEqual([{path: 'static/style.css', type: 'file', before: 23}])

    const human = await runCli(['diff'], {cwd: ws.src})
    expect(human.stdout).toContain(`--- release ${r1} as deployed\n+++ live\n`)
    expect(human.stdout).toMatch(/A {2}app\/debug\.py +15 B/)
    expect(human.stdout).toMatch(new RegExp(`M {2}app/handlers\\.py +${before} B → ${before + hotfix.length} B`))
    expect(human.stdout).toMatch(/D {2}static\/style\.css +23 B/)
    expect(human.stdout).toContain('3 path(s): 1 added, 1 changed, 1 deleted')

    const stat = await runCli(['diff', '--stat'], {cwd: ws.src})
    expect(stat.stdout).toContain('3 path(s): 1 added, 1 changed, 1 deleted')
    expect(stat.stdout).not.toContain('app/debug.py')

    const patch = await runCli(['diff', '--patch'], {cwd: ws.src})
    expect(patch.exitCode, why(patch)).toBe(0)
    expect(patch.stdout).toContain(
      '--- a/app/handlers.py\n+++ b/app/handlers.py\n@@ -7,3 +7,4 @@\n \n def calc(a, b):\n     return a + b\n+HOTFIX = "edited on the server"\n',
    )
    expect(patch.stdout).toContain('--- /dev/null\n+++ b/app/debug.py\n@@ -0,0 +1 @@\n+print("debug")\n')
    expect(patch.stdout).toContain('--- a/static/style.css\n+++ /dev/null\n@@ -1 +0,0 @@\n-body { color: black; }')

    // The next deploy replaces the edited tree (its backup holds it) with v3.
    ws.setVersion('v3')
    const d2 = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(d2.exitCode, why(d2)).toBe(0)
    const r2 = d2.json.release as string

    const releases = await runCli(['diff', r1, r2, '--json'], {cwd: ws.src})
    expect(releases.exitCode, why(releases)).toBe(0)
    expect(releases.json.a.label).toBe(`release ${r1} as deployed`)
    expect(paths(releases.json.changed)).toEqual(['app/handlers.py'])
    expect([...releases.json.added, ...releases.json.deleted]).toEqual([])

    // The snapshot taken by deploy 2 holds release 1 with the hand edits.
    const snap = await runCli(['diff', r1, `snapshot:${r2}`, '--json'], {cwd: ws.src})
    expect(snap.exitCode, why(snap)).toBe(0)
    expect(snap.json.b.label).toBe(`snapshot ${r2} (holds release ${r1})`)
    expect(paths(snap.json.added)).toEqual(['app/debug.py'])
    expect(paths(snap.json.changed)).toEqual(['app/handlers.py'])
    expect(paths(snap.json.deleted)).toEqual(['static/style.css'])

    // initial: the tree from before hotctl (held by deploy 1's backup).
    const initial = await runCli(['diff', 'initial', '--json'], {cwd: ws.src})
    expect(initial.exitCode, why(initial)).toBe(0)
    expect(paths(initial.json.added)).toEqual(['hotctl.config.yaml'])
    expect(paths(initial.json.changed)).toEqual(['app/handlers.py'])

    const show = await runCli(['backups', 'show', r2, '--json'], {cwd: ws.src})
    expect(show.exitCode, why(show)).toBe(0)
    expect(show.json.backup).toMatchObject({id: r2, reason: 'deploy', release: r1, to: r1})
    const files = new Map(show.json.files.map((f: {path: string}) => [f.path, f]))
    expect(files.get('app/debug.py')).toMatchObject({type: 'file', mode: '644', size: 15})
    const edit = fs.readFileSync(path.join(ws.src, 'app/handlers.py'), 'utf8').replace('v3', 'v2') + hotfix
    expect((files.get('app/handlers.py') as {hash: string}).hash).toBe(
      crypto.createHash('sha256').update(edit).digest('hex'),
    )
    expect(files.get('app')).toMatchObject({type: 'dir'})
    expect(files.has('static/style.css')).toBe(false)
    expect(files.has('data/app.db')).toBe(false) // protected: never backed up
    const showHuman = await runCli(['backups', 'show', r2], {cwd: ws.src})
    expect(showHuman.stdout).toContain(`Holds     release ${r1}`)
    expect(showHuman.stdout).toContain(`Restore   hotctl rollback --to ${r1}`)
    expect(showHuman.stdout).toMatch(/0644 {2}app\/debug\.py +15 B/)

    const unknown = await runCli(['backups', 'show', '20000101000000'], {cwd: ws.src})
    expect(unknown.exitCode).toBe(2)
    expect(unknown.stderr).toContain('no complete snapshot 20000101000000')
    const bad = await runCli(['diff', 'yesterday'], {cwd: ws.src})
    expect(bad.exitCode).toBe(2)
    expect(bad.stderr).toContain('diff: yesterday: not a tree name')
  })

  it('names that are not plain text (a newline, bytes that are not UTF-8) are listed, read and patched byte-exact', async () => {
    const ws = makeWorkspace()
    ws.writeConfig({target: '../live', protect: ['data/', '.env']})
    const raw = (root: string) => Buffer.concat([Buffer.from(`${root}/app/caf`), Buffer.from([0xe9, 0x2e, 0x70, 0x79])])
    fs.writeFileSync(raw(ws.src), 'x = 1\n')
    fs.writeFileSync(path.join(ws.src, 'app', 'line\nbreak.txt'), 'one\n')
    const d = await runCli(['deploy'], {cwd: ws.src})
    expect(d.exitCode, why(d)).toBe(0)
    fs.appendFileSync(raw(ws.live), 'y = 2\n')
    fs.appendFileSync(path.join(ws.live, 'app', 'line\nbreak.txt'), 'two\n')
    const r = await runCli(['diff', '--json', '--patch'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    expect(paths(r.json.changed)).toEqual(['app/caf\udce9.py', 'app/line\nbreak.txt'])
    expect(r.json.patch).toContain(
      '--- a/"app/caf\\udce9.py"\n+++ b/"app/caf\\udce9.py"\n@@ -1 +1,2 @@\n x = 1\n+y = 2\n',
    )
    expect(r.json.patch).toContain('--- a/"app/line\\nbreak.txt"\n+++ b/"app/line\\nbreak.txt"\n')
    const human = await runCli(['diff'], {cwd: ws.src})
    expect(human.stdout).toContain('M  "app/line\\nbreak.txt"')
  })

  it('refuses the default diff when nothing was deployed by hotctl, saying what to name', async () => {
    const ws = makeWorkspace()
    ws.writeConfig({target: '../live', protect: ['data/', '.env']})
    const r = await runCli(['diff'], {cwd: ws.src})
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('has no release marker')
    expect(r.stderr).toContain('hotctl diff initial live')
  })
})
