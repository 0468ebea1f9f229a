/**
 * Fleet end-to-end helpers: a controller workspace (source tree + config) aimed at a test bed
 * (harness.ts: real sshd hosts with private /srv and the Python demo service), and readers of what
 * each host holds. The built binary runs as a subprocess, as users run it.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {type Bed, DEMO_APP, TARGET} from './harness.js'

export interface Controller {
  dir: string
  src: string
  config: string
  env: Record<string, string>
  /** Writes the config (merged over the defaults). */
  write(over?: Record<string, unknown>): void
  /** Makes the deploy's smoke check fail on these hosts (a restore's passes). */
  failSmoke(...hosts: string[]): void
}

const made: string[] = []

/** A controller checkout: src = the demo app at `version`, config = hosts of the bed, HTTP reload through the agent. */
export function controller(bed: Bed, over: Record<string, unknown> = {}, version = 'v2'): Controller {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-fleet-ctl-'))
  made.push(dir)
  const src = path.join(dir, 'src')
  fs.cpSync(DEMO_APP, src, {recursive: true})
  setVersion(src, version)
  const config = path.join(dir, 'hotctl.config.json')
  const base = `http://\${host}:${bed.servicePort}/api/v1`
  const write = (more: Record<string, unknown> = {}) =>
    fs.writeFileSync(
      config,
      JSON.stringify(
        {
          source: './src',
          target: TARGET,
          hosts: bed.hostEntries(),
          ssh: {config: bed.sshConfig, connectTimeout: '5s', serverAliveInterval: '2s', timeout: '20s'},
          reload: {
            trigger: {url: `${base}/hot-reload/check`, headers: {authorization: 'Bearer ${HOTRELOAD_TOKEN}'}},
            status: {url: `${base}/hot-reload/status`, settle: '300ms', grace: '3s'},
            timeout: '20s',
          },
          // Fails a deploy (never a restore: HOTCTL_RELEASE_ID is set only for the new release) on
          // the hosts failSmoke() names.
          smoke: [
            {name: 'hello', url: `${base}/hello`},
            {
              name: 'host-ok',
              on: 'local',
              command: `test -z "$HOTCTL_RELEASE_ID" || test ! -e '${dir}/fail-smoke-'"$HOTCTL_HOST"`,
            },
          ],
          ...over,
          ...more,
        },
        null,
        2,
      ),
    )
  write()
  const failSmoke = (...hosts: string[]) => {
    for (const h of hosts) fs.writeFileSync(path.join(dir, `fail-smoke-${h}`), '')
  }
  return {dir, src, config, env: {HOTRELOAD_TOKEN: bed.token ?? ''}, write, failSmoke}
}

/** The demo app's greeting names the version: `hello` answers "… from vN". */
export function setVersion(src: string, version: string): void {
  const file = path.join(src, 'app', 'handlers.py')
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/ from v\w+"/, ` from ${version}"`))
}

export function removeControllers(): void {
  for (const d of made.splice(0)) fs.rmSync(d, {recursive: true, force: true})
}

/** The release id in a host's marker (null: none). */
export function markerOf(bed: Bed, host: string): string | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(bed.host(host).app, '.hotctl-release.json'), 'utf8')).id
  } catch {
    return null
  }
}

/** What the host's service says it runs: its status version and its hello text. */
export async function servedBy(bed: Bed, host: string): Promise<{version: string | null; hello: string}> {
  const base = bed.host(host).serviceUrl!
  const status = (await (await fetch(`${base}/api/v1/hot-reload/status`)).json()) as {version: string | null}
  const hello = await (await fetch(`${base}/api/v1/hello`)).text()
  return {version: status.version, hello}
}

/** The host's journal lines (parsed), read from its state dir. */
export function journalOf(bed: Bed, host: string): Record<string, unknown>[] {
  const file = path.join(bed.host(host).root, '.app.hotctl', 'journal.jsonl')
  if (!fs.existsSync(file)) return []
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

/** `op result` of each ended operation in a host's journal, oldest first. */
export function endsOf(bed: Bed, host: string): string[] {
  const j = journalOf(bed, host)
  const ops = new Map(j.filter((e) => e.event === 'start').map((e) => [e.opId, e.op]))
  return j.filter((e) => e.event === 'end').map((e) => `${ops.get(e.opId)} ${e.result}`)
}
