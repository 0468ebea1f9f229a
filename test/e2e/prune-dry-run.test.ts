import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {listTree, makeWorkspace, removeWorkspaces, requireBuild, runCli} from './helpers.js'

beforeAll(requireBuild)
afterAll(removeWorkspaces)

const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`

describe('backups prune --dry-run', {timeout: 120_000}, () => {
  it('lists the backups that would go and the bytes freed, and removes nothing; the real prune frees exactly that', async () => {
    const ws = makeWorkspace()
    ws.writeConfig({target: '../live', protect: ['data/', '.env'], keep: 10})
    const releases: string[] = []
    for (const v of ['v2', 'v3', 'v4']) {
      ws.setVersion(v)
      fs.writeFileSync(path.join(ws.src, 'static', `${v}.bin`), crypto.randomBytes(20_000))
      const d = await runCli(['deploy', '--json'], {cwd: ws.src})
      expect(d.exitCode, why(d)).toBe(0)
      releases.push(d.json.release)
    }
    const before = [...listTree(ws.stateDir).keys()].filter((p) => !p.startsWith('cache'))

    const dry = await runCli(['backups', 'prune', '--keep', '1', '--dry-run', '--json'], {cwd: ws.src})
    expect(dry.exitCode, why(dry)).toBe(0)
    expect(dry.json.dryRun).toBe(true)
    // Only the newest backup stays (it also holds the newest release that passed smoke: pinned).
    expect(dry.json.removed).toEqual([releases[0], releases[1]])
    expect(dry.json.wouldRemove).toEqual([
      {id: releases[0], time: expect.any(String), release: null},
      {id: releases[1], time: expect.any(String), release: releases[0]},
    ])
    expect(dry.json.freedBytes).toBeGreaterThan(0)
    expect([...listTree(ws.stateDir).keys()].filter((p) => !p.startsWith('cache'))).toEqual(before)

    const human = await runCli(['backups', 'prune', '--keep', '1', '--dry-run'], {cwd: ws.src})
    expect(human.stdout).toContain('Dry run: would remove 2 backup(s), keeping the newest 1:')
    expect(human.stdout).toContain(`  ${releases[0]}  taken `)
    expect(human.stdout).toContain('holds the tree from before hotctl')
    expect(human.stdout).toContain(`  ${releases[1]}  taken `)
    expect(human.stdout).toMatch(/Would free \d+(\.\d)? (B|KiB)\. Nothing was removed\./)

    const real = await runCli(['backups', 'prune', '--keep', '1', '--json'], {cwd: ws.src})
    expect(real.exitCode, why(real)).toBe(0)
    expect(real.json.removed).toEqual(dry.json.removed)
    expect(real.json.freedBytes).toBe(dry.json.freedBytes)

    const none = await runCli(['backups', 'prune', '--keep', '1', '--dry-run'], {cwd: ws.src})
    expect(none.stdout).toContain('Dry run: nothing to prune')
  })
})
