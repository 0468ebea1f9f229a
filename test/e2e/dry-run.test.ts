import fs from 'node:fs'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {
  listTree,
  makeWorkspace,
  removeWorkspaces,
  requireBuild,
  runCli,
  serviceConfig,
  startService,
  stopAllServices,
  treeHash,
} from './helpers.js'

beforeAll(requireBuild)
afterEach(stopAllServices)
afterAll(removeWorkspaces)

const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`

/** Every path under a directory with its size, mode and mtime: equal = nothing created, written or touched. */
function fingerprint(dir: string): string {
  if (!fs.existsSync(dir)) return 'absent'
  const rows = [...listTree(dir)].map(([rel, e]) => `${rel} ${e.type} ${e.mode} ${e.size} ${e.mtimeMs} ${e.link ?? ''}`)
  return `${fs.statSync(dir).mtimeMs}\n${rows.sort().join('\n')}`
}

describe('deploy --dry-run', {timeout: 60_000}, () => {
  it('leaves the state dir and the target byte-identical, creating no file, and shows the same steps a deploy runs', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc))
    ws.setVersion('v2')
    // A first deploy, so the state dir exists with caches, journal and a backup to compare against.
    expect((await runCli(['deploy'], {cwd: ws.src})).exitCode).toBe(0)
    ws.setVersion('v3')
    // A file whose mtime changed but content did not: planning hashes it (and must not keep the hash).
    const css = path.join(ws.src, 'static/style.css')
    fs.utimesSync(css, new Date(), new Date(Date.now() + 5000))
    const state = fingerprint(ws.stateDir)
    const live = treeHash(ws.live)
    const liveMeta = fingerprint(ws.live)

    const r = await runCli(['deploy', '--dry-run', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    expect(r.json.outcome).toBe('dry-run')
    expect(r.json.changes.changed).toEqual(['app/handlers.py'])
    expect(fingerprint(ws.stateDir)).toBe(state)
    expect(treeHash(ws.live)).toBe(live)
    expect(fingerprint(ws.live)).toBe(liveMeta)
    // The steps are the deploy's own task tree, in order.
    const steps = r.json.steps as string[]
    const order = [
      'preflight',
      'checks',
      'lock the target',
      'plan',
      'back up',
      'sync the changed paths',
      'verify',
      'trigger hot reload',
      'confirm',
      'smoke',
      'prune',
    ]
    let at = -1
    for (const word of order) {
      const i = steps.findIndex((s, j) => j > at && s.toLowerCase().includes(word))
      expect(i, `${word} in ${JSON.stringify(steps)}`).toBeGreaterThan(at)
      at = i
    }
    // Human output: the same tree, skipped steps saying what they would do.
    const h = await runCli(['deploy', '--dry-run'], {cwd: ws.src})
    expect(h.exitCode, why(h)).toBe(0)
    expect(h.stderr).toContain('dry run: would back up the target')
    expect(h.stderr).toMatch(/dry run: would sync 0 added, 1 changed, 0 deleted/)
    expect(fingerprint(ws.stateDir)).toBe(state)
  })

  it('on a target never deployed to, creates no state dir at all', async () => {
    const ws = makeWorkspace()
    ws.writeConfig({target: '../live'})
    ws.setVersion('v2')
    const r = await runCli(['deploy', '--dry-run'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(0)
    expect(fs.existsSync(ws.stateDir)).toBe(false)
  })
})
