import path from 'node:path'
import {z} from 'zod'
import {interpolateEnv} from '../config/interpolate.js'
import type {StepCommands, StepSpec} from '../config/resolve.js'
import {commandSchema} from '../config/schema.js'
import {redact} from '../secrets.js'
import type {StepEvent} from '../state/journal.js'
import type {OpContext} from './context.js'

/**
 * A release step as a deploy ran it, recorded in the step's own backup directory, so that a later
 * rollback, or the recovery of a killed run, replays the undo (and the run) the release was
 * deployed with, not whatever the config says by then.
 *
 * The commands are stored as the config file wrote them, before `${VAR}` interpolation, and filled
 * from the environment when they are replayed: an env value is a secret and never lands on disk.
 * The file is 0600 (Target.writeStateFile), and never goes into the journal.
 */

/** Its name in the step's backup directory (a dot file: the step's own commands rarely touch it). */
export const STEP_RECORD = '.hotctl-step.json'

const recordSchema = z.object({
  hotctl: z.literal(1),
  name: z.string().min(1),
  /** Its place in the config when it was deployed (for `${VAR}` error messages). */
  index: z.number().int().nonnegative(),
  at: z.enum(['before-sync', 'after-sync']),
  maintenance: z.boolean(),
  timeoutMs: z.number().nonnegative(),
  run: commandSchema,
  backup: commandSchema.optional(),
  undo: commandSchema.optional(),
})
type StepRecord = z.output<typeof recordSchema>

export const recordFile = (dir: string) => path.posix.join(dir, STEP_RECORD)

/** The commands a step was written with (the config's own text, uninterpolated). */
export const writtenOf = (spec: StepSpec): StepCommands =>
  spec.written ?? {
    run: spec.run,
    ...(spec.backup ? {backup: spec.backup} : {}),
    ...(spec.undo ? {undo: spec.undo} : {}),
  }

/**
 * Records `spec` (step `index` of the config) in `dir`. A command holding a value hotctl masks as
 * a secret (written literally in the config, e.g. also a webhook header) is not recorded: the
 * warning returned says so, and a rollback then takes the config's commands.
 */
export async function writeStepRecord(
  ctx: OpContext,
  dir: string,
  spec: StepSpec,
  index: number,
): Promise<string | undefined> {
  const record: StepRecord = {
    hotctl: 1,
    name: spec.name,
    index,
    at: spec.at,
    maintenance: spec.maintenance,
    timeoutMs: spec.timeoutMs,
    ...writtenOf(spec),
  }
  const text = `${JSON.stringify(record, null, 2)}\n`
  if (redact(text) !== text)
    return `step ${spec.name}: its commands hold a value hotctl treats as a secret, so they are not recorded (a rollback takes the config's)`
  await ctx.target.writeStateFile(recordFile(dir), text)
  return undefined
}

/** What a journaled step resolves to for a replay. */
export interface ReplayedStep {
  spec?: StepSpec
  /** Its place in the config it came from. */
  index: number
  recorded: boolean
  /** Said in the plan: a fallback to the config, or a config that differs from the record. */
  note?: string
}

/**
 * The step a journal record ran, as recorded in its directory (the `${VAR}` of `{argv}` commands
 * filled from the environment now); without a record (a release deployed by an older hotctl), the
 * config's step of that name, and a note saying so.
 */
export async function replayedStep(
  ctx: OpContext,
  e: Pick<StepEvent, 'step' | 'release' | 'dir'>,
): Promise<ReplayedStep> {
  const configured = ctx.config.steps.find((s) => s.name === e.step)
  const index = configured ? ctx.config.steps.indexOf(configured) : -1
  const who = `step ${e.step} (release ${e.release})`
  const file = recordFile(e.dir)
  let why: string
  try {
    const text = await ctx.target.readStateFile(file)
    if (text === undefined) why = 'no recorded commands (deployed by an older hotctl)'
    else {
      const parsed = recordSchema.safeParse(JSON.parse(text))
      if (parsed.success) return fromRecord(parsed.data, file, configured, e.release)
      why = `${file} is not a step record (${parsed.error.issues[0]?.message ?? 'invalid'})`
    }
  } catch (err) {
    if (err instanceof SyntaxError) why = `${file} is not a step record (${err.message})`
    else throw err
  }
  const note = configured
    ? `${who}: ${why}; the config's commands run`
    : `${who}: ${why}, and no step of that name is in the config`
  return {spec: configured, index, recorded: false, note}
}

function fromRecord(r: StepRecord, file: string, configured: StepSpec | undefined, release: string): ReplayedStep {
  const written: StepCommands = {run: r.run, ...(r.backup ? {backup: r.backup} : {}), ...(r.undo ? {undo: r.undo} : {})}
  // Filled now, from this run's environment, exactly as the config loader fills them.
  const fill = <T>(key: keyof StepCommands, cmd: T): T =>
    interpolateEnv(cmd, process.env, file, ['steps', String(r.index), key]) as T
  const spec: StepSpec = {
    name: r.name,
    at: r.at,
    maintenance: r.maintenance,
    timeoutMs: r.timeoutMs,
    run: fill('run', r.run),
    ...(r.backup ? {backup: fill('backup', r.backup)} : {}),
    ...(r.undo ? {undo: fill('undo', r.undo)} : {}),
    written,
  }
  const differs = configured
    ? (['run', 'backup', 'undo'] as const).filter(
        (k) => JSON.stringify(writtenOf(configured)[k] ?? null) !== JSON.stringify(written[k] ?? null),
      )
    : []
  const who = `step ${r.name} (release ${release})`
  const note =
    differs.length > 0
      ? `${who}: the config's ${differs.join(', ')} differ${differs.length === 1 ? 's' : ''} from the one${differs.length === 1 ? '' : 's'} recorded at deploy time; the recorded one${differs.length === 1 ? '' : 's'} run${differs.length === 1 ? 's' : ''}`
      : !configured
        ? `${who}: no longer in the config; its recorded commands run`
        : undefined
  return {spec, index: r.index, recorded: true, ...(note ? {note} : {})}
}
