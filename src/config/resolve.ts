import path from 'node:path'
import {usageError} from '../errors.js'
import {rsyncPatterns} from '../plan/patterns.js'
import {parseDuration} from '../durations.js'
import {registerSecret} from '../secrets.js'
import type {
  Command,
  HostEntry,
  MaintenanceCommands,
  NotifySpec,
  ParsedConfig,
  ReleaseStepSpec,
  RunsOn,
  SmokeSpec,
  StatusSpec,
  TriggerSpec,
} from './schema.js'
import {httpUrls, requireUniqueNames, usesHostRef} from './hosts.js'
import {inventoryHosts} from './inventory.js'

export const MARKER_NAME = '.hotctl-release.json'
/** Beside the release marker: present while the service is in maintenance mode ({reason, until}). */
export const MAINTENANCE_NAME = '.hotctl-maintenance.json'
/** Names a release step's backup directory in its commands' environment (and marks them as hotctl's). */
export const STEP_BACKUP_DIR_ENV = 'HOTCTL_STEP_BACKUP_DIR'
/** hotctl's own files in the target: never synced, backed up, restored or deleted. */
export const OWN_FILES = [MARKER_NAME, MAINTENANCE_NAME]

/** What rsync must never write or delete: protected paths, excludes, and hotctl's own files. */
export const syncExcludes = (c: Pick<ResolvedConfig, 'protect' | 'exclude'>) =>
  rsyncPatterns([...c.protect, ...c.exclude, ...OWN_FILES])

export interface ServiceSpec {
  name: string
  trigger?: TriggerSpec
  status?: StatusSpec
}

export interface CheckJob {
  name: string
  commands: Command[]
}

/** One remote host: reached with the system ssh as `[user@]address` (port: -p). */
export interface HostSpec {
  /** What --limit, status and messages call it (default: the address). */
  name: string
  address: string
  user?: string
  port?: number
  vars: Record<string, string>
}

export interface FleetSettings {
  waves: (number | string)[]
  parallel: number
  pauseMs: number
  onFailure: 'rollback-all' | 'halt'
}

export interface SshSettings {
  /** ssh_config for ssh -F (absolute), or the user's default. */
  config?: string
  options: string[]
  connectTimeoutMs: number
  serverAliveIntervalMs: number
  /** rsync --timeout and the bound on each remote command. */
  timeoutMs: number
}

/** Config with defaults applied, paths absolute, durations in ms and services normalised. */
export interface ResolvedConfig {
  file: string
  source: string
  /** The live directory: a local path, or the path on every host when `hosts` is not empty. */
  target: string
  /** Beside the target, on the same machine (on each host for a remote target). */
  stateDir: string
  /** Remote target: the hosts holding `target` (`user@host:/path` names one). Empty: this machine. */
  hosts: HostSpec[]
  /**
   * `target: user@host:/path` names one host: deploy, rollback, status and backups run the
   * single-target pipelines over ssh (same output and JSON as a local target). `hosts:` and
   * `inventory:` are a fleet, even of one.
   */
  oneHostTarget?: boolean
  /** Set when this config was resolved for one host of `hosts` (see forHost). */
  host?: HostSpec
  fleet: FleetSettings
  ssh: SshSettings
  exclude: string[]
  protect: string[]
  keep: number
  checks: CheckJob[]
  services: ServiceSpec[]
  reloadTimeoutMs: number
  restart?: Command
  /** Where reload.restart runs for a remote target (default: host). */
  restartOn?: RunsOn
  requireRestart: string[]
  smoke: SmokeSpec[]
  /** Webhooks told each deploy's and rollback's outcome. */
  notify: NotifySpec[]
  /** Release steps, in config order (issue 9). */
  steps: StepSpec[]
  /** Maintenance by commands (services without the agent); absent: hotctl writes MAINTENANCE_NAME. */
  maintenance?: MaintenanceCommands
}

/** A release step with its place and timeout resolved. */
export interface StepSpec {
  name: string
  run: Command
  /** Path patterns matched against the change set; absent: always runs. */
  when?: string[]
  at: 'before-sync' | 'after-sync'
  backup?: Command
  undo?: Command
  maintenance: boolean
  timeoutMs: number
  /**
   * `run`, `backup` and `undo` as the config wrote them, before `${VAR}` interpolation (an `{argv}`
   * element's env value is a secret): what a deploy records for a later rollback. Set by parseConfig.
   */
  written?: StepCommands
}

