import path from 'node:path'
import {execa} from 'execa'
import {beforeAll, describe, expect, it} from 'vitest'
import {ROOT, requireBuild} from './helpers.js'

beforeAll(requireBuild)

describe('npm run demo (templates/demo/run.mjs)', () => {
  it(
    'runs the whole loop: hot deploy (same PID), broken deploy restored (exit 3), rollback',
    {timeout: 120_000},
    async () => {
      const env: Record<string, string> = {}
      for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('HOTCTL_')) env[k] = v
      env.NO_COLOR = '1'
      const r = await execa('node', [path.join(ROOT, 'templates/demo/run.mjs')], {
        cwd: ROOT,
        env,
        extendEnv: false,
        reject: false,
        timeout: 110_000,
        stdin: 'ignore',
        all: true,
      })
      const out = String(r.all)
      expect(r.exitCode, out).toBe(0)
      const pid = /service pid (\d+)/.exec(out)?.[1]
      expect(pid, out).toBeDefined()
      expect(out).toContain(`PID unchanged: ${pid} (no restart)`)
      expect(out).toMatch(/deploy exits 3 \(failed after changing the target; backup restored/)
      expect(out).toMatch(/Restored backup \d{14} and proved release \d{14} live again/)
      expect(out).toContain('the OLD version still answers calc correctly')
      expect(out).toContain('the original answer is back')
      // The agent's token: generated into a 0600 file, an unauthenticated reload refused, the token never printed.
      expect(out).toMatch(/agent token: generated into \S+hotreload\.token \(mode 600\)/)
      expect(out).toContain('check without the token → 401')
      expect(out).toContain('the agent refuses a reload request without the token')
      expect(out).not.toMatch(/[0-9a-f]{32}/)
      expect(out).toContain('Demo passed')
      expect(out).toContain(`Stopped the demo service (pid ${pid})`)
      // The temp dir is gone.
      const tmp = /working in (\S+)/.exec(out)?.[1]
      expect(tmp).toBeDefined()
      const {existsSync} = await import('node:fs')
      expect(existsSync(tmp!)).toBe(false)
    },
  )
})
