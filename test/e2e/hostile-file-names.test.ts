/**
 * File names are bytes: deploy, failed deploy (restore) and rollback must keep every byte a Linux
 * file name can hold (0x01-0xFF except '/'), including names rsync's file list, filter rules or
 * itemized output could mistake for something else, and invalid UTF-8. And a path that changes
 * type (directory ↔ symlink, file ↔ directory) deploys, verifies and restores byte-exact.
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {
  makeWorkspace,
  MARKER,
  removeWorkspaces,
  requireBuild,
  runCli,
  serviceConfig,
  startService,
  stopAllServices,
  type Workspace,
} from './helpers.js'

beforeAll(requireBuild)
afterEach(stopAllServices)
afterAll(removeWorkspaces)

const why = (r: {stdout: string; stderr: string}) =>
  `stdout:\n${r.stdout.slice(0, 3000)}\nstderr:\n${r.stderr.slice(0, 3000)}`

const b = (s: string) => Buffer.from(s, 'latin1')
const join = (...parts: Buffer[]) => Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [p] : [b('/'), p])))

/**
 * Every entry under `root` read as bytes (readdir/readlink with Buffers): relative path (latin1,
 * so one character per byte) → type, mode and content hash or link target (hex).
 */
function byteTree(root: string, skip: (rel: string) => boolean = () => false): Record<string, string> {
  const out: Record<string, string> = {}
  const visit = (rel: Buffer | undefined) => {
    const dir = rel ? join(b(root), rel) : b(root)
    for (const name of fs.readdirSync(dir, {encoding: 'buffer'})) {
      const r = rel ? join(rel, name) : name
      const key = r.toString('latin1')
      if (skip(key)) continue
      const abs = join(b(root), r)
      const st = fs.lstatSync(abs)
      const mode = (st.mode & 0o7777).toString(8)
      if (st.isSymbolicLink()) out[key] = `symlink ${fs.readlinkSync(abs, {encoding: 'buffer'}).toString('hex')}`
      else if (st.isDirectory()) {
        out[key] = `dir ${mode}`
        visit(r)
      } else out[key] = `file ${mode} ${crypto.createHash('sha256').update(fs.readFileSync(abs)).digest('hex')}`
    }
  }
  visit(undefined)
  return out
}

const notOurs = (rel: string) => rel === '.env' || rel === 'data' || rel.startsWith('data/') || rel === MARKER
/** The deployable part of the live tree, to compare with the source. */
const deployed = (ws: Workspace) => byteTree(ws.live, notOurs)
/** The live tree hotctl manages (marker included), to compare before and after a restore. */
const managed = (ws: Workspace) => byteTree(ws.live, (rel) => notOurs(rel) && rel !== MARKER)

function put(root: string, rel: Buffer, content: Buffer = rel): void {
  const abs = join(b(root), rel)
  fs.mkdirSync(abs.subarray(0, abs.lastIndexOf(0x2f)), {recursive: true})
  fs.writeFileSync(abs, content)
}

const specials = [
  // rsync's --files-from comments, and what an escaping scheme might trip on
  '#x',
  ';x',
  '\\#x',
  '\\#101',
  '\\#1',
  '\\#12\n',
  '\\\\#012',
  'x\\#0123',
  '\\',
  'a\\',
  '\\#',
  // options and filter rules
  '-x',
  '--delete',
  '- *',
  '+ *',
  'P x',
  '!',
  'exclude=*',
  // spaces
  ' lead',
  'trail ',
  '  ',
  ' ',
  '\t',
  'tab\there',
  'two\n\nlines',
  // wildcards
  '*',
  '?',
  '[a]',
  '[',
  ']',
  '**',
  'a*b?c[d]',
  // rsync's itemized output, and a symlink arrow
  '>f+++++++++ x',
  '*deleting   y',
  'cL+++++++++ l -> t',
  '.d..t...... .',
  'a -> b',
  // dots
  '...',
  '..x',
  '.x',
  'x.',
]
const invalidUtf8 = [
  [0xff],
  [0xfe, 0xff],
  [0xc3],
  [0xc3, 0x28],
  [0xed, 0xb2, 0x80],
  [0xc0, 0xaf],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0x63, 0x61, 0x66, 0xe9],
]

/** "l\n\xfe -> x": a symlink whose name is not UTF-8 and looks like rsync's `%L` output. */
const LINK = Buffer.from([0x6c, 0x0a, 0xfe, 0x20, 0x2d, 0x3e, 0x20, 0x78])

