import {Listr, ListrLogger, ProcessOutput, type ListrTask} from 'listr2'
import {redact} from '../secrets.js'
import type {Ui} from './ui.js'

/**
 * listr2, decided once: silent under --json, the default renderer on an interactive terminal,
 * the simple renderer (no spinners) in CI or without a TTY. Everything goes to stderr. listr2's
 * own signal listeners are off: hotctl's handler must restore the backup first.
 */
export function runTasks<T>(ui: Ui, tasks: ListrTask<T>[], ctx: T, concurrent = false): Promise<T> {
  const interactive = Boolean(process.stderr.isTTY) && !process.env.CI
  const processOutput = new ProcessOutput(process.stderr, process.stderr)
  const list = new Listr<T, 'default' | 'simple' | 'silent', 'simple'>(tasks.map(redacted), {
    concurrent,
    exitOnError: true,
    registerSignalListeners: false,
    renderer: ui.json ? 'silent' : interactive ? 'default' : 'simple',
    fallbackRenderer: 'simple',
    rendererOptions: {logger: new ListrLogger({processOutput}), collapseSubtasks: false, showErrorMessage: true},
    fallbackRendererOptions: {logger: new ListrLogger({processOutput}), timer: undefined},
    ctx,
  } as never)
  return list.run()
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
