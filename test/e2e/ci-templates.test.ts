import fs from 'node:fs'
import path from 'node:path'
import {Config} from '@oclif/core'
import YAML from 'yaml'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {makeWorkspace, removeWorkspaces, requireBuild, ROOT, runCli} from './helpers.js'

beforeAll(requireBuild)
afterAll(removeWorkspaces)

const CI = path.join(ROOT, 'templates', 'ci')
const load = (name: string) => YAML.parse(fs.readFileSync(path.join(CI, name), 'utf8'))

/** A template's shell line split as sh would (quotes), up to the first redirection or list operator. */
function words(line: string): {argv: string[]; stdoutTo?: string} {
  const tokens = [...line.matchAll(/"([^"]*)"|'([^']*)'|(>|\|\||&&|[|;])|([^\s"'>|;&]+)/g)].map((m) =>
    m[3] ? {op: m[3]} : {word: m[1] ?? m[2] ?? m[4]!},
  )
  const end = tokens.findIndex((t) => 'op' in t)
  const argv = (end === -1 ? tokens : tokens.slice(0, end)).map((t) => (t as {word: string}).word)
  const stdoutTo =
    end !== -1 && (tokens[end] as {op: string}).op === '>' ? (tokens[end + 1] as {word: string}).word : undefined
  return {argv, stdoutTo}
}

/** Every `npx hotctl …` line of a list of shell scripts. */
const hotctlLines = (scripts: string[]) =>
  scripts
    .flatMap((s) => s.split('\n'))
    .filter((l) => /\bnpx hotctl\b/.test(l))
    .map((l) => l.trim())

/**
 * Checks an invocation against the built CLI's own command definitions: the command exists, every
 * flag exists (options get a value), and there are no more arguments than the command takes.
 * Returns the command id and the parsed flags.
 */
async function validate(config: Config, argv: string[]): Promise<{id: string; flags: Map<string, string | true>}> {
  expect(argv.slice(0, 2)).toEqual(['npx', 'hotctl'])
  const rest = argv.slice(2)
  const ids = config.commands.map((c) => c.id)
  let n = rest.findIndex((w) => w.startsWith('-'))
  if (n === -1) n = rest.length
  let id = ''
  for (let k = n; k > 0; k--) {
    const candidate = rest.slice(0, k).join(':')
    if (ids.includes(candidate)) {
      id = candidate
      n = k
      break
    }
  }
  expect(id, `no command in ${argv.join(' ')}`).not.toBe('')
  const cmd = config.findCommand(id)!
  const defs = cmd.flags
  const byChar = new Map(Object.entries(defs).flatMap(([name, f]) => (f.char ? [[f.char, name]] : [])))
  const flags = new Map<string, string | true>()
  let positional = 0
  for (let i = n; i < rest.length; i++) {
    const w = rest[i]!
    if (w.startsWith('-')) {
      const [raw, inline] = w.split('=', 2) as [string, string | undefined]
      const name = raw.startsWith('--') ? raw.slice(2) : byChar.get(raw.slice(1))
      const def = name ? defs[name] : undefined
      expect(def, `hotctl ${id}: unknown flag ${raw} in: ${argv.join(' ')}`).toBeDefined()
      if (def!.type === 'option') {
        const value = inline ?? rest[++i]
        expect(value, `hotctl ${id}: ${raw} needs a value`).toBeDefined()
        flags.set(name!, value!)
      } else flags.set(name!, true)
    } else positional++
  }
  expect(positional, `hotctl ${id}: too many arguments in: ${argv.join(' ')}`).toBeLessThanOrEqual(
    Object.keys(cmd.args ?? {}).length,
  )
  return {id, flags}
}

