import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {cosmiconfig} from 'cosmiconfig'
import {describe, expect, it, vi} from 'vitest'
import {loadConfig, parseConfig} from '../../src/config/load.js'

// Counts the explorers made: cosmiconfig itself is passed through.
const made = vi.hoisted(() => ({count: 0}))
vi.mock('cosmiconfig', async (original) => {
  const m = await original<typeof import('cosmiconfig')>()
  return {...m, cosmiconfig: (...a: Parameters<typeof m.cosmiconfig>) => (made.count++, m.cosmiconfig(...a))}
})

/**
 * A config named by --config that ends in .json is read without cosmiconfig (start-up time); it
 * must give what cosmiconfig gives, and leave to cosmiconfig what it would treat differently.
 */
describe('loadConfig: a named .json config reads as cosmiconfig reads it', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-load-json-'))
  fs.mkdirSync(path.join(dir, 'live'))
  fs.mkdirSync(path.join(dir, 'src'))
  const write = (name: string, text: string) => {
    const file = path.join(dir, name)
    fs.writeFileSync(file, text)
    return file
  }
  const viaCosmiconfig = async (file: string) => {
    const r = await cosmiconfig('hotctl', {cache: false}).load(file)
    return parseConfig(r!.config, r!.filepath, {})
  }
  const message = (p: Promise<unknown>) =>
    p.then(
      () => 'resolved',
      (err: Error) => err.message,
    )

  it('the same resolved config, with the same file named', async () => {
    const file = write(
      'a.json',
      `\n  ${JSON.stringify({source: 'src', target: 'live', protect: ['data/'], checks: {}})}\n`,
    )
    expect(await loadConfig({configPath: file, cwd: dir, env: {}})).toEqual(await viaCosmiconfig(file))
  })

  it('cosmiconfig is not used for a plain named .json config, and is for YAML', async () => {
    const json = write('plain.json', JSON.stringify({source: 'src', target: 'live'}))
    const yaml = write('plain.yaml', 'source: src\ntarget: live\n')
    const before = made.count
    await loadConfig({configPath: json, cwd: dir, env: {}})
    expect(made.count).toBe(before)
    await loadConfig({configPath: yaml, cwd: dir, env: {}})
    expect(made.count).toBe(before + 1)
  })

  it('a cosmiconfig $import is still merged (left to cosmiconfig)', async () => {
    write('base.json', JSON.stringify({source: 'src', target: 'live', protect: ['from-base/']}))
    const file = write('b.json', JSON.stringify({$import: 'base.json', checks: {}}))
    const c = await loadConfig({configPath: file, cwd: dir, env: {}})
    expect(c.target).toBe(path.join(dir, 'live'))
    expect(c).toEqual(await viaCosmiconfig(file))
  })

  it('empty, blank, null and invalid files: the errors as before', async () => {
    for (const [name, text] of [
      ['empty.json', ''],
      ['blank.json', ' \n\t\n'],
      ['null.json', 'null'],
    ] as const) {
      const file = write(name, text)
      expect(await message(loadConfig({configPath: file, cwd: dir, env: {}}))).toBe(`config file ${file} is empty`)
    }
    const bad = write('bad.json', '{"target": "live",}')
    const m = await message(loadConfig({configPath: bad, cwd: dir, env: {}}))
    // cosmiconfig's wording (parse-json's "JSON Error in FILE"), not JSON.parse's
    expect(m).toContain(`${bad}: cannot be read: JSON Error in ${bad}`)
  })
})
