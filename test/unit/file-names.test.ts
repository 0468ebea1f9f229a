import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {describe, expect, it} from 'vitest'
import {decodeName, encodeName, fsPath, showPath} from '../../src/file-names.js'
import {compilePatterns} from '../../src/plan/patterns.js'
import {statEntry, walkTree} from '../../src/store/walk.js'
import {tmpDir} from './helpers.js'

const bytes = (...b: number[]) => Buffer.from(b)

describe('decodeName / encodeName', () => {
  it('valid UTF-8 is its plain string, and back', () => {
    for (const s of [
      'app/x.py',
      'ünï/çødé.py',
      '日本語',
      '😀 emoji',
      '\ufffd real replacement char',
      'tab\tnl\n',
      '',
    ]) {
      expect(decodeName(Buffer.from(s))).toBe(s)
      expect(encodeName(s)).toEqual(Buffer.from(s))
      expect(fsPath(s)).toBe(s)
    }
  })

  it('every byte that is not valid UTF-8 becomes one lone surrogate U+DC80-U+DCFF, and back', () => {
    expect(decodeName(bytes(0xff))).toBe('\udcff')
    expect(decodeName(bytes(0x61, 0xe9, 0x62))).toBe('a\udce9b') // Latin-1 é
    expect(decodeName(bytes(0xc3))).toBe('\udcc3') // truncated sequence
    expect(decodeName(bytes(0xc0, 0xaf))).toBe('\udcc0\udcaf') // overlong '/'
    expect(decodeName(bytes(0xed, 0xb2, 0x80))).toBe('\udced\udcb2\udc80') // an encoded surrogate (CESU)
    expect(decodeName(bytes(0xf4, 0x90, 0x80, 0x80))).toBe('\udcf4\udc90\udc80\udc80') // beyond U+10FFFF
    expect(decodeName(bytes(0xc3, 0xa9, 0xff))).toBe('é\udcff') // valid and invalid side by side
    for (let b = 0x80; b <= 0xff; b++) {
      const name = decodeName(bytes(0x78, b))
      expect(encodeName(name)).toEqual(bytes(0x78, b))
      expect(fsPath(name)).toEqual(bytes(0x78, b))
    }
  })

  it('round-trips random byte strings exactly (and through JSON)', () => {
    let seed = 42
    const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 256
    for (let i = 0; i < 2000; i++) {
      const buf = Buffer.from(Array.from({length: 1 + (i % 12)}, () => rand() || 1))
      const name = decodeName(buf)
      expect(encodeName(JSON.parse(JSON.stringify(name)))).toEqual(buf)
    }
  })

  it('an astral character whose low surrogate lies in U+DC80-U+DCFF is not mistaken for an escaped byte', () => {
    const s = String.fromCodePoint(0x10080) // \ud800\udc80
    expect(encodeName(s)).toEqual(Buffer.from(s))
    expect(fsPath(s)).toBe(s)
  })
})

describe('showPath', () => {
  it('plain names as they are; control characters, escaped bytes, edge spaces and quotes quoted', () => {
    expect(showPath('app/x.py')).toBe('app/x.py')
    expect(showPath('my file.txt')).toBe('my file.txt')
    expect(showPath('ünï')).toBe('ünï')
    expect(showPath('a\nb')).toBe('"a\\nb"')
    expect(showPath('\u001b[31mred')).toBe('"\\u001b[31mred"')
    expect(showPath('x\udcff')).toBe('"x\\udcff"')
    expect(showPath(' lead')).toBe('" lead"')
    expect(showPath('trail ')).toBe('"trail "')
    expect(showPath('say "hi"')).toBe('"say \\"hi\\""')
  })
})

describe('the walk keeps names that are not UTF-8', () => {
  it('walks, stats and reads links by their exact bytes', () => {
    const root = tmpDir()
    const raw = (...parts: Buffer[]) => Buffer.concat([Buffer.from(`${root}/`), ...parts])
    fs.mkdirSync(raw(bytes(0x64, 0xff)))
    fs.writeFileSync(raw(bytes(0x64, 0xff, 0x2f, 0xfe, 0x0a)), 'inner')
    fs.writeFileSync(raw(bytes(0xe9)), 'latin1')
    fs.writeFileSync(path.join(root, 'plain'), 'plain')
    fs.symlinkSync(bytes(0x64, 0xff, 0x2f, 0xfe, 0x0a), raw(bytes(0x6c, 0x80)))
    const tree = walkTree(root, compilePatterns([]))
    expect([...tree.entries.keys()].sort()).toEqual(
      ['d\udcff', 'd\udcff/\udcfe\n', 'l\udc80', 'plain', '\udce9'].sort(),
    )
    expect(tree.entries.get('d\udcff/\udcfe\n')).toMatchObject({type: 'file', size: 5})
    expect(tree.entries.get('l\udc80')).toMatchObject({type: 'symlink', link: 'd\udcff/\udcfe\n'})
    expect(statEntry(path.join(root, '\udce9'))).toMatchObject({type: 'file', size: 6})
    // The lossy UTF-8 reading of that name (U+FFFD) is another path, which does not exist.
    expect(statEntry(path.join(root, '\ufffd'))).toBeUndefined()
  })

  it('many names: the walk finds each once, with its own bytes', () => {
    const root = tmpDir()
    const want = new Set<string>()
    for (let i = 0; i < 300; i++) {
      const name = Buffer.concat([
        crypto.randomBytes(6).map((b) => (b === 0 || b === 0x2f ? 0x41 : b)),
        Buffer.from(String(i)),
      ])
      fs.writeFileSync(Buffer.concat([Buffer.from(`${root}/`), name]), name)
      want.add(name.toString('latin1'))
    }
    const tree = walkTree(root, compilePatterns([]))
    expect(new Set([...tree.entries.keys()].map((k) => encodeName(k).toString('latin1')))).toEqual(want)
  })
})
