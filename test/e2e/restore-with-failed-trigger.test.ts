/**
 * A restore is proven by its content plus the service reporting the backup's release id. A reload
 * trigger that cannot be reached during the restore is a warning where a status can confirm the id
 * (exit 3), and leaves the restore unproven (exit 4) only where nothing else can.
 */
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {
  makeWorkspace,
  readMarker,
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

/** A local port nothing listens on (the OS handed it out, then it was closed). */
async function deadPort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const {port} = server.address() as net.AddressInfo
  await new Promise((r) => server.close(r))
  return port
}

/** v2 deployed and live with the standard config; returns its release id and tree hash. */
async function deployedV2() {
  const ws = makeWorkspace()
  const svc = await startService(ws.live)
  ws.writeConfig(serviceConfig(svc, {checks: {}}))
  ws.setVersion('v2')
  const first = await runCli(['deploy', '--json'], {cwd: ws.src})
  expect(first.exitCode, why(first)).toBe(0)
  return {ws, svc, v2: first.json.release as string, hashV2: treeHash(ws.live)}
}

describe('a restore whose reload trigger fails', {timeout: 90_000}, () => {
  it('a dead trigger URL with a live status: the deploy fails; the restore is proven by content and the old id (3, not 4)', async () => {
    const {ws, svc, v2, hashV2} = await deployedV2()
    const cfg = serviceConfig(svc, {checks: {}})
    const reload = cfg.reload as Record<string, unknown>
    reload.trigger = {
      url: `http://127.0.0.1:${await deadPort()}/api/v1/hot-reload/check`,
      method: 'POST',
      timeout: '2s',
      retries: 1,
    }
    ws.writeConfig(cfg)
    ws.setVersion('v3', {calcBroken: true})

    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(3)
    expect(r.json.outcome).toBe('restored')
    expect(r.json.error).toMatch(/reload trigger|ECONNREFUSED/)
    expect(r.json.restore.ok, why(r)).toBe(true)
    expect(r.json.restore.proof.confirmed).toBe(v2)
    expect(r.json.restore.proof.reloaded).toEqual([])
    expect(r.json.restore.proof.warnings).toHaveLength(1)
    expect(r.json.restore.proof.warnings[0]).toMatch(
      /service: reload trigger failed .*ECONNREFUSED.*its status decides/,
    )
    expect(r.stderr).toMatch(/hotctl: warning: service: reload trigger failed/)

    expect(treeHash(ws.live)).toBe(hashV2)
    expect(readMarker(ws.live)?.id).toBe(v2)
    expect((await svc.status()).version).toBe(v2)
    expect(await svc.hello()).toBe('hello v2')
    const st = await runCli(['status', '--json'], {cwd: ws.src})
    expect(st.exitCode, why(st)).toBe(0)
    expect(st.json.needsAttention).toBe(false)
    expect(st.json.recent[0].result).toBe('restored')
    expect(st.json.recent[0].exitCode).toBe(3)
  })

  it('a trigger that dies after the service loaded the failed release: its status still reports it, so unproven (4)', async () => {
    const {ws, svc} = await deployedV2()
    // Reloads the service once (the deploy), then fails every time (the restore).
    const trigger = path.join(ws.dir, 'trigger.sh')
    const post = `import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="POST"), timeout=5)`
    const script = [
      '#!/bin/sh',
      'if [ -e "$0.used" ]; then echo "trigger endpoint gone" >&2; exit 7; fi',
      'touch "$0.used"',
      `exec python3 -c '${post}' ${svc.url('/api/v1/hot-reload/check')}`,
    ]
    fs.writeFileSync(trigger, `${script.join('\n')}\n`, {mode: 0o755})
    const cfg = serviceConfig(svc, {checks: {}})
    const reload = cfg.reload as Record<string, unknown>
    reload.trigger = {command: {argv: [trigger]}}
    reload.timeout = '2s'
    ws.writeConfig(cfg)
    ws.setVersion('v3', {calcBroken: true})

    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(4)
    expect(r.json.outcome).toBe('needs-attention')
    expect(r.json.error).toMatch(/smoke failed/)
    expect(r.json.restore.ok).toBe(false)
    expect(r.json.restore.differences).toEqual([]) // the content was restored; the service was not
    expect(r.json.restore.proof.warnings[0]).toMatch(/reload trigger failed/)
    expect(r.json.restore.error).toMatch(/not live/)
    expect((await svc.status()).version).toBe(r.json.release)
    const st = await runCli(['status', '--json'], {cwd: ws.src})
    expect(st.exitCode, why(st)).toBe(4)
    expect(st.json.needsAttention).toBe(true)
  })

  it('without a reload.status nothing else proves the reload: a dead trigger leaves the restore unproven (4), saying why', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    const cfg = serviceConfig(svc, {checks: {}})
    const reload = cfg.reload as Record<string, unknown>
    delete reload.status
    ws.writeConfig(cfg)
    ws.setVersion('v2')
    const first = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(first.exitCode, why(first)).toBe(0)
    const hashV2 = treeHash(ws.live)

    reload.trigger = {
      url: `http://127.0.0.1:${await deadPort()}/api/v1/hot-reload/check`,
      method: 'POST',
      timeout: '2s',
      retries: 0,
    }
    ws.writeConfig(cfg)
    ws.setVersion('v3')
    const r = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(r.exitCode, why(r)).toBe(4)
    expect(r.json.restore.ok).toBe(false)
    expect(r.json.restore.differences).toEqual([])
    expect(r.json.restore.error).toMatch(/has no reload\.status, so nothing else shows it runs the restored tree/)
    expect(treeHash(ws.live)).toBe(hashV2)
  })
})
