import {spawnSync} from 'node:child_process'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {
  makeWorkspace,
  removeWorkspaces,
  requireBuild,
  runCli,
  serviceConfig,
  startService,
  stopAllServices,
} from './helpers.js'

beforeAll(requireBuild)
afterEach(stopAllServices)
afterAll(removeWorkspaces)

const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`

interface Suite {
  name: string
  tests: string
  failures: string
  cases: {classname: string; name: string; failure?: {message: string; text: string}}[]
}

/** The report as a real XML parser (Python's ElementTree) reads it. */
function parseJunit(file: string): {attrs: Record<string, string>; suites: Suite[]} {
  const py = `
import json, sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == 'testsuites', root.tag
out = {'attrs': root.attrib, 'suites': []}
for s in root.findall('testsuite'):
    cases = []
    for c in s.findall('testcase'):
        f = c.find('failure')
        case = dict(c.attrib)
        if f is not None: case['failure'] = {'message': f.get('message'), 'text': f.text or ''}
        cases.append(case)
    out['suites'].append({**s.attrib, 'cases': cases})
print(json.dumps(out))
`
  const r = spawnSync('python3', ['-c', py, file], {encoding: 'utf8'})
  if (r.status !== 0) throw new Error(`not valid JUnit XML: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

describe('--junit FILE', {timeout: 120_000}, () => {
  it('writes each check and smoke entry as a testcase, failures with their text, for failed and restored deploys', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    const cfg = serviceConfig(svc) as {checks: Record<string, unknown>}
    ws.writeConfig({
      ...cfg,
      checks: {...cfg.checks, lint: `echo 'lint: app/x.py:3 <unused> & "bad"'; exit 3`},
    })
    const report = path.join(ws.dir, 'reports', 'deploy.xml')

    const failedChecks = await runCli(['deploy', '--json', '--junit', report], {cwd: ws.src})
    expect(failedChecks.exitCode, why(failedChecks)).toBe(1)
    const a = parseJunit(report)
    expect(a.attrs).toMatchObject({name: 'hotctl deploy', tests: '2', failures: '1'})
    expect(a.suites.map((s) => s.name)).toEqual(['checks'])
    const checks = new Map(a.suites[0]!.cases.map((c) => [c.name, c]))
    expect(checks.get('syntax')).toEqual({classname: 'hotctl.checks', name: 'syntax'})
    expect(checks.get('lint')!.failure!.text).toContain('lint: app/x.py:3 <unused> & "bad"')
    expect(checks.get('lint')!.failure!.message).toMatch(/exited 3/)

    // A deploy whose smoke fails is restored: both the new release's smoke and the restore's.
    ws.writeConfig(serviceConfig(svc))
    ws.setVersion('v2', {calcBroken: true})
    const restored = await runCli(['deploy', '--junit', report], {cwd: ws.src})
    expect(restored.exitCode, why(restored)).toBe(3)
    const b = parseJunit(report)
    expect(b.suites.map((s) => `${s.name} ${s.tests}/${s.failures}`)).toEqual([
      'checks 1/0',
      'smoke 2/1',
      'smoke after restore 2/0',
    ])
    const smoke = b.suites[1]!.cases
    expect(smoke.map((c) => [c.classname, c.name, !!c.failure])).toEqual([
      ['hotctl.smoke', 'health', false],
      ['hotctl.smoke', 'calc', true],
    ])
    expect(smoke[1]!.failure!.text).toMatch(/500/)

    const checkReport = path.join(ws.dir, 'check.xml')
    const check = await runCli(['check', '--junit', checkReport], {cwd: ws.src})
    expect(check.exitCode, why(check)).toBe(0)
    const c = parseJunit(checkReport)
    expect(c.suites.map((s) => s.name)).toEqual(['preflight', 'checks'])
    expect(c.attrs.failures).toBe('0')
    expect(c.suites[0]!.cases.length).toBeGreaterThan(3)

    const rbReport = path.join(ws.dir, 'rollback.xml')
    ws.setVersion('v3')
    expect((await runCli(['deploy'], {cwd: ws.src})).exitCode).toBe(0)
    const rb = await runCli(['rollback', '--junit', rbReport], {cwd: ws.src})
    expect(rb.exitCode, why(rb)).toBe(0)
    expect(parseJunit(rbReport).suites.map((s) => `${s.name} ${s.tests}/${s.failures}`)).toEqual(['smoke 2/0'])
  })
})