/**
 * A tree with every byte a name can hold: single-byte names (all but '/' and '.'), each byte inside
 * a name, the specials at the top level and below, invalid UTF-8, directories and symlinks with
 * such names and targets. Each file's content is its own name.
 */
function writeHostile(root: string): void {
  for (let i = 1; i < 256; i++) {
    if (i === 0x2f) continue
    if (i !== 0x2e) put(root, join(b('bytes'), Buffer.from([i])))
    put(root, join(b('inner'), Buffer.from([0x78, i, 0x79])))
  }
  for (const s of specials) {
    put(root, Buffer.from(s))
    put(root, join(b('specials'), Buffer.from(s)))
  }
  for (const bytes of invalidUtf8) put(root, join(b('invalid'), Buffer.from(bytes)))
  const weirdDir = Buffer.from([0x23, 0x0a, 0xff, 0x3b]) // "#\n\xff;"
  put(root, join(weirdDir, b('#inside')))
  put(root, join(weirdDir, Buffer.from([0x5c, 0x23, 0x30, 0x31, 0x32, 0xfe])))
  fs.symlinkSync(Buffer.from([0x62, 0x79, 0x74, 0x65, 0x73, 0x2f, 0xff]), join(b(root), LINK))
  fs.symlinkSync(b('specials/a -> b'), join(b(root), b(';link -> x')))
}

describe('hostile file names', {timeout: 180_000}, () => {
  it('a tree with every byte a name can hold deploys byte-identical; a failed deploy restores it; rollback goes back', async () => {
    const ws = makeWorkspace()
    // The live tree already has hostile names: some to change, some to delete.
    put(ws.live, b('#x'), b('old comment-like content'))
    put(ws.live, b(';gone'))
    put(ws.live, join(b('bytes'), Buffer.from([0x0a])), b('old newline content'))
    put(ws.live, join(b('invalid'), Buffer.from([0xff])), b('old invalid content'))
    put(ws.live, join(Buffer.from([0x67, 0x0a, 0xfe]), b('#old')))
    fs.symlinkSync(Buffer.from([0x6f, 0x0a, 0xfd, 0x5c]), join(b(ws.live), LINK)) // a link the deploy re-points
    const original = managed(ws)
    writeHostile(ws.src)
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc, {checks: {}}))
    ws.setVersion('v2')
    const source = byteTree(ws.src)
    expect(Object.keys(source).length).toBeGreaterThan(600)

    const d = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(d.exitCode, why(d)).toBe(0)
    expect(await svc.hello()).toBe('hello v2')
    expect(deployed(ws)).toEqual(source)
    const afterDeploy = managed(ws)

    // A redeploy of the same tree writes nothing: every name was planned under its own bytes.
    const again = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(again.exitCode, why(again)).toBe(0)
    expect(again.json.outcome, why(again)).toBe('nothing-to-deploy')

    // Change, add and delete hostile names, with a broken release: the restore puts them back.
    put(ws.src, b('#x'), b('changed'))
    put(ws.src, join(b('bytes'), Buffer.from([0x0a])), b('changed'))
    put(ws.src, join(b('invalid'), Buffer.from([0xfe, 0xff])), b('changed'))
    put(ws.src, join(b('new'), Buffer.from([0x3b, 0xff, 0x0a])))
    fs.rmSync(join(b(ws.src), b('specials'), b('\\#101')))
    fs.rmSync(join(b(ws.src), Buffer.from([0x23, 0x0a, 0xff, 0x3b])), {recursive: true})
    fs.rmSync(join(b(ws.src), LINK))
    fs.symlinkSync(Buffer.from([0x6e, 0x65, 0x77, 0xfe, 0x0a]), join(b(ws.src), LINK)) // re-pointed: the restore puts the old target back
    ws.setVersion('v3', {calcBroken: true})
    const failed = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(failed.exitCode, why(failed)).toBe(3)
    expect(failed.json.restore.ok, why(failed)).toBe(true)
    expect(managed(ws)).toEqual(afterDeploy)
    expect(await svc.hello()).toBe('hello v2')

    const rb = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(rb.exitCode, why(rb)).toBe(0)
    expect(managed(ws)).toEqual(original)
    expect(await svc.hello()).toBe('hello v1')
  })
})

