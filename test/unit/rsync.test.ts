import {describe, expect, it} from 'vitest'
import {describeRsyncExit, filesFromInput, planArgv, syncArgv} from '../../src/rsync/argv.js'
import {parseItemize} from '../../src/rsync/itemize.js'

describe('syncArgv', () => {
  const argv = syncArgv({source: '/src/app', target: '/live/app/', excludes: ['/data', '*.pyc']})

  it('ends with -- then source and target, each with exactly one trailing slash', () => {
    expect(argv.slice(-3)).toEqual(['--', '/src/app/', '/live/app/'])
  })

  it('reads NUL-separated paths from stdin and itemizes changes', () => {
    expect(argv).toContain('--from0')
    expect(argv).toContain('--files-from=-')
    expect(argv).toContain('--itemize-changes')
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

  it('a pattern with spaces or shell metacharacters stays one argument', () => {
    const a = syncArgv({source: 's', target: 't', excludes: ['my dir/$(rm -rf)']})
    expect(a).toContain('--exclude=my dir/$(rm -rf)')
  })
})

describe('planArgv', () => {
  const argv = planArgv({source: '/src/app', target: '/live/app', excludes: ['/data', '.hotctl-release.json']})
  it('is a recursive dry run with --delete comparing times to the nanosecond', () => {
    for (const a of ['--dry-run', '--recursive', '--links', '--perms', '--times', '--delete', '--modify-window=-1', '--8-bit-output']) expect(argv).toContain(a)
    expect(argv).not.toContain('--ignore-times')
    expect(argv.some((a) => a.includes('inplace'))).toBe(false)
  })
  it('itemizes with the %i %n%L format', () => {
    expect(argv).toContain('--out-format=%i %n%L')
  })
  it('excludes before --, then source/ target/', () => {
    expect(argv.slice(-3)).toEqual(['--', '/src/app/', '/live/app/'])
    expect(argv.indexOf('--exclude=/data')).toBeLessThan(argv.indexOf('--'))
    expect(argv).toContain('--exclude=.hotctl-release.json')
  })
})

describe('filesFromInput', () => {
  it('NUL-terminates every path, including ones with newlines and spaces', () => {
    expect(filesFromInput(['a', 'b c', 'd\ne'])).toBe('a\0b c\0d\ne\0')
  })
  it('is empty for no paths', () => {
    expect(filesFromInput([])).toBe('')
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
    expect(parseItemize('>f.st...... app/b.py')).toEqual([{path: 'app/b.py', kind: 'changed', fileType: 'file', code: '>f.st......'}])
  })

  it('parses a new directory without its trailing slash', () => {
    expect(parseItemize('cd+++++++++ dir/')).toEqual([{path: 'dir', kind: 'added', fileType: 'dir', code: 'cd+++++++++'}])
  })

  it('parses deletions of files and directories', () => {
    expect(parseItemize('*deleting   old')).toEqual([{path: 'old', kind: 'deleted', fileType: 'file', code: '*deleting'}])
    expect(parseItemize('*deleting   olddir/')).toEqual([{path: 'olddir', kind: 'deleted', fileType: 'dir', code: '*deleting'}])
  })

  it('parses a new symlink, dropping " -> target"', () => {
    expect(parseItemize('cL+++++++++ link -> target')).toEqual([{path: 'link', kind: 'added', fileType: 'symlink', code: 'cL+++++++++'}])
  })

  it('parses an attribute-only change on the root dir', () => {
    const [c] = parseItemize('.d..t...... ./')
    expect(c).toMatchObject({kind: 'attrs', fileType: 'dir', code: '.d..t......'})
    expect(c!.path).toBe('.')
  })

  it('a permissions-only change of a file is attrs, a changed symlink target is changed', () => {
    expect(parseItemize('.f...p..... run.sh')[0]).toMatchObject({path: 'run.sh', kind: 'attrs', fileType: 'file'})
    expect(parseItemize('cL.s....... cur -> v2')[0]).toMatchObject({path: 'cur', kind: 'changed', fileType: 'symlink'})
  })

  it('keeps spaces inside names', () => {
    expect(parseItemize('>f+++++++++ my file.txt')[0]!.path).toBe('my file.txt')
    expect(parseItemize('*deleting   old file.txt')[0]!.path).toBe('old file.txt')
  })

  it("unescapes rsync's \\#ooo octal escapes (control characters, escaped backslashes)", () => {
    expect(parseItemize('>f+++++++++ nl\\#012x')[0]!.path).toBe('nl\nx')
    expect(parseItemize('>f+++++++++ a\\#134#101')[0]!.path).toBe('a\\#101')
    expect(parseItemize('*deleting   tab\\#011name')[0]!.path).toBe('tab\tname')
    expect(parseItemize('cL+++++++++ l\\#012k -> t')[0]!.path).toBe('l\nk')
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
