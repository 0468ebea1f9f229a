import {spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import {describe, expect, it} from 'vitest'
import {decodeName, encodeName} from '../../src/file-names.js'
import {describeRsyncExit, filesFromInput, planArgv, syncArgv} from '../../src/rsync/argv.js'
import {parseItemize, unescapeName} from '../../src/rsync/itemize.js'
import {tmpDir} from './helpers.js'

describe('syncArgv', () => {
  const argv = syncArgv({source: '/src/app', target: '/live/app/', excludes: ['/data', '*.pyc']})

  it('ends with -- then source and target, each with exactly one trailing slash', () => {
    expect(argv.slice(-3)).toEqual(['--', '/src/app/', '/live/app/'])
  })

  it('reads NUL-separated paths from stdin and itemizes changes without link targets', () => {
    expect(argv).toContain('--from0')
    expect(argv).toContain('--files-from=-')
    expect(argv).toContain('--out-format=%i %n')
    expect(argv).toContain('--links')
    expect(argv).toContain('--perms')
    expect(argv).toContain('--dirs')
  })

  it('never writes in place, never preserves times, delays updates', () => {
    expect(argv).toContain('--delay-updates')
    expect(argv.some((a) => a.startsWith('--inplace'))).toBe(false)
    expect(argv).not.toContain('--times')
    expect(argv).not.toContain('-t')
    expect(argv.some((a) => /^-[a-zA-Z]*a/.test(a))).toBe(false) // no -a (implies --times)
  })

  it('every exclude becomes one --exclude=pattern, before the --', () => {
    const dd = argv.indexOf('--')
    expect(argv.indexOf('--exclude=/data')).toBeGreaterThan(-1)
    expect(argv.indexOf('--exclude=/data')).toBeLessThan(dd)
    expect(argv.indexOf('--exclude=*.pyc')).toBeLessThan(dd)
    expect(argv.filter((a) => a.startsWith('--exclude')).length).toBe(2)
  })

  it('never skips a listed path by the quick check, prints names unescaped', () => {
    expect(argv).toContain('--ignore-times')
    expect(argv).toContain('--8-bit-output')
    expect(argv).not.toContain('--delete')
    expect(argv).not.toContain('--recursive')
  })

  it('--dry-run only when asked', () => {
    expect(argv).not.toContain('--dry-run')
    const dry = syncArgv({source: 's', target: 't', excludes: [], dryRun: true})
    expect(dry).toContain('--dry-run')
    expect(dry.indexOf('--dry-run')).toBeLessThan(dry.indexOf('--'))
  })

  it('only a preview may replace a non-empty directory (--force, perishable excludes); a real sync never', () => {
    expect(argv).not.toContain('--force')
    expect(argv.some((a) => a.startsWith('--filter'))).toBe(false)
    const dry = syncArgv({source: 's', target: 't', excludes: ['/data', '*.pyc'], dryRun: true})
    expect(dry).toContain('--force')
    expect(dry).toEqual(expect.arrayContaining(['--filter=-p /data', '--filter=-p *.pyc']))
    expect(dry.some((a) => a.startsWith('--exclude'))).toBe(false)
  })

  it('a pattern with spaces or shell metacharacters stays one argument', () => {
    const a = syncArgv({source: 's', target: 't', excludes: ['my dir/$(rm -rf)']})
    expect(a).toContain('--exclude=my dir/$(rm -rf)')
  })
})

describe('planArgv', () => {
  const argv = planArgv({source: '/src/app', target: '/live/app', excludes: ['/data', '.hotctl-release.json']})
  it('is a recursive dry run with --delete comparing times to the nanosecond', () => {
    for (const a of [
      '--dry-run',
      '--recursive',
      '--links',
      '--perms',
      '--times',
      '--delete',
      '--modify-window=-1',
      '--8-bit-output',
    ])
      expect(argv).toContain(a)
    expect(argv).not.toContain('--ignore-times')
    expect(argv.some((a) => a.includes('inplace'))).toBe(false)
  })
  it('itemizes with %i %n: no %L, whose " -> target" a name could imitate', () => {
    expect(argv).toContain('--out-format=%i %n')
    expect(argv.some((a) => a.includes('%L'))).toBe(false)
  })
  it('perishable patterns become `-p` filter rules after the hard excludes (protect wins)', () => {
    const a = planArgv({source: 's', target: 't', excludes: ['data/'], perishable: ['__pycache__', '/build']})
    expect(a.indexOf('--exclude=data/')).toBeLessThan(a.indexOf('--filter=-p __pycache__'))
    expect(a).toContain('--filter=-p /build')
    expect(a.indexOf('--filter=-p /build')).toBeLessThan(a.indexOf('--'))
  })
  it('excludes before --, then source/ target/', () => {
    expect(argv.slice(-3)).toEqual(['--', '/src/app/', '/live/app/'])
    expect(argv.indexOf('--exclude=/data')).toBeLessThan(argv.indexOf('--'))
    expect(argv).toContain('--exclude=.hotctl-release.json')
  })
})

describe('filesFromInput', () => {
  it("NUL-terminates every path behind ./ (no line can start with rsync's comment characters)", () => {
    expect(filesFromInput(['a', 'b c', 'd\ne', '#x', ';y']).toString()).toBe('./a\0./b c\0./d\ne\0./#x\0./;y\0')
  })
  it('writes the exact bytes of names that are not UTF-8', () => {
    expect(filesFromInput([decodeName(Buffer.from([0x61, 0xff]))])).toEqual(Buffer.from([0x2e, 0x2f, 0x61, 0xff, 0]))
  })
  it('is empty for no paths', () => {
    expect(filesFromInput([]).length).toBe(0)
  })
})

describe('describeRsyncExit', () => {
  it('describes known codes distinctly', () => {
    expect(describeRsyncExit(23)).toMatch(/partial transfer/)
    expect(describeRsyncExit(24)).toMatch(/vanished/)
    expect(describeRsyncExit(11)).toMatch(/file I\/O/)
    expect(describeRsyncExit(1)).toMatch(/syntax or usage/)
    const codes = [1, 2, 3, 5, 10, 11, 12, 20, 23, 24, 25, 30, 35]
    expect(new Set(codes.map(describeRsyncExit)).size).toBe(codes.length)
  })
  it('falls back to the number for unknown codes', () => {
    expect(describeRsyncExit(99)).toBe('exit code 99')
  })
})

describe('parseItemize', () => {
  it('parses a new file', () => {
    expect(parseItemize('>f+++++++++ a')).toEqual([{path: 'a', kind: 'added', fileType: 'file', code: '>f+++++++++'}])
  })

  it('parses a changed file (size/time)', () => {
    expect(parseItemize('>f.st...... app/b.py')).toEqual([
      {path: 'app/b.py', kind: 'changed', fileType: 'file', code: '>f.st......'},
    ])
  })

  it('parses a new directory without its trailing slash', () => {
    expect(parseItemize('cd+++++++++ dir/')).toEqual([
      {path: 'dir', kind: 'added', fileType: 'dir', code: 'cd+++++++++'},
    ])
  })

  it('parses deletions of files and directories', () => {
    expect(parseItemize('*deleting   old')).toEqual([
      {path: 'old', kind: 'deleted', fileType: 'file', code: '*deleting'},
    ])
    expect(parseItemize('*deleting   olddir/')).toEqual([
      {path: 'olddir', kind: 'deleted', fileType: 'dir', code: '*deleting'},
    ])
  })

  it('parses a new symlink; " -> " is part of the name (the format has no %L)', () => {
    expect(parseItemize('cL+++++++++ link')).toEqual([
      {path: 'link', kind: 'added', fileType: 'symlink', code: 'cL+++++++++'},
    ])
    expect(parseItemize('cL+++++++++ a -> b')[0]!.path).toBe('a -> b')
    expect(parseItemize('>f+++++++++ a -> b')[0]!.path).toBe('a -> b')
  })

  it('parses an attribute-only change on the root dir', () => {
    const [c] = parseItemize('.d..t...... ./')
    expect(c).toMatchObject({kind: 'attrs', fileType: 'dir', code: '.d..t......'})
    expect(c!.path).toBe('.')
  })

  it('a permissions-only change of a file is attrs, a changed symlink target is changed', () => {
    expect(parseItemize('.f...p..... run.sh')[0]).toMatchObject({path: 'run.sh', kind: 'attrs', fileType: 'file'})
    expect(parseItemize('cL.s....... cur')[0]).toMatchObject({path: 'cur', kind: 'changed', fileType: 'symlink'})
  })

  it('keeps spaces inside names', () => {
    expect(parseItemize('>f+++++++++ my file.txt')[0]!.path).toBe('my file.txt')
    expect(parseItemize('*deleting   old file.txt')[0]!.path).toBe('old file.txt')
  })

  it("unescapes rsync's \\#ooo octal escapes (control characters, escaped backslashes)", () => {
    expect(parseItemize('>f+++++++++ nl\\#012x')[0]!.path).toBe('nl\nx')
    expect(parseItemize('>f+++++++++ a\\#134#101')[0]!.path).toBe('a\\#101')
    expect(parseItemize('*deleting   tab\\#011name')[0]!.path).toBe('tab\tname')
    expect(parseItemize('cL+++++++++ l\\#012k')[0]!.path).toBe('l\nk')
  })

  it("an escape is exactly \\# and three octal digits; anything else is the name's own bytes", () => {
    const u = (s: string) => unescapeName(Buffer.from(s, 'latin1')).toString('latin1')
    expect(u('\\#134#101')).toBe('\\#101') // rsync escapes a backslash that starts \# + three digits
    expect(u('\\#1\\#012')).toBe('\\#1\n')
    expect(u('\\\\#001')).toBe('\\\x01')
    expect(u('\\#\\#00123')).toBe('\\#\x0123')
    expect(u('\\#x')).toBe('\\#x')
    expect(u('\\')).toBe('\\')
    expect(u('\\#37')).toBe('\\#37')
  })

  it('reads bytes: a name that is not UTF-8 keeps them (as lone surrogates)', () => {
    const out = Buffer.concat([
      Buffer.from('>f+++++++++ caf'),
      Buffer.from([0xe9, 0x0a]),
      Buffer.from('*deleting   d'),
      Buffer.from([0xff, 0x2f, 0x0a]),
    ])
    const items = parseItemize(new Uint8Array(out))
    expect(items.map((i) => i.path)).toEqual(['caf\udce9', 'd\udcff'])
    expect(encodeName(items[0]!.path)).toEqual(Buffer.from([0x63, 0x61, 0x66, 0xe9]))
    expect(items[1]).toMatchObject({kind: 'deleted', fileType: 'dir'})
  })

  it('keeps non-ASCII names as printed with --8-bit-output', () => {
    expect(parseItemize('>f+++++++++ ünï/çødé.py')[0]!.path).toBe('ünï/çødé.py')
  })

  it('ignores blank lines and rsync messages, keeps order', () => {
    const out = [
      'sending incremental file list',
      '>f+++++++++ a',
      '',
      '*deleting   old',
      'cd+++++++++ dir/',
      '',
      'sent 1,234 bytes  received 56 bytes  2,580.00 bytes/sec',
      'total size is 10  speedup is 0.01',
      'rsync: [sender] link_stat "/x" failed: No such file or directory (2)',
      '.d..t...... ./',
    ].join('\n')
    const items = parseItemize(out)
    expect(items.map((i) => `${i.kind}:${i.path}`)).toEqual(['added:a', 'deleted:old', 'added:dir', 'attrs:.'])
  })

  it('handles CRLF-free multi-line output with a trailing newline', () => {
    expect(parseItemize('>f+++++++++ a\n>f+++++++++ b\n')).toHaveLength(2)
  })
})

describe('parseItemize: names with a leading space', () => {
  // rsync prints `%i %n`: one separator space, so a name " lead" appears after two spaces.
  it('keeps a leading space of the name', () => {
    expect(parseItemize('>f+++++++++  lead')[0]!.path).toBe(' lead')
  })
})

describe('parseItemize: deleted names with a leading space', () => {
  // rsync 3.x prints `*deleting` padded to 11 columns, a space, then the name: `*deleting    old` for " old".
  it('keeps a leading space of a deleted name', () => {
    expect(parseItemize('*deleting    old')[0]!.path).toBe(' old')
  })
})

// The real rsync: names with every byte a Linux file name can hold, through --files-from (sync and
// preview) and through the planning scan's itemized output, back to the same bytes.
const hasRsync = spawnSync('rsync', ['--version']).status === 0

/** Names built from every byte but NUL and '/', plus ones rsync could read as something else. */
function hostileNames(): Buffer[] {
  const names: Buffer[] = []
  for (let b = 1; b < 256; b++) {
    if (b === 0x2f) continue
    if (b !== 0x2e) names.push(Buffer.from([b]))
    names.push(Buffer.from([0x78, b]), Buffer.from([b, 0x79]))
  }
  for (const s of [
    '#x',
    ';x',
    '\\#x',
    '\\#101',
    '\\#1',
    '\\#12\n',
    'x\\#0123',
    '-x',
    '--delete',
    '- *',
    '+ *',
    ' lead',
    'trail ',
    '*',
    '?',
    '[a]',
    'a -> b',
    '>f+++++++++ x',
    '*deleting   y',
  ])
    names.push(Buffer.from(s))
  names.push(Buffer.from([0xff, 0xfe]), Buffer.from([0xc3]), Buffer.from([0xed, 0xb2, 0x80]), Buffer.from([0xc0, 0xaf]))
  return [...new Map(names.map((n) => [n.toString('latin1'), n])).values()]
}

function hostileTree(): {src: string; dst: string; names: Buffer[]} {
  const root = tmpDir()
  const src = path.join(root, 'src')
  const dst = path.join(root, 'dst')
  fs.mkdirSync(src)
  fs.mkdirSync(dst)
  const names = hostileNames()
  for (const n of names) fs.writeFileSync(Buffer.concat([Buffer.from(`${src}/`), n]), n)
  return {src, dst, names}
}

const latin1 = (names: string[]) => names.map((n) => encodeName(n).toString('latin1')).sort()

describe.runIf(hasRsync)('real rsync with every byte a name can hold', () => {
  it('the planning scan lists each name once, parsed back to its exact bytes', () => {
    const {src, dst, names} = hostileTree()
    const r = spawnSync('rsync', planArgv({source: src, target: dst, excludes: []}))
    expect(r.status, String(r.stderr)).toBe(0)
    const added = parseItemize(r.stdout)
      .filter((i) => i.kind === 'added')
      .map((i) => i.path)
    expect(latin1(added)).toEqual(names.map((n) => n.toString('latin1')).sort())
  })

  it('--files-from writes exactly the listed names, comment-like ones included, and itemizes them back', () => {
    const {src, dst, names} = hostileTree()
    const paths = names.map(decodeName)
    const r = spawnSync('rsync', syncArgv({source: src, target: dst, excludes: []}), {input: filesFromInput(paths)})
    expect(r.status, String(r.stderr)).toBe(0)
    expect(latin1(parseItemize(r.stdout).map((i) => i.path))).toEqual(latin1(paths))
    const written = fs
      .readdirSync(dst, {encoding: 'buffer'})
      .map((n) => n.toString('latin1'))
      .sort()
    expect(written).toEqual(names.map((n) => n.toString('latin1')).sort())
    for (const n of names) expect(fs.readFileSync(Buffer.concat([Buffer.from(`${dst}/`), n]))).toEqual(n)
  })

  it('without the ./ prefix rsync drops #- and ;-lines as comments (why filesFromInput adds it)', () => {
    const {src, dst} = hostileTree()
    const r = spawnSync('rsync', syncArgv({source: src, target: dst, excludes: []}), {
      input: Buffer.from('#x\0;x\0-x\0'),
    })
    expect(r.status, String(r.stderr)).toBe(0)
    expect(fs.readdirSync(dst).sort()).toEqual(['-x'])
  })
})

describe('rsyncCheck', () => {
  it("runs this machine's rsync --version once per binary and process (a fleet asks once per host)", async () => {
    const {rsyncCheck} = await import('../../src/target/local-preflight.js')
    const dir = tmpDir()
    const calls = path.join(dir, 'calls')
    const bin = path.join(dir, 'rsync')
    fs.writeFileSync(bin, `#!/bin/sh\necho x >> '${calls}'\necho 'rsync  version 3.2.7  protocol version 31'\n`, {
      mode: 0o755,
    })
    process.env.HOTCTL_RSYNC = bin
    try {
      const items = await Promise.all(Array.from({length: 5}, () => rsyncCheck()))
      await rsyncCheck()
      expect(items.every((i) => i.ok)).toBe(true)
      expect(fs.readFileSync(calls, 'utf8')).toBe('x\n')
    } finally {
      delete process.env.HOTCTL_RSYNC
    }
  })
})
