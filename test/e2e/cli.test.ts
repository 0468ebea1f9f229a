import fs from 'node:fs'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {
  type CliResult,
  makeWorkspace,
  MARKER,
  readMarker,
  removeWorkspaces,
  requireBuild,
  runCli,
  serviceConfig,
  type Service,
  startService,
  stopAllServices,
  treeContent,
  treeHash,
} from './helpers.js'

beforeAll(requireBuild)
afterEach(stopAllServices)
afterAll(removeWorkspaces)

const why = (r: {stdout: string; stderr: string}) => `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`

/** --json contract: exactly one JSON object on stdout, with ok/exitCode matching the process. */
function expectJson(r: CliResult, exitCode: number): any {
  expect(r.exitCode, why(r)).toBe(exitCode)
  expect(r.json, `stdout is not exactly one JSON object:\n${why(r)}`).toBeDefined()
  expect(r.json.exitCode).toBe(exitCode)
  expect(r.json.ok).toBe(exitCode === 0)
  if (exitCode !== 0 && r.json.error) expect(typeof r.json.error.message).toBe('string')
  return r.json
}

describe('--json', {timeout: 90_000}, () => {
  it('every command prints exactly one JSON object, on success', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    ws.writeConfig(serviceConfig(svc))
    ws.setVersion('v2')
    const h0 = treeHash(ws.live)

    const check = expectJson(await runCli(['check', '--json'], {cwd: ws.src}), 0)
    const names = check.preflight.map((p: {name: string}) => p.name) as string[]
    expect(names).toEqual(expect.arrayContaining(['rsync', 'source', 'target']))
    expect(names.some((n) => n.startsWith('state dir'))).toBe(true)
    expect(check.preflight.every((p: {ok: boolean}) => p.ok)).toBe(true)
    expect(check.checks).toEqual([{name: 'syntax', ok: true, detail: 'passed'}])

    const dry = expectJson(await runCli(['deploy', '--dry-run', '--json'], {cwd: ws.src}), 0)
    expect(dry.outcome).toBe('dry-run')
    expect(dry.changes.changed).toEqual(['app/handlers.py'])
    expect(treeHash(ws.live)).toBe(h0)
    expect(ws.backupFiles()).toEqual([])

    const dep = expectJson(await runCli(['deploy', '--json'], {cwd: ws.src}), 0)
    expect(dep.outcome).toBe('deployed')
    const again = expectJson(await runCli(['deploy', '--json'], {cwd: ws.src}), 0)
    expect(again.outcome).toBe('nothing-to-deploy')

    const status = expectJson(await runCli(['status', '--json'], {cwd: ws.src}), 0)
    expect(status.release.id).toBe(dep.release)
    expect(status.stats.deploys).toBe(1)
    expect(Array.isArray(status.recent)).toBe(true)

    const backups = expectJson(await runCli(['backups', '--json'], {cwd: ws.src}), 0)
    expect(backups.backups.map((b: {id: string}) => b.id)).toEqual([dep.release])

    const prune = expectJson(await runCli(['backups', 'prune', '--keep', '5', '--json'], {cwd: ws.src}), 0)
    expect(prune.keep).toBe(5)
    expect(prune.removed).toEqual([])

    const rb = expectJson(await runCli(['rollback', '--json'], {cwd: ws.src}), 0)
    expect(rb.outcome).toBe('rolled-back')
    expect(rb.snapshot).toBe(dep.release) // taken before that deploy: holds the tree from before hotctl
    expect(rb.release).toBeNull()
    expect(rb.undo).toMatch(/^\d{14}$/)
    expect(treeHash(ws.live)).toBe(h0)
  })

  it('an unknown command is a usage error (2) naming the commands, one JSON object under --json', async () => {
    const ws = makeWorkspace()
    const j = expectJson(await runCli(['deploi', '--json'], {cwd: ws.src}), 2)
    expect(j.error.message).toContain('deploi')
    expect(j.error.hint).toContain('deploy')
    const h = await runCli(['deploi'], {cwd: ws.src})
    expect(h.exitCode).toBe(2)
    expect(h.stderr).toContain('unknown command "deploi"')
  })

  it(
    'errors are one JSON object too: no config (2), invalid field (2, names the path), missing env var (2), bad flag (2), ' +
      'failed check (1)',
    async () => {
      const ws = makeWorkspace()
      const empty = path.join(ws.dir, 'nowhere')
      fs.mkdirSync(empty)
      const prune = ['backups', 'prune', '--keep', '5']
      const commands = [['deploy'], ['deploy', '--dry-run'], ['rollback'], ['backups'], prune, ['status'], ['check']]
      for (const cmd of commands) {
        const j = expectJson(await runCli([...cmd, '--json'], {cwd: empty}), 2)
        expect(j.error.message, cmd.join(' ')).toMatch(/no hotctl config found/)
        expect(j.error.hint).toMatch(/--config/)
      }

      const svc = await startService(ws.live)
      const bad = serviceConfig(svc)
      ;(bad.reload as {status: {url: string}}).status.url = 'not a url'
      ws.writeConfig(bad)
      for (const cmd of [['deploy'], ['check'], ['status']]) {
        const j = expectJson(await runCli([...cmd, '--json'], {cwd: ws.src}), 2)
        expect(j.error.message).toContain('reload.status.url')
        expect(j.error.message).toContain(ws.configPath)
      }
      const unknownKey = serviceConfig(svc, {kepe: 3})
      ws.writeConfig(unknownKey)
      expect(expectJson(await runCli(['deploy', '--json'], {cwd: ws.src}), 2).error.message).toContain('kepe')
      const badTimeout = serviceConfig(svc)
      ;(badTimeout.reload as Record<string, unknown>).timeout = 'soon'
      ws.writeConfig(badTimeout)
      expect(expectJson(await runCli(['deploy', '--json'], {cwd: ws.src}), 2).error.message).toContain('reload.timeout')

      const withVar = serviceConfig(svc)
      ;(withVar.reload as {trigger: Record<string, unknown>}).trigger.headers = {
        Authorization: 'Bearer ${HOTCTL_E2E_MISSING_TOKEN}',
      }
      ws.writeConfig(withVar)
      const missing = expectJson(await runCli(['deploy', '--json'], {cwd: ws.src}), 2)
      expect(missing.error.message).toContain('HOTCTL_E2E_MISSING_TOKEN')
      expect(missing.error.message).toContain('reload.trigger.headers.Authorization')

      // --config to a file that does not exist.
      expectJson(await runCli(['status', '--json', '--config', path.join(ws.dir, 'nope.yaml')], {cwd: ws.dir}), 2)

      ws.writeConfig(serviceConfig(svc))
      const flag = expectJson(await runCli(['deploy', '--bogus-flag', '--json'], {cwd: ws.src}), 2)
      expect(flag.error.message).toContain('bogus-flag')
      expectJson(await runCli(['backups', 'prune', '--keep', '0', '--json'], {cwd: ws.src}), 2)

      ws.setVersion('v2', {syntaxError: true})
      const check = expectJson(await runCli(['check', '--json'], {cwd: ws.src}), 1)
      expect(check.checks).toEqual([expect.objectContaining({name: 'syntax', ok: false})])
      const dep = expectJson(await runCli(['deploy', '--json'], {cwd: ws.src}), 1)
      expect(dep.error.message).toContain('syntax')
      expect(ws.backupFiles()).toEqual([])
    },
  )
})

