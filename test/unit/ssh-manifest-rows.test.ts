/**
 * ownFileRows (src/target/ssh-backups.ts) reads a manifest's file rows of one pack from its JSON
 * bytes, without parsing the whole manifest: it must find exactly what JSON.parse finds.
 */
import {describe, expect, it} from 'vitest'
import {decodeName} from '../../src/file-names.js'
import {ownFileRows} from '../../src/target/ssh-backups.js'

const hash = (i: number) => i.toString(16).padStart(64, 'a')

/** What JSON.parse makes of the file rows in `pack`. */
function reference(json: string, pack: string) {
  const m = JSON.parse(json) as {packs: string[]; entries: unknown[][]}
  const at = m.packs.indexOf(pack)
  return new Map(
    m.entries
      .filter((r) => r[1] === 'f' && r[5] === at)
      .map((r) => [r[0] as string, {type: 'file', mode: r[2], size: r[3], hash: r[4]}]),
  )
}

describe('file rows of a manifest, read from its bytes', () => {
  it('finds what JSON.parse finds, whatever the names hold', () => {
    const names = [
      'plain.py',
      'dir/with space.txt',
      'quote"inside',
      'back\\slash',
      'row["start',
      'fake","f",420,1,"x",0]',
      '[","f",',
      'ü ñ 日本.md',
      'tab\tand\nnewline',
      decodeName(Buffer.from([0x61, 0xff, 0x62])), // not UTF-8: a lone surrogate in JSON
      ']',
    ]
    const pack = 'deployed/20260101000000'
    const entries = [
      ['app', 'd', 0o755],
      ...names.map((n, i) => [n, 'f', 0o644, i * 1000, hash(i), i % 3 === 2 ? 1 : 0]),
      ['link', 'l', 0o777, 'target"x', 0],
      ['other', 'f', 0o600, 5, hash(99), 1],
    ]
    const json = JSON.stringify({
      v: 2,
      base: '20260101000000',
      packs: [pack, 'backups/20250101000000'],
      entries,
      deleted: ['gone', 'x","f",1,2,"y",0]', '["d","f",420,3,"' + hash(7) + '",0]'],
    })
    const got = ownFileRows(Buffer.from(json), pack)
    const want = reference(json, pack)
    expect(got).toEqual(want)
    expect(got!.size).toBe(names.filter((_, i) => i % 3 !== 2).length)
    expect(ownFileRows(Buffer.from(json), 'backups/20250101000000')).toEqual(reference(json, 'backups/20250101000000'))
  })

  it('nothing for a manifest of the earlier layout (no packs) or one that names other packs', () => {
    expect(ownFileRows(Buffer.from(JSON.stringify({entries: [['a', 'f', 420, 1, hash(1)]]})), 'deployed/1')).toBe(
      undefined,
    )
    const json = JSON.stringify({v: 2, packs: ['backups/20250101000000'], entries: [['a', 'f', 420, 1, hash(1), 0]]})
    expect(ownFileRows(Buffer.from(json), 'deployed/20260101000000')).toBe(undefined)
  })
})
