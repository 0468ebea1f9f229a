import {stripVTControlCharacters} from 'node:util'
import {describe, expect, it} from 'vitest'
import {runInit} from '../../src/init/init.js'
import {renderInit} from '../../src/ui/init-report.js'
import {tmpDir, writeTree} from './helpers.js'

const lines = (text: string) => stripVTControlCharacters(text).split('\n')

describe('renderInit', () => {
  it('the file written and why that template, the target (a placeholder flagged), the checks, the next steps', async () => {
    const dir = tmpDir()
    writeTree(dir, {'requirements.txt': 'pytest\nflake8\n', 'app/main.py': 'print(1)\n'})
    const r = await runInit({cwd: dir, target: undefined, withAgent: false, force: false})
    const text = lines(renderInit(r))
    expect(text.slice(0, 4)).toEqual([
      `Wrote ${r.path} (template python: ${r.reason})`,
      'Target:  /opt/app (placeholder: edit it)',
      `Checks:  ${Object.entries(r.checks)
        .map(([n, c]) => `${n}: ${c}`)
        .join('; ')}`,
      'Next steps:',
    ])
    expect(text.slice(4)).toEqual(r.next.map((n) => `  ${n}`))
    expect(text[2]).toMatch(/^Checks: {2}\w+: .*pytest/)
  })

  it('overwritten, with the agent: where it was copied, the token file (never the token), a warning; no checks found', async () => {
    const dir = tmpDir()
    writeTree(dir, {'hotctl.config.yaml': 'target: /srv/x\n', '.hotctlrc.json': '{"target": "/srv/x"}\n'})
    const r = await runInit({cwd: dir, template: 'generic', target: '/srv/app', withAgent: true, force: true})
    expect(r.tokenFile).toBeTruthy()
    expect(lines(renderInit(r))).toEqual([
      `Overwrote ${r.path} (template generic: ${r.reason})`,
      'Target:  /srv/app',
      'Checks:  none detected (add them under checks:)',
      `Agent:   copied to ${r.agent} (see templates/python/README.md to wire it in)`,
      `Token:   generated into ${r.tokenFile} (mode 0600, never printed)${r.gitignore ? `, listed in ${r.gitignore}` : ''}`,
      ...r.warnings.map((w) => `Warning: ${w}`),
      'Next steps:',
      ...r.next.map((n) => `  ${n}`),
    ])
    expect(r.warnings.length).toBeGreaterThan(0)
  })
})