describe('secrets', {timeout: 90_000}, () => {
  it('a ${VAR} token from the environment never appears in output, journal or backups', async () => {
    const TOKEN = 's3cr3t-token-value'
    const ws = makeWorkspace()
    const svc = await startService(ws.live, {token: TOKEN})
    const unauthorized = await fetch(svc.url('/api/v1/hot-reload/check'), {method: 'POST'})
    expect(unauthorized.status).toBe(401) // the service really wants the token

    const cfg = serviceConfig(svc)
    ;(cfg.reload as {trigger: Record<string, unknown>}).trigger.headers = {Authorization: 'Bearer ${HOTCTL_TOKEN}'}
    // A smoke command that prints the token, and fails for v3 (so its output ends up in errors).
    const leaky =
      'echo "token=$HOTCTL_TOKEN"; if grep -q v3 app/handlers.py; then echo "v3 fails, token $HOTCTL_TOKEN" >&2; exit 1; fi'
    ;(cfg.smoke as unknown[]).push({name: 'leaky', command: leaky})
    ws.writeConfig(cfg)
    const env = {HOTCTL_TOKEN: TOKEN}
    const outputs: CliResult[] = []
    const run = async (args: string[]) => {
      const r = await runCli(args, {cwd: ws.src, env})
      outputs.push(r)
      return r
    }

    ws.setVersion('v2')
    expect((await run(['deploy', '--dry-run', '--json'])).exitCode).toBe(0)
    const dep = await run(['deploy', '--json'])
    expect(dep.exitCode, why(dep)).toBe(0)
    expect((await svc.status()).version).toBe(dep.json.release) // the trigger carried the right token
    await run(['status', '--json'])
    await run(['status'])
    await run(['backups', '--json'])
    await run(['check', '--json'])

    ws.setVersion('v3')
    const failedJson = await run(['deploy', '--json'])
    expect(failedJson.exitCode, why(failedJson)).toBe(3)
    expect(failedJson.json.error).toContain('leaky')
    const failedHuman = await run(['deploy'])
    expect(failedHuman.exitCode, why(failedHuman)).toBe(3)
    await run(['rollback', '--json'])
    await run(['status', '--json'])

    // Without the variable: exit 2 naming it, and still no value anywhere.
    const noVar = await runCli(['deploy', '--json'], {cwd: ws.src, env: {HOTCTL_TOKEN: undefined}})
    expect(noVar.exitCode).toBe(2)
    expect(noVar.json.error.message).toContain('HOTCTL_TOKEN')

    for (const r of outputs) {
      expect(r.stdout, 'stdout').not.toContain(TOKEN)
      expect(r.stderr, 'stderr').not.toContain(TOKEN)
    }
    const journal = fs.readFileSync(path.join(ws.stateDir, 'journal.jsonl'), 'utf8')
    expect(journal.length).toBeGreaterThan(0)
    expect(journal).not.toContain(TOKEN)
    const backupDir = path.join(ws.stateDir, 'backups')
    const metas = fs.readdirSync(backupDir).filter((f) => f.endsWith('.json'))
    expect(metas.length).toBeGreaterThanOrEqual(3)
    for (const f of metas) expect(fs.readFileSync(path.join(backupDir, f), 'utf8')).not.toContain(TOKEN)
    // Nothing anywhere in the state dir or the target holds it.
    const walk = (dir: string): string[] =>
      fs
        .readdirSync(dir, {withFileTypes: true})
        .flatMap((d) => (d.isDirectory() ? walk(path.join(dir, d.name)) : [path.join(dir, d.name)]))
    for (const f of [...walk(ws.stateDir), ...walk(ws.live)]) expect(fs.readFileSync(f).includes(TOKEN), f).toBe(false)
  })

  // Secrets masked in task output (the simple renderer under CI prints it); a long numeric
  // secret is masked even though it contains 14 digits (which look like an id); a secret equal to
  // one of hotctl's own words ("deploy") does not rewrite the journal's own fields.
  it('secrets stay out of task output, long numeric secrets are masked, and a secret "deploy" keeps the journal intact', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    const env = {API_TOKEN: 's3cr3t-value-123', ACCOUNT_NO: '12345678901234567890', APPUSER: 'deploy', CI: '1'}
    const cfg = serviceConfig(svc, {checks: {}})
    const url = svc.url('/health?token=${API_TOKEN}&account=${ACCOUNT_NO}')
    ;(cfg.smoke as unknown[]).push({
      name: 'token',
      url,
      headers: {'X-User': '${APPUSER}'},
      expect: {status: 404},
      retries: 0,
    })
    ws.writeConfig(cfg)
    const outputs: {stdout: string; stderr: string}[] = []

    ws.setVersion('v2')
    const d1 = await runCli(['deploy'], {cwd: ws.src, env})
    outputs.push(d1)
    expect(d1.exitCode, why(d1)).toBe(0)
    expect(d1.stderr + d1.stdout).toContain('token=***') // the smoke line was printed, masked
    ws.setVersion('v3')
    const d2 = await runCli(['deploy', '--json'], {cwd: ws.src, env})
    outputs.push(d2)
    expect(d2.exitCode, why(d2)).toBe(0)

    // A smoke failing for v4 puts its output into the error: the 20-digit number must be masked there too.
    const acct = 'if grep -q v4 app/handlers.py; then echo "account ${ACCOUNT_NO} rejected"; exit 1; fi'
    ;(cfg.smoke as unknown[]).push({name: 'acct', command: acct})
    ws.writeConfig(cfg)
    ws.setVersion('v4')
    const d3 = await runCli(['deploy', '--json'], {cwd: ws.src, env})
    outputs.push(d3)
    expect(d3.exitCode, why(d3)).toBe(3)
    expect(d3.stdout).toContain('account *** rejected') // the number did reach the output, masked
    const d3h = await runCli(['deploy'], {cwd: ws.src, env})
    outputs.push(d3h)
    expect(d3h.exitCode, why(d3h)).toBe(3)

    for (const o of outputs) {
      for (const text of [o.stdout, o.stderr]) {
        expect(text).not.toContain(env.API_TOKEN)
        expect(text).not.toContain(env.ACCOUNT_NO)
      }
    }
    const journal = fs.readFileSync(path.join(ws.stateDir, 'journal.jsonl'), 'utf8')
    expect(journal).toContain('"op":"deploy"')
    expect(journal).not.toContain(env.API_TOKEN)
    expect(journal).not.toContain(env.ACCOUNT_NO)
    const st = await runCli(['status', '--json'], {cwd: ws.src, env})
    expect(st.json.stats.deploys).toBe(4)
    expect(st.json.stats.succeeded).toBe(2)
    expect(st.json.recent[0].op).toBe('deploy')
    expect(readMarker(ws.live)?.id).toBe(d2.json.release)
    expect(fs.existsSync(path.join(ws.live, MARKER))).toBe(true)
  })
})