describe('a path that changes type', {timeout: 180_000}, () => {
  it('directory ↔ symlink, file ↔ directory and file ↔ symlink deploy, verify, restore byte-exact after a failure, and roll back', async () => {
    const ws = makeWorkspace()
    const w = (root: string, rel: string, content = rel) => put(root, b(rel), b(content))
    for (const root of [ws.src, ws.live]) {
      // Reachable through the new symlink under the same relative names as the old directory's files.
      w(root, 'vendor/lib/a.py', 'A')
      w(root, 'vendor/lib/sub/b.py', 'B')
      w(root, 'conf/app.ini', '[app]\n')
      w(root, 'static2/style.css', 'body {}\n')
    }
    // live: real directories where the source has symlinks, and the other way round
    w(ws.live, 'lib/a.py', 'A')
    w(ws.live, 'lib/sub/b.py', 'old B')
    w(ws.live, 'lib/only-here.py')
    w(ws.live, 'lib/__pycache__/a.cpython-311.pyc', 'excluded leftover') // not planned, yet in the way of the symlink
    w(ws.live, 'oldpkg/x.py') // a package removed from the source, with only its bytecode left beside it
    w(ws.live, 'oldpkg/__pycache__/x.cpython-311.pyc', 'excluded leftover')
    w(ws.live, 'cfg/app.ini', '[old]\n')
    fs.symlinkSync('static2', path.join(ws.live, 'assets'))
    w(ws.live, 'single/nested/deep.txt')
    w(ws.live, 'tree', 'a file, to become a directory')
    fs.symlinkSync('vendor/lib', path.join(ws.src, 'lib')) // directory → symlink to a directory
    fs.symlinkSync('conf/app.ini', path.join(ws.src, 'cfg')) // directory → symlink to a file
    w(ws.src, 'assets/style.css', 'body { color: red; }\n') // symlink → directory (same file name behind both)
    w(ws.src, 'assets/new.css')
    w(ws.src, 'single', 'a file now') // directory → file
    w(ws.src, 'tree/leaf.txt') // file → directory
    fs.symlinkSync('conf/app.ini', path.join(ws.live, 'was-link')) // symlink → file
    w(ws.src, 'was-link', 'now a file')
    w(ws.live, 'was-file', 'a file') // file → symlink
    fs.symlinkSync('conf/app.ini', path.join(ws.src, 'was-file'))
    const original = managed(ws)
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc, {checks: {}}))

    ws.setVersion('v2')
    const preview = await runCli(['deploy', '--dry-run', '--json'], {cwd: ws.src})
    expect(preview.exitCode, why(preview)).toBe(0)
    expect(preview.json.preview.map((i: {path: string}) => i.path)).toEqual(
      expect.arrayContaining(['lib', 'cfg', 'assets', 'single', 'tree', 'was-link', 'was-file']),
    )
    expect(managed(ws)).toEqual(original)

    const d = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(d.exitCode, why(d)).toBe(0)
    expect(deployed(ws)).toEqual(byteTree(ws.src))
    expect(d.json.changes.deleted).toContain('oldpkg')
    expect(fs.readFileSync(path.join(ws.live, 'vendor/lib/a.py'), 'utf8')).toBe('A') // nothing deleted through the new link
    expect(fs.readFileSync(path.join(ws.live, 'static2/style.css'), 'utf8')).toBe('body {}\n') // nothing written through the old one

    // Back to the directories (restore in the reverse direction)… The bytecode left in the replaced
    // and removed directories is gone for good: backups never hold excluded content.
    for (const k of Object.keys(original)) if (k.includes('__pycache__')) delete original[k]
    const rb = await runCli(['rollback', '--json'], {cwd: ws.src})
    expect(rb.exitCode, why(rb)).toBe(0)
    expect(managed(ws)).toEqual(original)

    // …and the same change in a release that fails: the original directories come back byte-exact.
    ws.setVersion('v3', {calcBroken: true})
    const failed = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(failed.exitCode, why(failed)).toBe(3)
    expect(failed.json.restore.ok, why(failed)).toBe(true)
    expect(managed(ws)).toEqual(original)
    expect(await svc.hello()).toBe('hello v1')
  })
})

describe('a directory holding protected content', {timeout: 120_000}, () => {
  it('turning into a symlink in the source is refused before anything is touched (exit 1), naming the path', async () => {
    const ws = makeWorkspace()
    put(ws.live, b('lib/data/state.db'), b('live data')) // protected by `data/` at any depth
    put(ws.live, b('lib/a.py'))
    put(ws.src, b('vendor/lib/a.py'))
    fs.symlinkSync('vendor/lib', path.join(ws.src, 'lib'))
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc, {checks: {}}))
    ws.setVersion('v2')
    const before = byteTree(ws.live)
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(1)
    expect(r.json.error.message).toContain('lib is a symlink in the source but a directory holding protected paths')
    expect(r.json.error.hint).toMatch(/never deletes protected content/)
    expect(byteTree(ws.live)).toEqual(before)
    expect(ws.backupFiles()).toEqual([])
  })
})
