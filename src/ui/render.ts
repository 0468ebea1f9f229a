import {Listr, ListrLogger, PRESET_TIMER, ProcessOutput, type ListrTask} from 'listr2'
import {redact} from '../secrets.js'
import {formatDuration} from './format.js'
import {StepRenderer} from './step-renderer.js'
import type {Ui} from './ui.js'

/**
 * listr2, decided once: listr2's default renderer on an interactive terminal (not in CI, not under
 * --json or --events); otherwise StepRenderer, which prints each step once when it ends (or NDJSON
 * under --events). Everything goes to stderr: --json keeps its progress there, stdout holds only
 * the JSON. listr2's own signal listeners are off: hotctl's handler must restore the backup first.
 */
export function runTasks<T>(ui: Ui, tasks: ListrTask<T>[], ctx: T, concurrent = false): Promise<T> {
  const interactive = isInteractive(ui)
  const processOutput = new ProcessOutput(process.stderr, process.stderr)
  const log = ui.step ? StepRenderer : 'silent'
  const list = new Listr<T, 'default' | typeof StepRenderer | 'silent', typeof StepRenderer | 'silent'>(
    tasks.map(redacted),
    {
      concurrent,
      exitOnError: true,
      registerSignalListeners: false,
      renderer: interactive ? 'default' : log,
      fallbackRenderer: log,
      rendererOptions: interactive
        ? {
            logger: new ListrLogger({processOutput}),
            collapseSubtasks: false,
            showErrorMessage: true,
            timer: {...PRESET_TIMER, field: (ms: number) => formatDuration(ms)}, // 55ms, 1.3s: as everywhere
          }
        : {ui},
      fallbackRendererOptions: {ui},
      ctx,
    } as never,
  )
  return list.run()
}

/**
 * listr2's live renderer: a terminal on stdout and stderr (listr2 itself falls back without a
 * stdout terminal), not in CI, not under --json or --events.
 */
export function isInteractive(ui: Ui): boolean {
  return Boolean(process.stderr.isTTY && process.stdout.isTTY) && !process.env.CI && !ui.json && !ui.events
}

/** Titles and error messages are rendered by listr2 itself: mask secrets before it sees them. */
function redacted<T>(t: ListrTask<T>): ListrTask<T> {
  return {
    ...t,
    title: typeof t.title === 'string' ? redact(t.title) : t.title,
    task: async (ctx, task) => {
      try {
        return await t.task(ctx, task)
      } catch (err) {
        if (err instanceof Error) err.message = redact(err.message)
        throw err
      }
    },
  }
}