describe('env values in commands', {timeout: 60_000}, () => {
  // Env values are never pasted into shell commands (the shell expands ${VAR} itself);
  // {argv} commands still get the value substituted.
  it('a ${VAR} holding shell syntax is not executed by a shell check; argv checks get the value', async () => {
    const ws = makeWorkspace()
    const pwned = path.join(ws.dir, 'pwned')
    const shellOut = path.join(ws.dir, 'shell-out.txt')
    const argvOut = path.join(ws.dir, 'argv-out.txt')
    const BRANCH = `x"; touch ${pwned}; echo "`
    ws.writeConfig({
      target: '../live',
      checks: {
        greet: `echo "branch is \${BRANCH}" > ${shellOut}`,
        viaArgv: {
          argv: ['node', '-e', 'require("fs").writeFileSync(process.argv[1], process.argv[2])', argvOut, '${BRANCH}'],
        },
      },
    })
    const r = await runCli(['check', '--json'], {cwd: ws.src, env: {BRANCH}})
    expect(r.exitCode, why(r)).toBe(0)
    expect(fs.existsSync(pwned), 'the env value ran as shell code').toBe(false)
    expect(fs.readFileSync(shellOut, 'utf8')).toBe(`branch is ${BRANCH}\n`)
    expect(fs.readFileSync(argvOut, 'utf8')).toBe(BRANCH)
  })

  // The same guard for a check whose *name* is "argv": the name must not make a shell string
  // count as an argv element (interpolate.ts decides by `path.includes('argv')`).
  it('a shell check named "argv" does not get env values pasted in either', async () => {
    const ws = makeWorkspace()
    const pwned = path.join(ws.dir, 'pwned')
    const BRANCH = `x"; touch ${pwned}; echo "`
    ws.writeConfig({target: '../live', checks: {argv: `echo "branch is \${BRANCH}" > /dev/null`}})
    const r = await runCli(['check', '--json'], {cwd: ws.src, env: {BRANCH}})
    expect(r.exitCode, why(r)).toBe(0)
    expect(fs.existsSync(pwned), 'the env value ran as shell code').toBe(false)
  })
})

