import {describe, expect, it} from 'vitest'
import {ID_PATTERN, formatId, idToDate, newId, parseId, relativeTime} from '../../src/ids.js'
import {parseDuration} from '../../src/durations.js'
import {catchHotctl} from './helpers.js'

describe('formatId / idToDate', () => {
  it('formats a UTC timestamp as 14 digits', () => {
    expect(formatId(new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 678)))).toBe('20250102030405')
  })
  it('round-trips through idToDate', () => {
    const d = new Date(Date.UTC(2024, 1, 29, 23, 59, 58))
    expect(idToDate(formatId(d)).getTime()).toBe(d.getTime())
  })
  it('idToDate refuses non-ids', () => {
    expect(catchHotctl(() => idToDate('abc')).exitCode).toBe(2)
  })
  it('ID_PATTERN is exactly 14 digits', () => {
    expect(ID_PATTERN.test('20250102030405')).toBe(true)
    expect(ID_PATTERN.test('2025010203040')).toBe(false)
    expect(ID_PATTERN.test('202501020304050')).toBe(false)
  })
})

describe('newId', () => {
  const now = new Date(Date.UTC(2025, 5, 1, 12, 0, 0))
  it('is the current time when nothing later exists', () => {
    expect(newId([], now)).toBe('20250601120000')
    expect(newId(['20250101000000'], now)).toBe('20250601120000')
  })
  it('is one second after the latest id when now is not later', () => {
    expect(newId(['20250601120000'], now)).toBe('20250601120001')
    expect(newId(['20250601120000', '20250701000000', '20250101000000'], now)).toBe('20250701000001')
  })
  it('rolls over minutes/days correctly', () => {
    expect(newId(['20251231235959'], now)).toBe('20260101000000')
  })
  it('many ids at the same instant are unique and strictly increasing', () => {
    const used: string[] = []
    for (let i = 0; i < 200; i++) used.push(newId(used, now))
    expect(new Set(used).size).toBe(200)
    for (let i = 1; i < used.length; i++) expect(used[i]! > used[i - 1]!).toBe(true)
    expect(used.every((id) => ID_PATTERN.test(id))).toBe(true)
  })
  it('accepts any iterable', () => {
    expect(newId(new Set(['20250601120000']), now)).toBe('20250601120001')
  })
})

describe('parseId', () => {
  it("returns a well-formed release id (whether it can be reached is the caller's question)", () => {
    expect(parseId('20250102000000')).toBe('20250102000000')
  })
  it.each(['../x', '2025', '', '2025010100000a', ' 20250101000000', '20250101000000\n'])(
    'refuses the malformed id %j, naming the flag and giving the hint',
    (input) => {
      const err = catchHotctl(() => parseId(input, '--to', 'Valid --to targets: 20250101000000.'))
      expect(err.exitCode).toBe(2)
      expect(err.message).toContain('--to')
      expect(err.message).toContain('is not a release id')
      expect(err.hint).toBe('Valid --to targets: 20250101000000.')
    },
  )
  it('refuses an impossible date (month 13) even with 14 digits', () => {
    const err = catchHotctl(() => parseId('20251301000000'))
    expect(err.exitCode).toBe(2)
    expect(err.message).toMatch(/not a valid date-time/)
  })
  it('refuses Feb 30 and hour 24', () => {
    expect(catchHotctl(() => parseId('20250230000000')).message).toMatch(/valid date-time/)
    expect(catchHotctl(() => parseId('20250101240000')).message).toMatch(/valid date-time/)
  })
  it('points to `hotctl backups` by default', () => {
    expect(catchHotctl(() => parseId('x')).hint).toContain('hotctl backups')
  })
  it('names the flag it was given', () => {
    expect(catchHotctl(() => parseId('x', '--id')).message).toContain('--id')
  })
})

describe('relativeTime', () => {
  const base = Date.UTC(2025, 0, 1, 0, 0, 0)
  it('uses s, m, h, d', () => {
    expect(relativeTime('20250101000000', base + 5_000)).toBe('5s ago')
    expect(relativeTime('20250101000000', base + 5 * 60_000)).toBe('5m ago')
    expect(relativeTime('20250101000000', base + 3 * 3_600_000)).toBe('3h ago')
    expect(relativeTime('20250101000000', base + 2 * 86_400_000)).toBe('2d ago')
  })
})

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['1.5s', 1500],
    ['45', 45_000],
    [' 10s ', 10_000],
    ['0', 0],
  ] as const)('%j → %d ms', (input, ms) => {
    expect(parseDuration(input, 'f')).toBe(ms)
  })
  it('a number is seconds', () => {
    expect(parseDuration(3, 'f')).toBe(3000)
    expect(parseDuration(0.25, 'f')).toBe(250)
  })
  it.each(['', 'soon', '10 sec', '-1s', '1d', '1.s', 's'])('refuses %j naming the field', (input) => {
    const err = catchHotctl(() => parseDuration(input, 'reload.timeout'))
    expect(err.exitCode).toBe(2)
    expect(err.message).toContain('reload.timeout')
  })
})
