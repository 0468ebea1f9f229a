/**
 * A real target for the pipelines, in process: a source tree and a live tree in a temp dir, the
 * config parsed as `hotctl` parses it, the local target (openTarget) with its state dir beside the live tree, and
 * (with `status: true`) a small HTTP service whose status reports the live tree's release marker.
 * What the pipelines return from it is what the commands render.
 */
import fs from 'node:fs'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import path from 'node:path'
import {afterEach} from 'vitest'
import {parseConfig} from '../../src/config/load.js'
import {MARKER_NAME} from '../../src/config/resolve.js'
import type {OpContext} from '../../src/pipeline/context.js'
import {openTarget} from '../../src/target/open.js'
import {tmpDir, writeTree} from './helpers.js'

const servers: http.Server[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((res) => s.close(res))))
})

export interface PipelineFixture {
  src: string
  live: string
  /** The status URL of the service (with `status: true`). */
  statusUrl?: string
  /** A context over the current config; `over` replaces top-level config fields. */
  ctx(over?: Record<string, unknown>): OpContext
  /** Lines the pipelines said (warnings, recovery notes). */
  said: string[]
}

export interface FixtureOptions {
  src: Record<string, string>
  live?: Record<string, string>
  /** Start a status service reporting the live release marker, and configure it as reload.status. */
  status?: boolean
}

export async function pipelineFixture(opts: FixtureOptions): Promise<PipelineFixture> {
  const base = tmpDir('hotctl-ui-')
  const src = path.join(base, 'src')
  const live = path.join(base, 'live')
  writeTree(src, opts.src)
  writeTree(live, opts.live ?? {})
  fs.mkdirSync(live, {recursive: true})
  // An older live tree, as in life: written in the same clock tick, a same-size file would look
  // unchanged to the size+mtime quick check.
  const past = new Date('2020-01-01T00:00:00Z')
  for (const rel of Object.keys(opts.live ?? {})) fs.utimesSync(path.join(live, rel), past, past)
  const statusUrl = opts.status ? await statusService(live) : undefined
  const said: string[] = []
  const ctx = (over: Record<string, unknown> = {}): OpContext => {
    const raw = {
      target: '../live',
      ...(statusUrl ? {reload: {status: {url: statusUrl, settle: '100ms'}, timeout: '5s'}} : {}),
      ...over,
    }
    const config = parseConfig(raw, path.join(src, 'hotctl.config.json'), {})
    const env = {HOTCTL_TARGET: config.target, HOTCTL_SOURCE: config.source, HOTCTL_STATE_DIR: config.stateDir}
    return {
      config,
      target: openTarget(config, {warn: (m) => said.push(m)}),
      ui: {json: true, say: (m) => said.push(m)},
      signal: new AbortController().signal,
      env,
    }
  }
  return {src, live, statusUrl, ctx, said}
}

/** Answers `{"version": <the live marker's id or null>, "state": "ready"}`. */
async function statusService(live: string): Promise<string> {
  const server = http.createServer((_req, res) => {
    let version: string | null = null
    try {
      version = JSON.parse(fs.readFileSync(path.join(live, MARKER_NAME), 'utf8')).id
    } catch {
      /* no marker yet */
    }
    res.writeHead(200, {'content-type': 'application/json'})
    res.end(JSON.stringify({version, state: 'ready'}))
  })
  servers.push(server)
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/status`
}
