import fs from 'node:fs'
import path from 'node:path'
import {describe, expect, it} from 'vitest'
import {COMMANDS} from '../../src/own-command.js'

/** oclif's ids for src/commands (as its manifest has them): `backups/index.ts` is `backups`. */
function commandIds(dir = 'src/commands'): string[] {
  return (fs.readdirSync(dir, {recursive: true}) as string[])
    .filter((f) => f.endsWith('.ts'))
    .map((f) =>
      f
        .replace(/\.ts$/, '')
        .replace(/(^|\/)index$/, '')
        .split(path.sep)
        .join(':'),
    )
    .sort()
}

describe('the own-command bundle (src/own-command.ts)', () => {
  it('has every command, under its oclif id, with that command class', async () => {
    expect(Object.keys(COMMANDS).sort()).toEqual(commandIds())
    for (const [id, load] of Object.entries(COMMANDS)) {
      const file = path.join(
        'src/commands',
        `${id.split(':').join('/')}${id.includes(':') ? '' : fs.existsSync(`src/commands/${id}`) ? '/index' : ''}.ts`,
      )
      expect((await load()).default, id).toBe((await import(`../../${file}`)).default)
    }
  })
})