describe('secrets vs ids', {timeout: 60_000}, () => {
  it('a ${VAR} value that happens to occur inside release ids (e.g. the year) does not mask the ids in output or journal', async () => {
    const ws = makeWorkspace()
    const svc = await startService(ws.live)
    const cfg = serviceConfig(svc, {checks: {}})
    // e.g. an environment tag / port that is also a substring of every id (YYYY...)
    ;(cfg.smoke as {headers?: Record<string, string>}[])[0]!.headers = {'X-Deploy-Tag': '${HOTCTL_E2E_TAG}'}
    ws.writeConfig(cfg)
    ws.setVersion('v2')
    const env = {HOTCTL_E2E_TAG: String(new Date().getUTCFullYear())}
    const r = await runCli(['deploy', '--json'], {cwd: ws.src, env})
    expect(r.exitCode, why(r)).toBe(0)
    const marker = readMarker(ws.live)!
    expect(r.json.release).toMatch(/^\d{14}$/)
    expect(r.json.release).toBe(marker.id)
    const b = await runCli(['backups', '--json'], {cwd: ws.src, env})
    expect(b.json.backups.map((x: {id: string}) => x.id)).toEqual([marker.id])
    // The journal drives recovery after a crash: its ids must be the real ones.
    const start = ws.journal().find((e) => e.event === 'start')!
    expect(start.opId).toBe(marker.id)
    expect(start.backup).toBe(marker.id)
  })
})

