import {describe, expect, it} from 'vitest'
import {EXIT, HotctlError} from '../../src/errors.js'
import {beforeTheOperation, settle} from '../../src/pipeline/settle.js'

const aborted = () => {
  const c = new AbortController()
  c.abort()
  return {signal: c.signal}
}

describe('settle: one mapping of a failure to outcome, exit code and journal record', () => {
  it('before the target changed: 1, or the error’s own 5/6; an interrupt 130', () => {
    expect(settle({targetChanged: false, error: new Error('x'), interrupted: false})).toMatchObject({
      outcome: 'failed',
      exitCode: 1,
      result: 'failed',
    })
    const locked = new HotctlError('locked', EXIT.locked)
    expect(settle({targetChanged: false, error: locked, interrupted: false}).exitCode).toBe(5)
    expect(settle({targetChanged: false, error: new Error('x'), interrupted: true})).toMatchObject({
      exitCode: 130,
      result: 'interrupted',
    })
  })

  it('after it changed: 3 restored, 4 when the restore failed, 130 interrupted, 6 when the service asked for a restart', () => {
    const ok = {ok: true}
    expect(settle({targetChanged: true, error: new Error('smoke'), interrupted: false, restore: ok})).toMatchObject({
      exitCode: 3,
      result: 'restored',
    })
    const bad = settle({
      targetChanged: true,
      error: new Error('smoke'),
      interrupted: false,
      restore: {ok: false, error: 'EIO'},
    })
    expect(bad).toMatchObject({exitCode: 4, result: 'attention', error: 'smoke; restore: EIO'})
    expect(settle({targetChanged: true, error: new Error('x'), interrupted: true, restore: ok}).exitCode).toBe(130)
    const restart = new HotctlError('restart', EXIT.needsRestart)
    expect(settle({targetChanged: true, error: restart, interrupted: false, restore: ok})).toMatchObject({
      exitCode: 6,
      result: 'restored',
    })
    expect(settle({targetChanged: true, error: 'x', interrupted: false, restore: ok, recovering: true})).toMatchObject({
      exitCode: 0,
      result: 'recovered',
    })
  })
})

describe('beforeTheOperation: what an interrupt before the operation started reports', () => {
  it('130, unless the error says more: a recovery that could not restore (4) or a held lock (5)', () => {
    expect((beforeTheOperation(aborted(), new Error('x')) as HotctlError).exitCode).toBe(130)
    const attention = new HotctlError('could not restore', EXIT.needsAttention)
    expect(beforeTheOperation(aborted(), attention)).toBe(attention)
    const locked = new HotctlError('locked', EXIT.locked)
    expect(beforeTheOperation(aborted(), locked)).toBe(locked)
    const plain = new Error('plan failed')
    expect(beforeTheOperation({signal: new AbortController().signal}, plain)).toBe(plain)
  })
})