/** A step's commands. */
export interface StepCommands {
  run: Command
  backup?: Command
  undo?: Command
}

/**
 * The config with each step's commands as written in the raw (uninterpolated) config data, which
 * has the shape the schema accepted (interpolation changes strings only).
 */
export function withStepsAsWritten(config: ResolvedConfig, raw: unknown): ResolvedConfig {
  const rawSteps = (raw as {steps?: Partial<StepCommands>[]} | null)?.steps
  if (!Array.isArray(rawSteps) || config.steps.length === 0) return config
  const steps = config.steps.map((s, i) => {
    const r = rawSteps[i]
    if (!r?.run) return s
    return {...s, written: {run: r.run, ...(r.backup ? {backup: r.backup} : {}), ...(r.undo ? {undo: r.undo} : {})}}
  })
  return {...config, steps}
}

export function resolveConfig(parsed: ParsedConfig, file: string): ResolvedConfig {
  const base = path.dirname(file)
  const source = path.resolve(base, parsed.source ?? '.')
  const remote = parseRemoteTarget(parsed.target)
  const hosts = remote ? [remote.host] : (parsed.hosts ?? []).map((h, i) => hostSpec(h, file, `hosts.${i}`))
  if (remote && (parsed.hosts || parsed.inventory)) {
    throw usageError(
      `${file}: target: ${parsed.target} names a host, and hosts/inventory name more`,
      'Use either `target: user@host:/path`, or `target: /path` with `hosts:` (or `inventory:`).',
    )
  }
  if (parsed.inventory && parsed.hosts) {
    throw usageError(`${file}: hosts and inventory both name hosts`, 'Keep one of them.')
  }
  if (parsed.group && !parsed.inventory) {
    throw usageError(`${file}: group: ${parsed.group} needs an inventory`, 'Add `inventory: FILE`, or leave group out.')
  }
  if (parsed.inventory) {
    hosts.push(...inventoryHosts(path.resolve(base, parsed.inventory), parsed.group ?? 'all', `${file}: inventory`))
    if (hosts.length === 0) {
      throw usageError(
        `${file}: inventory ${parsed.inventory} has no host in group ${parsed.group ?? 'all'}`,
        'Add hosts to the inventory, or choose another group.',
      )
    }
  }
  requireUniqueNames(hosts, `${file}: ${parsed.inventory ? 'inventory' : 'hosts'}`)
  if (hosts.length > 0 || parsed.inventory) {
    const config = resolveRemote(parsed, file, source, remote?.path ?? parsed.target, hosts)
    return remote ? {...config, oneHostTarget: true} : config
  }
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
  const local = {...common(parsed, file, source), target, stateDir, hosts: []}
  const hostRef = httpUrls(local).find((u) => usesHostRef(u.url))
  if (hostRef) {
    throw usageError(
      `${file}: ${hostRef.field}: \${host…} is only known for remote targets`,
      'Use it with `hosts:`, `inventory:` or `target: user@host:/path`, or write the address.',
    )
  }
  return local
}

/** A fleet (or one host): target and state dir are POSIX paths on every host. */
function resolveRemote(
  parsed: ParsedConfig,
  file: string,
  source: string,
  target: string,
  hosts: HostSpec[],
): ResolvedConfig {
  if (!target.startsWith('/')) {
    throw usageError(
      `${file}: target: ${target} must be an absolute path on the host(s)`,
      'Write it as /srv/app (or user@host:/srv/app).',
    )
  }
  const t = path.posix.normalize(target).replace(/\/+$/, '') || '/'
  const stateDir = parsed.stateDir ?? path.posix.join(path.posix.dirname(t), `.${path.posix.basename(t)}.hotctl`)
  if (!stateDir.startsWith('/') || isInsidePosix(stateDir, t)) {
    throw usageError(
      `${file}: stateDir: ${stateDir} must be an absolute path on the host(s), beside the target ${t}`,
      'Leave stateDir out (the default is beside the target), or give an absolute path outside it.',
    )
  }
  return {...common(parsed, file, source), target: t, stateDir, hosts}
}

