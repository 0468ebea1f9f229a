import fs from 'node:fs'
import path from 'node:path'
import {spawnSync} from 'node:child_process'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {freshCopy, makeWorkspace, removeWorkspaces, requireBuild, runCli} from './helpers.js'

beforeAll(requireBuild)
afterAll(removeWorkspaces)

const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`
const PROTECT = ['data/', '.env']

/** Sets `file`'s mtime to `ref`'s, to the nanosecond (touch -r: a Date would round it). */
function copyMtime(ref: string, file: string): void {
  expect(spawnSync('touch', ['-m', '-r', ref, file]).status).toBe(0)
}

/** Rewrites `file` in place with same-size content and puts its mtime back: only its ctime moves. */
function editKeepingSizeAndMtime(file: string, content: string): void {
  const before = fs.statSync(file, {bigint: true})
  expect(BigInt(Buffer.byteLength(content))).toBe(before.size)
  const ref = `${file}.mtime-ref`
  fs.writeFileSync(ref, '')
  copyMtime(file, ref)
  fs.writeFileSync(file, content)
  copyMtime(ref, file)
  fs.rmSync(ref)
  const after = fs.statSync(file, {bigint: true})
  expect(after.mtimeNs).toBe(before.mtimeNs)
  expect(after.ctimeNs).not.toBe(before.ctimeNs)
}

// Planning reads the target's hashes from the record of the last deploy, checked by stat: a live
// file changed behind hotctl's back must still be seen, even when size and mtime are unchanged.
describe('planning from the record of the last deploy', {timeout: 60_000}, () => {
  it('a live file edited in place keeping its size and mtime is put back by the next deploy', async () => {
    const ws = makeWorkspace()
    ws.writeConfig({protect: PROTECT, target: ws.live})
    const first = await runCli(['deploy', '--skip-checks', '--json'], {cwd: ws.src})
    expect(first.exitCode, why(first)).toBe(0)

    const rel = 'app/handlers.py'
    const live = path.join(ws.live, rel)
    // Source and live agree on size and mtime (as after cp -a or rsync -a): rsync's quick check
    // alone would call the file unchanged, whatever its content.
    copyMtime(live, path.join(ws.src, rel))
    const original = fs.readFileSync(live, 'utf8')
    const tampered = original.replace(/v1/g, 'v9')
    expect(tampered).not.toBe(original)
    editKeepingSizeAndMtime(live, tampered)

    const dry = await runCli(['deploy', '--skip-checks', '--dry-run', '--json'], {cwd: ws.src})
    expect(dry.exitCode, why(dry)).toBe(0)
    expect(dry.json.changes.changed).toEqual([rel])

    const r = await runCli(['deploy', '--skip-checks', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.changes.changed).toEqual([rel])
    expect(fs.readFileSync(live, 'utf8')).toBe(original)
    const again = await runCli(['deploy', '--skip-checks', '--json'], {cwd: ws.src})
    expect(again.json.outcome, why(again)).toBe('nothing-to-deploy')
  })

  it('a fresh copy of the source (every mtime new) deploys only what differs; an unchanged one writes nothing', async () => {
    const ws = makeWorkspace()
    ws.writeConfig({protect: PROTECT, target: ws.live})
    const first = await runCli(['deploy', '--skip-checks', '--json'], {cwd: ws.src})
    expect(first.exitCode, why(first)).toBe(0)

    const ci = path.join(ws.dir, 'ci')
    freshCopy(ws.src, ci)
    const inodesBefore = fs.statSync(path.join(ws.live, 'app/handlers.py')).ino
    const same = await runCli(['deploy', '--skip-checks', '--json'], {cwd: ci})
    expect(same.exitCode, why(same)).toBe(0)
    expect(same.json.outcome).toBe('nothing-to-deploy')
    expect(fs.statSync(path.join(ws.live, 'app/handlers.py')).ino).toBe(inodesBefore)

    // Same size, other content, in a fresh copy; and a live file tampered keeping size and mtime.
    fs.rmSync(ci, {recursive: true})
    ws.setVersion('v2')
    freshCopy(ws.src, ci)
    const other = 'static/style.css'
    const otherLive = path.join(ws.live, other)
    const otherContent = fs.readFileSync(otherLive, 'utf8')
    editKeepingSizeAndMtime(otherLive, otherContent.replace(/[a-z]/, 'Q'))
    const r = await runCli(['deploy', '--skip-checks', '--json'], {cwd: ci})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.changes.changed).toEqual(['app/handlers.py', other])
    expect(fs.readFileSync(otherLive, 'utf8')).toBe(otherContent)
  })
})
