import {describe, expect, it} from 'vitest'
import {eventOf, notificationBody} from '../../src/notify/event.js'

describe('notify: which event and what text', () => {
  it('maps outcomes and exit codes to success, failure, restored, attention; a dry run to nothing', () => {
    expect(eventOf({exitCode: 0, outcome: 'deployed'})).toBe('success')
    expect(eventOf({exitCode: 0, outcome: 'nothing-to-deploy'})).toBe('success')
    expect(eventOf({exitCode: 0, outcome: 'dry-run'})).toBeUndefined()
    expect(eventOf({exitCode: 1, outcome: 'failed'})).toBe('failure')
    expect(eventOf({exitCode: 5, outcome: 'failed'})).toBe('failure')
    expect(eventOf({exitCode: 3, outcome: 'restored'})).toBe('restored')
    expect(eventOf({exitCode: 6, outcome: 'restored'})).toBe('restored')
    expect(eventOf({exitCode: 4, outcome: 'needs-attention'})).toBe('attention')
    expect(eventOf({exitCode: 4, outcome: 'failed'})).toBe('attention') // a recovery that could not restore
  })

  it('writes one Slack-compatible line: what, where, how it ended, how long, counts, why', () => {
    const body = notificationBody(
      {
        command: 'deploy',
        outcome: 'restored',
        exitCode: 3,
        release: '20261122182402',
        previousRelease: '20261122180000',
        durationMs: 12_345,
        target: '/opt/app',
        hosts: ['app1'],
        error: 'smoke calc failed: HTTP 500\nmore',
        changes: {added: 0, changed: 1, deleted: 0},
      },
      'restored',
    )
    expect(body.text).toBe(
      'hotctl deploy of release 20261122182402 to app1:/opt/app failed; the previous release was restored and is live in 12.3s, exit 3 (0 added, 1 changed, 0 deleted): smoke calc failed: HTTP 500',
    )
    expect(body).toMatchObject({event: 'restored', previousRelease: '20261122180000', hosts: ['app1']})
  })

  it('a fleet: the path on N hosts, the first five named (the body lists them all)', () => {
    const hosts = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7']
    const facts = {
      command: 'rollback' as const,
      outcome: 'rolled-back',
      exitCode: 0,
      release: '20261122180000',
      previousRelease: '20261122182402',
      durationMs: 2000,
      target: '/srv/app',
      error: null,
      changes: null,
    }
    expect(notificationBody({...facts, hosts}, 'success')).toMatchObject({
      text: 'hotctl rollback to release 20261122180000 to /srv/app on 7 hosts (h1, h2, h3, h4, h5, …) succeeded in 2s, exit 0',
      hosts,
    })
    expect(notificationBody({...facts, hosts: ['h1', 'h2']}, 'success').text).toContain('/srv/app on 2 hosts (h1, h2) ')
  })
})
