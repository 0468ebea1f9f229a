import {stripVTControlCharacters} from 'node:util'
import {describe, expect, it} from 'vitest'
import type {DeployResult} from '../../src/pipeline/deploy.js'
import {emptyProof} from '../../src/pipeline/prove-live.js'
import {renderDeploy} from '../../src/ui/deploy-report.js'

const PATHS = {source: '/src', target: '/live'}
const lines = (r: DeployResult) => stripVTControlCharacters(renderDeploy(r, PATHS)).split('\n')
const base: DeployResult = {
  exitCode: 3,
  outcome: 'restored',
  release: '20260101000000',
  previousRelease: '20250101000000',
  checks: [],
  durationMs: 1000,
}

describe('renderDeploy: release steps and the canary', () => {
  it('a restored deploy says which steps were undone, and which could not be', () => {
    const r: DeployResult = {
      ...base,
      error: 'smoke failed: calc',
      releaseSteps: {
        ran: ['deps', 'migrate'],
        skipped: [],
        undone: ['migrate'],
        notUndone: [{step: 'deps', why: 'boom'}],
      },
      restore: {
        backup: '20260101000000',
        release: '20250101000000',
        ok: false,
        written: 1,
        removed: 0,
        differences: [],
        proof: emptyProof(),
        interrupted: false,
        error: 'undo step deps of 20260101000000: boom',
      },
    }
    expect(lines(r).slice(2)).toEqual([
      'Release steps run: deps, migrate.',
      'Release steps undone (newest first): migrate.',
      'Release step deps NOT undone: boom',
    ])
  })

  it('an aborted canary shows each step’s figures', () => {
    const r: DeployResult = {
      ...base,
      error: 'canary at 10 %: …',
      canary: {
        outcome: 'aborted',
        steps: [
          {
            percent: 10,
            canaryCalls: 20,
            canaryErrors: 4,
            canaryErrorRate: 0.2,
            canaryP95Ms: 1,
            currentErrorRate: 0,
            currentP95Ms: 1,
          },
        ],
      },
    }
    expect(lines(r).at(-1)).toBe('Canary: 10 %: 4/20 failed → aborted.')
  })
})

describe('renderRollback: release steps', () => {
  it('names the steps undone and those --force left in place', async () => {
    const {renderRollback} = await import('../../src/ui/rollback-report.js')
    const text = renderRollback({
      exitCode: 0,
      outcome: 'rolled-back',
      release: '20250101000000',
      snapshot: '20260101000000',
      from: '20260101000000',
      undo: '20260102000000',
      releaseSteps: {undone: ['migrate'], skipped: ['deps'], irreversible: ['deps (release 20260101000000)']},
      durationMs: 1,
    })
    expect(stripVTControlCharacters(text).split('\n').slice(1)).toEqual([
      'Release steps undone: migrate.',
      'Left in place (no undo, --force): deps.',
    ])
  })
})
