import fs from 'node:fs'
import path from 'node:path'
import {errorMessage, HotctlError} from '../errors.js'
import type {CheckOutcome} from '../pipeline/checks.js'
import {redact} from '../secrets.js'
import type {SmokeResult} from '../service/smoke.js'
import type {PreflightItem} from '../target/target.js'
import type {Ui} from '../ui/ui.js'

/** One test case: a preflight item, a check or a smoke entry. */
interface Case {
  name: string
  ok: boolean
  skipped?: boolean
  detail: string
}

/** What a run reports as tests, each group a JUnit test suite. */
export interface JunitInput {
  preflight?: PreflightItem[]
  checks?: CheckOutcome[]
  smoke?: SmokeResult[]
  /** Smoke of the previous release, after a failed deploy was restored. */
  restoreSmoke?: SmokeResult[]
}

/**
 * The groups found in a command's result or in a failure's details (a deploy that failed its
 * checks or preflight throws, carrying them): deploy, rollback and check results all fit.
 */
export function junitInput(value: unknown): JunitInput {
  const v = (value ?? {}) as {
    preflight?: PreflightItem[]
    checks?: CheckOutcome[]
    proof?: {smoke?: SmokeResult[]}
    restore?: {proof?: {smoke?: SmokeResult[]}}
  }
  return {preflight: v.preflight, checks: v.checks, smoke: v.proof?.smoke, restoreSmoke: v.restore?.proof?.smoke}
}

const SUITES: [keyof JunitInput, string][] = [
  ['preflight', 'preflight'],
  ['checks', 'checks'],
  ['smoke', 'smoke'],
  ['restoreSmoke', 'smoke after restore'],
]

/** JUnit XML as GitHub, GitLab and Jenkins read it: one testsuite per group, one testcase per entry. */
export function junitXml(command: string, input: JunitInput): string {
  const suites = SUITES.flatMap(([key, name]) => {
    const cases = (input[key] ?? []) as Case[]
    return cases.length ? [{name, cases}] : []
  })
  const count = (cs: Case[], f: (c: Case) => boolean) => cs.filter(f).length
  const all = suites.flatMap((s) => s.cases)
  const failed = (c: Case) => !c.ok && !c.skipped
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name=${attr(`hotctl ${command}`)} tests="${all.length}" failures="${count(all, failed)}" skipped="${count(all, (c) => !!c.skipped)}">`,
  ]
  for (const s of suites) {
    const cls = `hotctl.${s.name.replace(/ /g, '-')}`
    out.push(
      `  <testsuite name=${attr(s.name)} tests="${s.cases.length}" failures="${count(s.cases, failed)}" skipped="${count(s.cases, (c) => !!c.skipped)}">`,
    )
    for (const c of s.cases) {
      const open = `    <testcase classname=${attr(cls)} name=${attr(c.name)}`
      if (c.ok) out.push(`${open}/>`)
      else if (c.skipped) out.push(`${open}><skipped message=${attr(firstLine(c.detail))}/></testcase>`)
      else out.push(`${open}><failure message=${attr(firstLine(c.detail))}>${text(c.detail)}</failure></testcase>`)
    }
    out.push('  </testsuite>')
  }
  out.push('</testsuites>', '')
  return out.join('\n')
}

/**
 * `--junit FILE`: runs the command's pipeline and writes its checks and smoke entries as JUnit XML,
 * whether it succeeds or throws. A report that cannot be written is a warning, never the outcome.
 */
export async function withJunit<R>(
  file: string | undefined,
  command: string,
  ui: Ui,
  run: () => Promise<R>,
): Promise<R> {
  if (!file) return run()
  let result: R
  try {
    result = await run()
  } catch (err) {
    write(file, command, junitInput(err instanceof HotctlError ? err.details : undefined), ui)
    throw err
  }
  write(file, command, junitInput(result), ui)
  return result
}

function write(file: string, command: string, input: JunitInput, ui: Ui): void {
  try {
    fs.mkdirSync(path.dirname(path.resolve(file)), {recursive: true})
    fs.writeFileSync(file, junitXml(command, input))
  } catch (err) {
    ui.say(`hotctl: warning: --junit ${file}: could not write the report: ${errorMessage(err)}`)
  }
}

const firstLine = (s: string) => s.split('\n').find((l) => l.trim()) ?? ''

/** XML 1.0 allows no control characters but tab, newline and carriage return. */
const clean = (s: string) => redact(s).replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '?') // eslint-disable-line no-control-regex

const attr = (s: string) =>
  `"${clean(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/\n/g, '&#10;')}"`

const text = (s: string) => clean(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
