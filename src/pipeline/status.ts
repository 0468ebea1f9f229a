import {operations, TARGET_CHANGING} from '../state/journal.js'
import type {LockOwner} from '../state/lock.js'
import {reportedVersion} from '../service/reload.js'
import type {OpContext} from './context.js'

export interface StatusReport {
  target: string
  release: {id: string; gitSha: string | null; user: string; time: string} | null
  lock: (LockOwner & {stale: boolean}) | null
  interrupted: {op: string; id: string; lastPhase: string | null; started: string} | null
  needsAttention: boolean
  attention?: string
  recent: {
    op: string
    id: string
    started: string
    result: string
    exitCode: number | null
    durationMs: number | null
    changes?: number
    error?: string
  }[]
  stats: {
    deploys: number
    succeeded: number
    successRate: number | null
    rollbacks: number
    rollbacksLastHour: number
    restores: number
  }
  services: {name: string; version: string | null; live: boolean | null; state?: unknown; error?: string}[]
  backups: number
}

/**
 * Success rate and rollback counts (what an operator checks after a deploy), plus what they need
 * before acting: the live release, the lock holder, an interrupted operation, each service's version.
 */
export async function collectStatus(ctx: OpContext): Promise<StatusReport> {
  const {target, config} = ctx
  const [events, release, lock, backups] = await Promise.all([
    target.state.read(),
    target.readMarker(),
    target.state.readLock(),
    target.backups.list(),
  ])
  const ops = operations(events)
  const open = ops.filter((o) => !o.end && o.op !== 'recover').at(-1)
  const lockActive = !!lock && !(await target.state.isStale(lock))
  const main = ops.filter((o) => o.op !== 'recover')
  const last = [...ops].reverse().find((o) => o.end)
  const deploys = main.filter((o) => o.op === 'deploy' && o.end)
  const succeeded = deploys.filter((o) => o.end!.result === 'ok').length
  const hourAgo = Date.now() - 3_600_000
  const rollbacks = main.filter((o) => o.op === 'rollback')
  const interruptedMidway = !!open && !lockActive && open.phases.some((p) => TARGET_CHANGING.has(p))
  const needsAttention = last?.end?.result === 'attention' || interruptedMidway
  const services = await Promise.all(
    config.services
      .filter((s) => s.status)
      .map(async (s) => {
        const r = await reportedVersion(s.status!, ctx.signal)
        const state = r.state // at reload.status.state
        return {
          name: s.name,
          version: r.version,
          live: r.error ? null : release ? r.version === release.id : null,
          state,
          error: r.error,
        }
      }),
  )
  return {
    target: target.description,
    release,
    lock: lock ? {...lock, stale: !lockActive} : null,
    interrupted:
      open && !lockActive
        ? {op: open.op, id: open.opId, lastPhase: open.phases.at(-1) ?? null, started: open.start.t}
        : null,
    needsAttention,
    attention: interruptedMidway
      ? `${open!.op} ${open!.opId} was interrupted after changing the target (phase ${open!.phases.at(-1)}): ` +
        'run `hotctl deploy` or `hotctl rollback`, which restore its backup first'
      : needsAttention
        ? `last operation ${last!.op} ${last!.opId} could not restore and verify the target: ${last!.end!.error ?? ''}`
        : undefined,
    recent: main
      .slice(-10)
      .reverse()
      .map((o) => ({
        op: o.op,
        id: o.opId,
        started: o.start.t,
        result: o.end?.result ?? (lockActive && open === o ? 'running' : 'interrupted'),
        exitCode: o.end?.exitCode ?? null,
        durationMs: o.end?.durationMs ?? null,
        changes: o.end?.changes,
        error: o.end?.error,
      })),
    stats: {
      deploys: deploys.length,
      succeeded,
      successRate: deploys.length ? succeeded / deploys.length : null,
      rollbacks: rollbacks.length,
      rollbacksLastHour: rollbacks.filter((o) => Date.parse(o.start.t) >= hourAgo).length,
      restores: main.filter((o) => o.end?.result === 'restored').length,
    },
    services,
    backups: backups.length,
  }
}