describe('multi-service reload', {timeout: 90_000}, () => {
  const trig = (s: Service) => ({url: s.url('/api/v1/hot-reload/check'), method: 'POST'})
  const stat = (s: Service) => ({url: s.url('/api/v1/hot-reload/status'), version: 'version'})

  it('triggers every service sharing the tree and succeeds only when all report the release', async () => {
    const ws = makeWorkspace()
    const api = await startService(ws.live)
    const stale = await startService(ws.live, {neverReport: true})
    ws.setVersion('v2')
    const h0 = treeHash(ws.live)

    // One of the two never reports the id: exit 3, restored.
    ws.writeConfig(
      serviceConfig(api, {
        checks: {},
        reload: {
          services: [
            {name: 'api', trigger: trig(api), status: stat(api)},
            {name: 'worker', trigger: trig(stale), status: stat(stale)},
          ],
          timeout: '3s',
        },
      }),
    )
    const failed = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(failed.exitCode, why(failed)).toBe(3)
    expect(failed.json.error).toContain('worker')
    expect(failed.json.error).not.toMatch(/\bapi\b.*reports/)
    expect(treeHash(ws.live)).toBe(h0)
    expect(failed.json.restore.proof.reloaded).toEqual(['api', 'worker'])
    await stale.stop()

    // Both report: deployed; each one was triggered (a service only learns the id on a reload).
    const worker = await startService(ws.live)
    const reloadsBefore = [(await api.status()).reloads, (await worker.status()).reloads]
    ws.writeConfig(
      serviceConfig(api, {
        checks: {},
        reload: [
          {name: 'api', trigger: trig(api), status: stat(api)},
          {name: 'worker', trigger: trig(worker), status: stat(worker)},
        ],
      }),
    )
    const ok = await runCli(['deploy', '--json'], {cwd: ws.src})
    expect(ok.exitCode, why(ok)).toBe(0)
    const release = ok.json.release as string
    expect(ok.json.proof.reloaded).toEqual(['api', 'worker'])
    expect(ok.json.proof.confirmed).toBe(release)
    for (const [i, s] of [api, worker].entries()) {
      const st = await s.status()
      expect(st.version).toBe(release)
      expect(st.reloads).toBe(reloadsBefore[i]! + 1)
      expect(await s.hello()).toBe('hello v2')
    }
    const status = await runCli(['status', '--json'], {cwd: ws.src})
    expect(status.json.services.map((s: {name: string; live: boolean}) => [s.name, s.live])).toEqual([
      ['api', true],
      ['worker', true],
    ])
    expect(readMarker(ws.live)?.id).toBe(release)
    expect(Object.keys(treeContent(ws.live))).toContain(MARKER)
  })
})
