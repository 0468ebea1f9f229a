/**
 * Errors that say what to do (issue 8 item 7): no raw errno or library text as the whole message.
 * Each message through the built binary.
 */
import fs from 'node:fs'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {makeWorkspace, removeWorkspaces, requireBuild, runCli} from './helpers.js'

beforeAll(requireBuild)
afterAll(removeWorkspaces)

const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`

describe('errors that say what to do', {timeout: 60_000}, () => {
  it('a target that is a file (or under one) says so, not ENOTDIR … scandir', async () => {
    const ws = makeWorkspace()
    fs.writeFileSync(path.join(ws.dir, 'afile'), 'x')
    ws.writeConfig({target: '../afile/app'})
    for (const cmd of [['deploy'], ['check'], ['rollback']]) {
      const r = await runCli(cmd, {cwd: ws.src})
      expect(r.exitCode, why(r)).toBe(1)
      expect(r.stdout + r.stderr).toContain(`${path.join(ws.dir, 'afile')} is a file, not a directory`)
      expect(r.stdout + r.stderr).not.toMatch(/ENOTDIR|scandir/)
    }
    ws.writeConfig({target: '../afile'})
    const r = await runCli(['deploy'], {cwd: ws.src})
    expect(r.stderr).toContain(`target: ${path.join(ws.dir, 'afile')} is a file, not a directory`)
  })

  it('--config pointing at a directory says so and names the config inside it, not EISDIR "fix the syntax"', async () => {
    const ws = makeWorkspace()
    ws.writeConfig({target: '../live'})
    const r = await runCli(['deploy', '--config', ws.src], {cwd: ws.dir})
    expect(r.exitCode, why(r)).toBe(2)
    expect(r.stderr).toContain(`--config points at a directory: ${ws.src}`)
    expect(r.stderr).toContain(`--config ${ws.configPath}`)
    expect(r.stderr).not.toMatch(/EISDIR|syntax/)
  })

  it('a source that does not exist says so, not "planning scan … failed (exit 23)"', async () => {
    const ws = makeWorkspace()
    ws.writeConfig({target: '../live', source: '../nowhere'})
    const r = await runCli(['deploy'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(1)
    expect(r.stderr).toContain(`source: ${path.join(ws.dir, 'nowhere')} does not exist`)
    expect(r.stderr).not.toMatch(/exit 23|rsync/)
  })

  it('a smoke entry with neither url nor command: "smoke.0: needs `url` … or `command`"', async () => {
    const ws = makeWorkspace()
    ws.writeConfig({target: '../live', smoke: [{name: 'x'}]})
    const r = await runCli(['check'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(2)
    expect(r.stderr).toMatch(/smoke\.0: needs `url` \(an HTTP check\) or `command`/)
    expect(r.stderr).not.toContain('smoke.0.url')
  })

  it('an argv check whose binary does not exist: "not found: NAME (not on PATH)", and its detail is never empty', async () => {
    const ws = makeWorkspace()
    ws.writeConfig({target: '../live', checks: {ghost: {argv: ['no-such-binary-hotctl', '-x']}}})
    const r = await runCli(['check'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(1)
    expect(r.stderr).toContain('not found: no-such-binary-hotctl (not on PATH)')
    expect(r.stdout + r.stderr).not.toContain('undefined')
    const j = await runCli(['check', '--json'], {cwd: ws.src})
    expect(j.json.checks).toEqual([
      {name: 'ghost', ok: false, detail: 'not found: no-such-binary-hotctl (not on PATH)'},
    ])
  })

  it('`deploy now-please` is an unexpected argument of deploy, not an unknown command', async () => {
    const ws = makeWorkspace()
    const r = await runCli(['deploy', 'now-please'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(2)
    expect(r.stderr).toContain('unexpected argument "now-please" for `hotctl deploy`')
    expect(r.stderr).toContain('See `hotctl deploy --help`')
    expect(r.stderr).not.toContain('unknown command')
    const j = await runCli(['backups', 'bogus', '--json'], {cwd: ws.src})
    expect(j.json.error.message).toBe('unexpected argument "bogus" for `hotctl backups`')
    expect(j.json.error.hint).toMatch(/backups prune, backups show, backups verify/)
  })

  it('an empty config file named by --config: "config file X is empty", not "no config found"', async () => {
    const ws = makeWorkspace()
    const empty = path.join(ws.dir, 'empty.yaml')
    fs.writeFileSync(empty, '')
    const r = await runCli(['check', '--config', empty], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(2)
    expect(r.stderr).toContain(`config file ${empty} is empty`)
    expect(r.stderr).not.toMatch(/no .*config found|expected string/)
    fs.writeFileSync(ws.configPath, '# nothing yet\n')
    const found = await runCli(['check'], {cwd: ws.src})
    expect(found.stderr).toContain(`config file ${ws.configPath} is empty`)
  })

  it('hints use the command as typed (`hotctl backups prune --help`), not the colon form', async () => {
    const ws = makeWorkspace()
    ws.writeConfig({target: '../live'})
    const r = await runCli(['backups', 'prune', '--bogus'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(2)
    expect(r.stderr).toContain('See `hotctl backups prune --help`')
    expect(r.stderr, r.stderr).not.toContain('backups:prune')
    expect(r.stderr).not.toContain('See more help with --help')
  })
})
