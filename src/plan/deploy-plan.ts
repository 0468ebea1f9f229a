import type {ResolvedConfig} from '../config/resolve.js'
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
  /** The writer's call as the sync step makes it (the planned paths go to its stdin). */
  rsyncArgv: string[]
}

/** Pure: config + flags + the change set read from the target → what deploy will do. */
export function planDeploy(
  config: ResolvedConfig,
  changes: ChangeSet,
  id: string,
  flags: {force?: boolean},
  syncCall: string[],
): DeployPlan {
  const restartRule = compilePatterns(config.requireRestart)
  const needsRestart = [...changes.added, ...changes.changed, ...changes.deleted].filter((p) =>
    matchesPathOrParent(restartRule, p),
  )
  const nothingToDeploy = changeCount(changes) === 0 && !flags.force
  return {id, source: config.source, target: config.target, changes, needsRestart, nothingToDeploy, rsyncArgv: syncCall}
}