describe('CI templates', {timeout: 120_000}, () => {
  let config: Config
  beforeAll(async () => {
    config = await Config.load(ROOT)
  })

  it('the validator itself rejects unknown commands, flags, missing values and extra arguments', async () => {
    const bad = [
      'npx hotctl deploy --no-restrat',
      'npx hotctl deploy --junit',
      'npx hotctl deploy now-please',
      'npx hotctl deplyo',
      'npx hotctl rollback --to',
    ]
    for (const line of bad) await expect(validate(config, words(line).argv), line).rejects.toThrow()
    await expect(validate(config, words('npx hotctl backups prune --keep 3 --dry-run').argv)).resolves.toMatchObject({
      id: 'backups:prune',
    })
  })

  it('GitHub Actions: deploys with --no-restart --json --junit, keeps both as artifacts, rolls back on workflow_dispatch', async () => {
    const wf = load('github-actions.yml')
    expect(wf.on.workflow_dispatch.inputs.rollback_to).toBeDefined()
    expect(Object.keys(wf.jobs)).toEqual(['deploy', 'rollback'])
    for (const [name, job] of Object.entries<any>(wf.jobs)) {
      const runs = job.steps.flatMap((s: {run?: string}) => (s.run ? [s.run] : []))
      const lines = hotctlLines(runs)
      expect(lines.length, name).toBeGreaterThan(0)
      for (const l of lines) await validate(config, words(l).argv)
      const main = await validate(config, words(lines[0]!).argv)
      expect(main.id).toBe(name)
      expect(main.flags.get('json')).toBe(true)
      const junit = main.flags.get('junit') as string
      const upload = job.steps.find((s: {uses?: string}) => s.uses?.startsWith('actions/upload-artifact'))
      expect(upload.if).toBe('always()')
      const kept = upload.with.path as string
      expect(junit.startsWith(kept)).toBe(true)
      expect(words(lines[0]!).stdoutTo!.startsWith(kept)).toBe(true)
      if (name === 'deploy') expect(main.flags.get('no-restart')).toBe(true)
      else {
        expect(main.flags.get('to')).toBe('$RELEASE')
        const step = job.steps.find((s: {run?: string}) => s.run === lines[0])
        expect(step.env.RELEASE).toBe('${{ inputs.rollback_to }}') // never interpolated into the script
        expect(job.if).toContain("inputs.rollback_to != ''")
      }
    }
  })

  it('GitLab CI: the deploy and rollback jobs are valid invocations whose JUnit file is the job report', async () => {
    const ci = load('gitlab-ci.yml')
    const base = ci['.hotctl']
    expect(base.artifacts.when).toBe('always')
    for (const name of ['deploy', 'rollback']) {
      const job = ci[name]
      expect(job.extends).toBe('.hotctl')
      const lines = hotctlLines([...job.script, ...base.after_script])
      for (const l of lines) await validate(config, words(l).argv)
      const main = await validate(config, words(lines[0]!).argv)
      expect(main.id).toBe(name)
      expect(main.flags.get('junit')).toBe(base.artifacts.reports.junit)
      expect(base.artifacts.paths.some((p: string) => words(lines[0]!).stdoutTo!.startsWith(p))).toBe(true)
      if (name === 'deploy') expect(main.flags.get('no-restart')).toBe(true)
      else expect(main.flags.get('to')).toBe('$ROLLBACK_TO')
    }
    expect(ci.rollback.rules).toEqual([{if: '$ROLLBACK_TO'}])
  })

  it("the templates' deploy and rollback lines run as written against a real target", async () => {
    const ws = makeWorkspace()
    ws.writeConfig({target: '../live', protect: ['data/', '.env']})
    ws.setVersion('v2')
    fs.mkdirSync(path.join(ws.src, 'reports'))
    const wf = load('github-actions.yml')
    const deployLine = hotctlLines(wf.jobs.deploy.steps.flatMap((s: {run?: string}) => s.run ?? []))[0]!
    const {argv, stdoutTo} = words(deployLine)
    const d = await runCli(argv.slice(2), {cwd: ws.src})
    expect(d.exitCode, d.stderr).toBe(0)
    fs.writeFileSync(path.join(ws.src, stdoutTo!), d.stdout)
    const result = JSON.parse(fs.readFileSync(path.join(ws.src, 'reports/deploy.json'), 'utf8'))
    expect(result.outcome).toBe('deployed')
    expect(fs.readFileSync(path.join(ws.src, 'reports/hotctl-junit.xml'), 'utf8')).toContain(
      '<testsuites name="hotctl deploy"',
    )

    const rollbackLine = hotctlLines(wf.jobs.rollback.steps.flatMap((s: {run?: string}) => s.run ?? []))[0]!
    const rb = words(rollbackLine)
      .argv.slice(2)
      .map((w) => (w === '$RELEASE' ? 'initial' : w))
    const r = await runCli(rb, {cwd: ws.src})
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json.outcome).toBe('rolled-back')
  })
})
