import {describe, expect, it} from 'vitest'
import {parseSince} from '../../src/pipeline/log.js'
import {renderLog} from '../../src/ui/log-report.js'

describe('log --since', () => {
  const now = Date.parse('2026-11-22T18:00:00Z')
  it('reads how long ago (m, h, d, w) and ISO times; a time without a zone is UTC', () => {
    expect(parseSince('30m', now).toISOString()).toBe('2026-11-22T17:30:00.000Z')
    expect(parseSince('12h', now).toISOString()).toBe('2026-11-22T06:00:00.000Z')
    expect(parseSince('2d', now).toISOString()).toBe('2026-11-20T18:00:00.000Z')
    expect(parseSince('1w', now).toISOString()).toBe('2026-11-15T18:00:00.000Z')
    expect(parseSince('2026-11-20').toISOString()).toBe('2026-11-20T00:00:00.000Z')
    expect(parseSince('2026-11-20T08:30').toISOString()).toBe('2026-11-20T08:30:00.000Z')
    expect(parseSince('2026-11-20T08:30+02:00').toISOString()).toBe('2026-11-20T06:30:00.000Z')
  })
  it('anything else is a usage error naming the flag and the accepted forms', () => {
    expect(() => parseSince('yesterday')).toThrow('--since: "yesterday" is neither a time nor a duration')
    expect(() => parseSince('5s')).toThrow(/neither/)
  })
})

describe('log: the human table', () => {
  it('says so when the journal is empty or nothing matches', () => {
    expect(renderLog({exitCode: 0, operations: [], total: 0})).toBe('No operations recorded yet.')
    expect(renderLog({exitCode: 0, operations: [], total: 4})).toBe('No operations match (4 in the journal).')
  })
})
