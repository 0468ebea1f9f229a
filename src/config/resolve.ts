import path from 'node:path'
import {usageError} from '../errors.js'
import {rsyncPatterns} from '../plan/patterns.js'
import {parseDuration} from '../durations.js'
import type {Command, ParsedConfig, SmokeSpec, StatusSpec, TriggerSpec} from './schema.js'

export const MARKER_NAME = '.hotctl-release.json'

/** What rsync must never write or delete: protected paths, excludes, and hotctl's own marker. */
export const syncExcludes = (c: Pick<ResolvedConfig, 'protect' | 'exclude'>) =>
  rsyncPatterns([...c.protect, ...c.exclude, MARKER_NAME])

export interface ServiceSpec {
  name: string
  trigger?: TriggerSpec
  status?: StatusSpec
}

export interface CheckJob {
  name: string
  commands: Command[]
}

/** Config with defaults applied, paths absolute, durations in ms and services normalised. */
export interface ResolvedConfig {
  file: string
  source: string
  target: string
  stateDir: string
  exclude: string[]
  protect: string[]
  keep: number
  checks: CheckJob[]
  services: ServiceSpec[]
  reloadTimeoutMs: number
  restart?: Command
  requireRestart: string[]
  smoke: SmokeSpec[]
}

export function resolveConfig(parsed: ParsedConfig, file: string): ResolvedConfig {
  const base = path.dirname(file)
  const source = path.resolve(base, parsed.source ?? '.')
  const target = path.resolve(base, parsed.target)
  const stateDir = parsed.stateDir
    ? path.resolve(base, parsed.stateDir)
    : path.join(path.dirname(target), `.${path.basename(target)}.hotctl`)
  if (isInside(stateDir, target)) {
    throw usageError(
      `${file}: stateDir: ${stateDir} is inside the target ${target}`,
      'Put the state dir beside the target (the default), never inside it.',
    )
  }
  if (isInside(target, source) || isInside(source, target)) {
    throw usageError(
      `${file}: target: ${target} and source ${source} overlap`,
      'Deploy from a separate checkout into the live directory.',
    )
  }
  if (isInside(stateDir, source)) {
    throw usageError(
      `${file}: stateDir: ${stateDir} is inside the source ${source}`,
      'It would be deployed into the target with every backup in it: put it beside the target (the default).',
    )
  }
  const reload = parsed.reload
  let services: ServiceSpec[] = []
  let reloadTimeoutMs = 60_000
  let restart: Command | undefined
  let requireRestart: string[] = []
  if (Array.isArray(reload)) {
    services = reload
  } else if (reload) {
    services =
      reload.services ??
      (reload.trigger || reload.status ? [{name: 'service', trigger: reload.trigger, status: reload.status}] : [])
    reloadTimeoutMs = parseDuration(reload.timeout, `${file}: reload.timeout`)
    restart = reload.restart?.command
    requireRestart = reload.requireRestart
  }
  return {
    file,
    source,
    target,
    stateDir,
    exclude: parsed.exclude,
    protect: parsed.protect,
    keep: parsed.keep,
    checks: Object.entries(parsed.checks).map(([name, spec]) => ({
      name,
      commands: Array.isArray(spec) ? spec : [spec],
    })),
    services,
    reloadTimeoutMs,
    restart,
    requireRestart,
    smoke: parsed.smoke,
  }
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child)
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))
}