function common(
  parsed: ParsedConfig,
  file: string,
  source: string,
): Omit<ResolvedConfig, 'target' | 'stateDir' | 'hosts'> {
  const base = path.dirname(file)
  const reload = parsed.reload
  let services: ServiceSpec[] = []
  let reloadTimeoutMs = 60_000
  let restart: Command | undefined
  let restartOn: RunsOn
  let requireRestart: string[] = []
  if (Array.isArray(reload)) {
    services = reload
  } else if (reload) {
    services =
      reload.services ??
      (reload.trigger || reload.status ? [{name: 'service', trigger: reload.trigger, status: reload.status}] : [])
    reloadTimeoutMs = parseDuration(reload.timeout, `${file}: reload.timeout`)
    restart = reload.restart?.command
    restartOn = reload.restart?.on
    requireRestart = reload.requireRestart
  }
  return {
    file,
    source,
    fleet: {
      waves: parsed.waves,
      parallel: parsed.parallel,
      pauseMs: parseDuration(parsed.pause, `${file}: pause`),
      onFailure: parsed.onFailure,
    },
    ssh: {
      config: parsed.ssh.config ? path.resolve(base, parsed.ssh.config) : undefined,
      options: parsed.ssh.options,
      connectTimeoutMs: parseDuration(parsed.ssh.connectTimeout, `${file}: ssh.connectTimeout`),
      serverAliveIntervalMs: parseDuration(parsed.ssh.serverAliveInterval, `${file}: ssh.serverAliveInterval`),
      timeoutMs: parseDuration(parsed.ssh.timeout, `${file}: ssh.timeout`),
    },
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
    restartOn,
    requireRestart,
    smoke: parsed.smoke,
    notify: notifySpecs(parsed.notify),
    steps: resolveSteps(parsed.steps, file),
    maintenance: parsed.maintenance,
  }
}

/**
 * Webhook URLs (a Slack webhook's path is its credential) and header values (tokens) are secrets,
 * written literally or not: masked in all output.
 */
function notifySpecs(hooks: NotifySpec[]): NotifySpec[] {
  for (const h of hooks) for (const v of [h.url, ...Object.values(h.headers)]) registerSecret(v)
  return hooks
}

function resolveSteps(steps: ReleaseStepSpec[], file: string): StepSpec[] {
  const seen = new Set<string>()
  return steps.map((s, i) => {
    const field = `${file}: steps.${i}`
    if (seen.has(s.name))
      throw usageError(`${field}.name: "${s.name}" is used by an earlier step`, 'Give every step its own name.')
    seen.add(s.name)
    if (s.before && s.after)
      throw usageError(`${field}: has both before: sync and after: sync`, 'Keep one of them (the default is after).')
    return {
      name: s.name,
      run: s.run,
      when: s.when === undefined ? undefined : Array.isArray(s.when) ? s.when : [s.when],
      at: s.before ? 'before-sync' : 'after-sync',
      backup: s.backup,
      undo: s.undo,
      maintenance: s.maintenance,
      timeoutMs: parseDuration(s.timeout, `${field}.timeout`),
    }
  })
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child)
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))
}

function isInsidePosix(child: string, parent: string): boolean {
  const rel = path.posix.relative(parent, child)
  return rel === '' || (!rel.startsWith('..') && !path.posix.isAbsolute(rel))
}

/**
 * `[user@]host:/path` (scp syntax): remote when the text before the first `:` has no `/`.
 * `[::1]:/path` brackets an IPv6 address.
 */
export function parseRemoteTarget(target: string): {host: HostSpec; path: string} | undefined {
  const m = /^(?:([^@/:]+)@)?(\[[^\]/]+\]|[^@/:[\]]+):(.*)$/.exec(target)
  if (!m) return undefined
  const [, user, rawHost, p] = m
  const address = rawHost!.replace(/^\[(.*)\]$/, '$1')
  return {host: {name: address, address, user, vars: {}}, path: p!}
}

/** `user@host[:port]` or `{name, host, user, port, vars}`. */
function hostSpec(entry: HostEntry, file: string, field: string): HostSpec {
  if (typeof entry !== 'string') {
    return {name: entry.name ?? entry.host, address: entry.host, user: entry.user, port: entry.port, vars: entry.vars}
  }
  const m = /^(?:([^@]+)@)?(\[[^\]]+\]|[^:@]+)(?::(\d+))?$/.exec(entry)
  const port = m?.[3] ? Number(m[3]) : undefined
  if (!m || (port !== undefined && (port < 1 || port > 65535))) {
    throw usageError(
      `${file}: ${field}: ${entry} is not user@host[:port]`,
      'Write a host as user@host, host or user@host:2222.',
    )
  }
  const address = m[2]!.replace(/^\[(.*)\]$/, '$1')
  return {name: address, address, user: m[1], port, vars: {}}
}
