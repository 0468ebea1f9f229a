import {operations, TARGET_CHANGING} from '../state/journal.js'
import type {LockOwner} from '../state/lock.js'
import {reportedVersions} from '../service/reload.js'
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
    /** The release it deployed, or (rollback) the release it restored; null: the tree from before hotctl. */
    release?: string | null
    /** A rollback: the snapshot it restored. */
    restores?: string
  }[]
  stats: {
    deploys: number
    succeeded: number
    successRate: number | null
    rollbacks: number
    rollbacksLastHour: number
    restores: number
  }
  services: {
    name: string
    version: string | null
    /** Every answer reported the deployed release (null: no answer, or no release marker). */
    live: boolean | null
    state?: unknown
    error?: string
    /**
     * Only when the requests sent at once disagreed (workers on different code, or some failing):
     * how many were sent, the versions besides `version`, and those that got no usable answer.
     */
    answers?: number
    others?: {version: string | null; count: number}[]
    failed?: {count: number; error: string}
  }[]
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
        // A burst, as the confirm's: workers a lone request never reaches answer too.
        const all = await reportedVersions(s.status!, s.status!.probes, ctx.signal)
        const answered = all.filter((r) => !r.error)
        const r = answered[0] ?? all[0]!
        const others = otherVersions(answered, r.version)
        // Some answered, some not (a worker answering 5xx): not live, and said.
        const failed = r.error ? [] : all.filter((a) => a.error)
        return {
          name: s.name,
          version: r.version,
          live: r.error
            ? null
            : release
              ? failed.length === 0 && answered.every((a) => a.version === release.id)
              : null,
          state: r.state, // at reload.status.state
          error: r.error,
          ...(others.length > 0 || failed.length > 0 ? {answers: all.length, others} : {}),
          ...(failed.length > 0 ? {failed: {count: failed.length, error: failed[0]!.error!}} : {}),
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
        ...(o.op === 'deploy' || o.op === 'rollback' ? {release: o.start.release ?? null} : {}),
        ...(o.start.restores ? {restores: o.start.restores} : {}),
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

/** The versions some answers reported other than `first`, each with how many reported it. */
function otherVersions(
  answers: {version: string | null}[],
  first: string | null,
): {version: string | null; count: number}[] {
  const counts = new Map<string | null, number>()
  for (const a of answers) if (a.version !== first) counts.set(a.version, (counts.get(a.version) ?? 0) + 1)
  return [...counts].map(([version, count]) => ({version, count}))
}
