import {EXIT, errorMessage} from '../errors.js'
import type {OpContext} from './context.js'
import {catalogOf, type NeverLive, resolvePrevious, type RollbackTarget, type SnapshotInfo} from './releases.js'

export interface BackupsListing {
  exitCode: number
  target: string
  /** The live tree's release marker (null: the tree from before hotctl). */
  liveRelease: string | null
  /** Where plain `hotctl rollback` goes, or why it would be refused. */
  previous: {to: string; release: string | null; snapshot: string} | {error: string}
  /** The valid `rollback --to` values, newest first. */
  targets: RollbackTarget[]
  neverLive: NeverLive[]
  /** Oldest first. */
  backups: SnapshotInfo[]
}

/** `hotctl backups`: every snapshot with the release it holds, and where a rollback can go from here. */
export async function listBackups(ctx: OpContext): Promise<BackupsListing> {
  const c = await catalogOf(ctx.target)
  let previous: BackupsListing['previous']
  try {
    const p = resolvePrevious(c)
    previous = {to: p.to, release: p.release, snapshot: p.snapshot!}
  } catch (err) {
    previous = {error: errorMessage(err)}
  }
  const {live, targets, neverLive, snapshots} = c
  return {
    exitCode: EXIT.ok,
    target: ctx.config.target,
    liveRelease: live,
    previous,
    targets,
    neverLive,
    backups: snapshots,
  }
}
