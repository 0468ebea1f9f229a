import {stripVTControlCharacters} from 'node:util'
import {describe, expect, it} from 'vitest'
import {EXIT} from '../../src/errors.js'
import {check, type CheckResult} from '../../src/pipeline/checks.js'
import type {PreflightItem} from '../../src/target/target.js'
import {renderCheck, renderPreflight} from '../../src/ui/check-report.js'
import {pipelineFixture} from './pipeline-fixture.js'

const lines = (text: string) => stripVTControlCharacters(text).split('\n')

describe('renderCheck and renderPreflight', () => {
  it('all good: the config file and the counts; each preflight item ✔ with its detail, as soon as the preflight is done', async () => {
    const f = await pipelineFixture({src: {'app.py': 'v2\n'}, live: {'app.py': 'v1\n'}, status: true})
    const ctx = f.ctx({checks: {lint: 'true', test: ['true', 'true']}})
    const seen: PreflightItem[][] = []
    const r = await check(ctx, {skipChecks: false, createTarget: false, onPreflight: (items) => seen.push(items)})
    expect(r.exitCode).toBe(EXIT.ok)
    expect(seen).toEqual([r.preflight])
    expect(lines(renderCheck(r))).toEqual([
      `All good: config ${ctx.config.file}, ${r.preflight.length} preflight item(s), 2 check(s).`,
    ])
    expect(lines(renderPreflight(r.preflight))).toEqual(r.preflight.map((p) => `✔ ${p.name}: ${p.detail}`))
    expect(r.preflight.map((p) => p.name)).toContain('target')
  })

  it('failed: each failed preflight item (with what to do) and each failed check named', async () => {
    const f = await pipelineFixture({src: {'app.py': 'v2\n'}})
    const ctx = f.ctx({target: '../missing', checks: {lint: 'true', test: 'echo "1 failed"; exit 1'}})
    const r = await check(ctx, {skipChecks: false, createTarget: false})
    expect(r.exitCode).toBe(EXIT.failed)
    const target = r.preflight.find((p) => p.name === 'target')!
    expect(target.ok).toBe(false)
    expect(target.hint).toBeTruthy()
    expect(lines(renderCheck(r))).toEqual([`Check failed: target (${target.detail}); check test`])
    expect(lines(renderPreflight(r.preflight))).toContain(`✖ target: ${target.detail} → ${target.hint}`)
  })

  it('interrupted with nothing failed: says so instead of "All good"', () => {
    const preflight = [{name: 'rsync', ok: true, detail: '3.2.7'}]
    const r: CheckResult = {exitCode: EXIT.interrupted, config: '/p/hotctl.config.yaml', preflight, checks: []}
    expect(lines(renderCheck(r))).toEqual(['Check interrupted: 0 check(s) finished before the signal, none failed.'])
  })
})
