import type {ResolvedConfig} from '../config/resolve.js'
import {MARKER_NAME, syncExcludes} from '../config/resolve.js'
import {syncArgv} from '../rsync/argv.js'
import {type ChangeSet, changeCount} from './changeset.js'
import {compilePatterns, matchesPathOrParent} from './patterns.js'

export interface DeployPlan {
  id: string
  source: string
  target: string
  changes: ChangeSet
  /** Changed paths matched by reload.requireRestart: a hot reload cannot take them. */
  needsRestart: string[]
  nothingToDeploy: boolean
  /** The rsync call the sync step makes (the planned paths go to its stdin). */
  rsyncArgv: string[]
  steps: string[]
}

/** Pure: config + flags + the change set read from the target → what deploy will do. */
export function planDeploy(config: ResolvedConfig, changes: ChangeSet, id: string, flags: {force?: boolean; skipChecks?: boolean}): DeployPlan {
  const restartRule = compilePatterns(config.requireRestart)
  const needsRestart = [...changes.added, ...changes.changed, ...changes.deleted].filter((p) => matchesPathOrParent(restartRule, p))
  const nothingToDeploy = changeCount(changes) === 0 && !flags.force
  const hasStatus = config.services.some((s) => s.status)
  const steps = [
    ...(config.checks.length > 0 && !flags.skipChecks ? [`checks: ${config.checks.map((c) => c.name).join(', ')}`] : []),
    'lock',
    `backup ${id}`,
    `sync ${changeCount(changes)} path(s) with rsync`,
    `write release marker ${MARKER_NAME} (id ${id})`,
    ...(config.services.length > 0 ? [`reload: ${config.services.map((s) => s.name).join(', ')}`] : []),
    ...(hasStatus ? [`confirm release ${id} is live (within ${config.reloadTimeoutMs} ms)`] : []),
    ...(config.smoke.length > 0 ? [`smoke: ${config.smoke.map((s) => s.name).join(', ')}`] : []),
    `prune backups beyond ${config.keep}`,
  ]
  return {
    id,
    source: config.source,
    target: config.target,
    changes,
    needsRestart,
    nothingToDeploy,
    rsyncArgv: ['rsync', ...syncArgv({source: config.source, target: config.target, excludes: syncExcludes(config)})],
    steps,
  }
}
