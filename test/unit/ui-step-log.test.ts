import {stripVTControlCharacters} from 'node:util'
import {describe, expect, it} from 'vitest'
import {MAX_LINE_CHARS, OutputTail} from '../../src/service/output-tail.js'
import {createUi, stepLine} from '../../src/ui/ui.js'

const plain = (s: string) => stripVTControlCharacters(s)

describe('stepLine: one line per finished step', () => {
  it('a step that ended: mark, title, duration as the config writes one', () => {
    expect(plain(stepLine({type: 'step-end', step: 'Sync 10 changed, 0 deleted', result: 'ok', durationMs: 55}))).toBe(
      '✔ Sync 10 changed, 0 deleted (55ms)',
    )
    expect(
      plain(stepLine({type: 'step-end', step: 'Backup', result: 'skipped', message: 'nothing', durationMs: 0})),
    ).toBe('↓ Backup [skipped: nothing] (0ms)')
  })

  it('a failed step in a group: indented, why, its output under it; a host when known', () => {
    const text = stepLine({
      type: 'step-end',
      step: 'lint',
      group: ['Checks'],
      host: 'web1',
      result: 'failed',
      message: '`ruff` exited 1',
      durationMs: 1250,
      output: ['a.py:1: E1'],
    })
    expect(plain(text).split('\n')).toEqual(['  ✖ [web1] lint [failed: `ruff` exited 1] (1.3s)', '    │ a.py:1: E1'])
  })

  it("a host's own line in a wave is not prefixed with its name again", () => {
    const line = stepLine({
      type: 'step-end',
      step: 'web1',
      group: ['Wave 1/1: web1'],
      host: 'web1',
      result: 'ok',
      durationMs: 9,
    })
    expect(plain(line)).toBe('  ✔ web1 (9ms)')
  })

  it('progress: what it waits on and for how long', () => {
    const text = stepLine({
      type: 'step-progress',
      step: 'Confirm release R is live',
      elapsedMs: 12_000,
      message: 'waiting',
    })
    expect(plain(text)).toBe('… Confirm release R is live: waiting (still running, 12s)')
  })
})

describe('createUi', () => {
  it('--events: every line on stderr is one JSON object with a time; step starts are events, not log lines', () => {
    const out: string[] = []
    const ui = createUi({json: false, events: true, write: (t) => void out.push(t)})
    ui.say('hello')
    ui.step!({type: 'step-start', step: 'Sync'})
    ui.step!({type: 'step-end', step: 'Sync', result: 'ok', durationMs: 5, host: 'web1'})
    const events = out
      .join('')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(events.map((e) => e.type)).toEqual(['message', 'step-start', 'step-end'])
    expect(events[2]).toMatchObject({step: 'Sync', result: 'ok', durationMs: 5, host: 'web1'})
    for (const e of events) expect(e.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  })

  it('the log: starts are not printed; --timestamps prefixes every line with the UTC time', () => {
    const out: string[] = []
    const ui = createUi({json: false, timestamps: true, write: (t) => void out.push(t)})
    ui.step!({type: 'step-start', step: 'Sync'})
    ui.step!({type: 'step-end', step: 'Sync', result: 'ok', durationMs: 5})
    expect(out).toHaveLength(1)
    expect(plain(out[0]!)).toMatch(/^\d\d:\d\d:\d\d ✔ Sync \(5ms\)\n$/)
  })
})

describe('OutputTail: bounded whatever the output', () => {
  it('keeps the last N lines, and cuts a long line saying how much was cut', () => {
    const t = new OutputTail(3)
    t.push('x'.repeat(5_000_000))
    t.push('\none\ntwo\nthr')
    t.push('ee\n')
    expect(t.text()).toBe('one\ntwo\nthree')
    const long = new OutputTail(2)
    long.push('y'.repeat(5_000_000))
    expect(long.text()).toBe(`${'y'.repeat(MAX_LINE_CHARS)}… (${5_000_000 - MAX_LINE_CHARS} more characters)`)
    expect(long.total).toBe(5_000_000)
  })
})
