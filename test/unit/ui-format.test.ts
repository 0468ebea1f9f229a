import {describe, expect, it} from 'vitest'
import {formatBytes, formatDuration} from '../../src/ui/format.js'

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1536, '1.5 KiB'],
    [1024 ** 2 - 1, '1024.0 KiB'],
    [5 * 1024 ** 2, '5.0 MiB'],
    [3 * 1024 ** 3 + 1024 ** 3 / 4, '3.25 GiB'],
  ])('%d → %s', (n, text) => {
    expect(formatBytes(n)).toBe(text)
  })
})

describe('formatDuration', () => {
  it.each([
    [0, '0ms'],
    [49, '49ms'],
    [999, '999ms'],
    [1000, '1s'],
    [1250, '1.3s'],
    [10_000, '10s'],
    [59_990, '1m'],
    [60_000, '1m'],
    [61_000, '1m 1s'],
    [3_599_000, '59m 59s'],
  ])('%d ms → %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text)
  })
})
