/**
 * The one quoting function for remote shells, tried with hostile strings through a real `sh`:
 * what the script sees as $1.. must be exactly what was passed.
 */
import {spawnSync} from 'node:child_process'
import {describe, expect, it} from 'vitest'
import {decodeName} from '../../src/file-names.js'
import {remoteScript, rshWord, shq} from '../../src/ssh/quote.js'
import {batches, parseDescribe, type RemoteEntry} from '../../src/ssh/remote-files.js'

const hostile = [
  '',
  ' ',
  "'",
  "''",
  "'\\''",
  '"',
  '\\',
  '$(touch /tmp/hotctl-pwned)',
  '`touch /tmp/hotctl-pwned`',
  '${HOME}',
  '$HOME',
  '; rm -rf /',
  '&& echo x',
  '| cat',
  '> /tmp/x',
  '*',
  '~',
  '-rf',
  '--',
  'a\nb',
  'tab\there',
  '\r',
  '!event',
  '#comment',
  'ü ñ 日本',
  '\x01\x1b[31m',
  '}', // the script is one { … } group
  '\n}\necho escaped\n{',
]

/** Runs what `sh -s` on a host would read, printing each positional parameter NUL-terminated. */
function positional(args: string[]): string[] {
  const r = spawnSync('sh', ['-s'], {input: remoteScript(`for a; do printf '%s\\0' "$a"; done`, args)})
  expect(r.status, String(r.stderr)).toBe(0)
  const parts = r.stdout.toString('utf8').split('\0')
  parts.pop()
  return parts
}

describe('remote quoting', () => {
  it('passes every hostile string through sh unchanged, as one argument each', () => {
    expect(positional(hostile)).toEqual(hostile)
  })

  it("shq is single-quoting with the quote itself as '\\''", () => {
    expect(shq("it's")).toBe(`'it'\\''s'`)
    expect(shq('$x')).toBe(`'$x'`)
    expect(() => shq('a\0b')).toThrow(/NUL/)
  })

  it('a name that is not UTF-8 reaches the shell byte for byte', () => {
    const name = decodeName(Buffer.from([0x61, 0xff, 0x27, 0xfe]))
    const r = spawnSync('sh', ['-s'], {input: remoteScript(`printf '%s' "$1"`, [name])})
    expect(r.stdout).toEqual(Buffer.from([0x61, 0xff, 0x27, 0xfe]))
  })

  it('plain names, names that are not UTF-8 and bytes, mixed: each reaches the shell exactly, in order', () => {
    const odd = decodeName(Buffer.from([0x62, 0xff, 0x27]))
    const args = ['a b', odd, "it's", Buffer.from("c'\u00fc", 'utf8'), odd, '', Buffer.from('QUJD'), 'z']
    const r = spawnSync('sh', ['-s'], {input: remoteScript(`for a; do printf '%s\\0' "$a"; done`, args)})
    expect(r.status, String(r.stderr)).toBe(0)
    const want = Buffer.concat(
      args.flatMap((a) => [
        typeof a === 'string' ? Buffer.from(a === odd ? [0x62, 0xff, 0x27] : Buffer.from(a)) : a,
        Buffer.from([0]),
      ]),
    )
    expect(r.stdout).toEqual(want)
  })

  it('a script cut short runs nothing (one { } group)', () => {
    const full = remoteScript('echo ran', ['a'])
    const r = spawnSync('sh', ['-s'], {input: full.subarray(0, full.length - 3)})
    expect(r.stdout.toString()).toBe('')
  })

  it('rsync -e words: plain, single- or double-quoted', () => {
    expect(rshWord('-oBatchMode=yes')).toBe('-oBatchMode=yes')
    expect(rshWord('/a b/ssh_config')).toBe(`'/a b/ssh_config'`)
    expect(rshWord("it's")).toBe(`"it's"`)
    expect(() => rshWord(`'"`)).toThrow(/both quote/)
  })
})

describe('remote file descriptions', () => {
  it('parses types, modes, sizes, hashes and link targets in argument order', () => {
    const h = 'a'.repeat(64)
    const out = Buffer.concat([
      Buffer.from('f-ld\x00'),
      Buffer.from('644 3\x00777 4\x00755 4096\x00'),
      Buffer.from(`${h}  ./x\0`),
      Buffer.from('tar\nget\0'),
    ])
    const m = new Map<string, RemoteEntry | undefined>()
    parseDescribe(out, ['x', 'gone', 'l', 'd'], m)
    expect(m.get('x')).toEqual({type: 'file', mode: 0o644, size: 3, hash: h})
    expect(m.get('gone')).toBeUndefined()
    expect(m.get('l')).toEqual({type: 'symlink', mode: 0o777, link: 'tar\nget'})
    expect(m.get('d')).toEqual({type: 'dir', mode: 0o755})
    expect(() => parseDescribe(Buffer.from('ff\x00644 1\x00'), ['a', 'b'], new Map())).toThrow(/changed on the host/)
  })

  it('batches paths by size and count', () => {
    const paths = Array.from({length: 10}, (_, i) => `p${i}`)
    expect(batches(paths, 1000, 4).map((b) => b.length)).toEqual([4, 4, 2])
    expect(batches(paths, 40).every((b) => b.length <= 2)).toBe(true)
  })
})
