import {describe, expect, it} from 'vitest'
import {compilePatterns, matchesPathOrParent} from '../../src/plan/patterns.js'

const m = (patterns: string[]) => compilePatterns(patterns)

describe('compilePatterns', () => {
  it('a bare name matches at any depth, files and dirs', () => {
    const p = m(['node_modules'])
    expect(p('node_modules', true)).toBe(true)
    expect(p('a/b/node_modules', true)).toBe(true)
    expect(p('a/node_modules', false)).toBe(true)
    expect(p('node_modules2', true)).toBe(false)
    expect(p('my_node_modules', true)).toBe(false)
    expect(p('node_modules/x', false)).toBe(false) // the child itself is not named node_modules
  })

  it('dir/ matches directories only', () => {
    const p = m(['cache/'])
    expect(p('cache', true)).toBe(true)
    expect(p('x/cache', true)).toBe(true)
    expect(p('cache', false)).toBe(false)
    expect(p('x/cache', false)).toBe(false)
  })

  it('an inner slash anchors at the root', () => {
    const p = m(['data/cache'])
    expect(p('data/cache', true)).toBe(true)
    expect(p('data/cache', false)).toBe(true)
    expect(p('x/data/cache', true)).toBe(false)
    expect(p('cache', true)).toBe(false)
  })

  it('a leading slash anchors at the root', () => {
    const p = m(['/build'])
    expect(p('build', true)).toBe(true)
    expect(p('src/build', true)).toBe(false)
    const d = m(['/build/'])
    expect(d('build', true)).toBe(true)
    expect(d('build', false)).toBe(false)
    expect(d('a/build', true)).toBe(false)
  })

  it('* stays within one segment', () => {
    const p = m(['*.pyc'])
    expect(p('x.pyc', false)).toBe(true)
    expect(p('a/b/x.pyc', false)).toBe(true) // unanchored: basename
    expect(p('x.pyc.bak', false)).toBe(false)
    const a = m(['logs/*.log'])
    expect(a('logs/a.log', false)).toBe(true)
    expect(a('logs/sub/a.log', false)).toBe(false)
    expect(a('x/logs/a.log', false)).toBe(false)
  })

  it('? is one character, not a slash', () => {
    const p = m(['v?.txt'])
    expect(p('v1.txt', false)).toBe(true)
    expect(p('v12.txt', false)).toBe(false)
    expect(p('v.txt', false)).toBe(false)
    const a = m(['a?b'])
    expect(a('a/b', false)).toBe(false)
  })

  it('**/ matches zero or more directories', () => {
    const p = m(['**/*.so'])
    expect(p('x.so', false)).toBe(true)
    expect(p('lib/x.so', false)).toBe(true)
    expect(p('a/b/c/x.so', false)).toBe(true)
    expect(p('x.so.1', false)).toBe(false)
    const q = m(['vendor/**/native'])
    expect(q('vendor/native', true)).toBe(true)
    expect(q('vendor/a/b/native', true)).toBe(true)
    expect(q('other/vendor/native', true)).toBe(false)
  })

  it('** without a slash crosses segments', () => {
    const p = m(['static/**'])
    expect(p('static/a', false)).toBe(true)
    expect(p('static/a/b/c', false)).toBe(true)
    expect(p('static', true)).toBe(false)
  })

  it('regex metacharacters are literal', () => {
    const p = m(['a.b+c(d)'])
    expect(p('a.b+c(d)', false)).toBe(true)
    expect(p('aXb+c(d)', false)).toBe(false)
    expect(p('a.bbc(d)', false)).toBe(false)
    const dollar = m(['$HOME'])
    expect(dollar('$HOME', false)).toBe(true)
  })

  it('character classes, with ! negation', () => {
    const p = m(['file[0-9].txt'])
    expect(p('file3.txt', false)).toBe(true)
    expect(p('filex.txt', false)).toBe(false)
    const n = m(['file[!0-9].txt'])
    expect(n('filex.txt', false)).toBe(true)
    expect(n('file3.txt', false)).toBe(false)
  })

  it('no patterns match nothing; several patterns are or-ed', () => {
    expect(m([])('anything', false)).toBe(false)
    const p = m(['*.log', '/tmp/'])
    expect(p('a/x.log', false)).toBe(true)
    expect(p('tmp', true)).toBe(true)
    expect(p('a/tmp', true)).toBe(false)
  })

  it('surrounding whitespace in a pattern is ignored', () => {
    expect(m(['  *.log  '])('x.log', false)).toBe(true)
  })
})

describe('matchesPathOrParent', () => {
  it('matches a file through a matched parent directory', () => {
    const p = m(['node_modules'])
    expect(matchesPathOrParent(p, 'a/node_modules/pkg/index.js')).toBe(true)
    expect(matchesPathOrParent(p, 'a/src/index.js')).toBe(false)
  })
  it('dir-only patterns match parents (dirs) but not the file itself', () => {
    const p = m(['native/'])
    expect(matchesPathOrParent(p, 'lib/native/x.so')).toBe(true)
    expect(matchesPathOrParent(p, 'lib/native')).toBe(false) // a file called native
  })
  it('anchored parent patterns', () => {
    const p = m(['/config'])
    expect(matchesPathOrParent(p, 'config/app.yml')).toBe(true)
    expect(matchesPathOrParent(p, 'src/config/app.yml')).toBe(false)
  })
  it('the path itself', () => {
    expect(matchesPathOrParent(m(['**/*.so']), 'x.so')).toBe(true)
    expect(matchesPathOrParent(m(['**/*.so']), 'a/b/x.so')).toBe(true)
    expect(matchesPathOrParent(m(['**/*.so']), 'a/b/x.py')).toBe(false)
  })
})
