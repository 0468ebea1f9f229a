import {errorMessage} from '../errors.js'
import {INTERRUPT_BUDGET_MS, Interrupt} from '../interrupt.js'
import type {Phase} from '../state/journal.js'
import {BackupDamagedError, type Damage} from '../store/integrity.js'
import {runTasks} from '../ui/render.js'
import type {OpContext} from './context.js'
import {formatDuration} from '../ui/format.js'
import {emptyProof, type LiveProof, proveLiveTasks} from './prove-live.js'
import type {ListrTask} from 'listr2'

export interface RestoreOutcome {
  backup: string
  /** Release id the backup holds (null: a tree without marker). */
  release: string | null
  ok: boolean
  written: number
  removed: number
  /** Paths still differing from the backup after the restore (empty = verified). */
  differences: string[]
  proof: LiveProof
  /** The operator interrupted before or during the proof: it took its short form (src/interrupt.ts). */
  interrupted: boolean
  error?: string
  /** Set when the backup was refused as damaged (nothing was written): what is damaged. */
  damage?: Damage[]
}

/**
 * Puts backup `id` back and proves it: content equals the backup (by hash), the service reloads
 * and reports the backup's release, smoke passes. A damaged backup (its metadata, chunks or the
 * objects this restore would copy do not match their hashes) is refused before anything is
 * written: `ok` false, `damage` says what. Runs to the end even after an interrupt — it is what
 * an interrupt asks for — so it gets a signal of its own; the interrupt only makes the proof
 * short enough for a CI runner's grace period (command smoke skipped, HTTP calls short).
 */
export async function restoreAndProve(
  ctx: OpContext,
  id: string,
  phase: (p: Phase) => Promise<void>,
  opts: {
    label?: string
    allowRestart: boolean
    beforeSmoke?: ListrTask
    /** Runs once the content is verified, before the reload (a rollback's undone release steps, redone). */
    afterVerify?: ListrTask
  },
): Promise<RestoreOutcome> {
  const label = opts.label ?? 'previous release'
  const own: OpContext = {...ctx, signal: new AbortController().signal}
  const interrupt = new Interrupt(ctx.signal)
  const meta = (await ctx.target.backups.list()).find((b) => b.id === id)
  const outcome: RestoreOutcome = {
    backup: id,
    release: meta?.release ?? null,
    ok: false,
    written: 0,
    removed: 0,
    differences: [],
    proof: emptyProof(),
    interrupted: false,
  }
  if (interrupt.fired) {
    const how = 'content verified in full; reload and HTTP checks with short timeouts; command smoke checks skipped'
    ctx.ui.say(
      `hotctl: restoring ${id} in the interrupt's time budget (${formatDuration(INTERRUPT_BUDGET_MS)}): ${how}`,
    )
  }
  try {
    await runTasks(
      ctx.ui,
      [
        {
          title: `Restore backup ${id}`,
          task: async (_c, task) => {
            await phase('restore')
            const r = await ctx.target.backups.restore(id)
            outcome.written = r.written.length
            outcome.removed = r.removed.length
            task.title = `Restore backup ${id}: ${r.written.length} written, ${r.removed.length} removed`
          },
        },
        {
          title: 'Verify target content equals the backup',
          task: async () => {
            outcome.differences = await ctx.target.backups.verify(id)
            if (outcome.differences.length > 0)
              throw new Error(`target differs from backup ${id} at: ${outcome.differences.slice(0, 10).join(', ')}`)
          },
        },
        ...(opts.afterVerify ? [opts.afterVerify] : []),
        ...beforeLast(
          proveLiveTasks(own, outcome.release, outcome.proof, {
            allowRestart: opts.allowRestart,
            phase,
            label,
            phases: {reload: 'restore-reload', confirm: 'restore-confirm', smoke: 'restore-smoke'},
            restore: {interrupt},
          }),
          opts.beforeSmoke, // e.g. leave maintenance mode once the restored release is confirmed live
        ),
      ],
      {},
    )
    outcome.ok = true
  } catch (err) {
    outcome.error = errorMessage(err)
    if (err instanceof BackupDamagedError) outcome.damage = err.damage
  }
  outcome.interrupted = interrupt.fired
  return outcome
}

/** `tasks` with `extra` inserted before the last one (the proof's smoke). */
export function beforeLast<T>(tasks: T[], extra: T | undefined): T[] {
  return extra ? [...tasks.slice(0, -1), extra, ...tasks.slice(-1)] : tasks
}
