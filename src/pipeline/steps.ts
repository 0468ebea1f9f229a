import type {ListrTask} from 'listr2'

/**
 * A task of an operation's tree, with the words a dry run or a plan uses for it. The log renderer
 * (src/ui/step-renderer.ts) also reads `progress` (what a long step is waiting on, asked every
 * 10 s) and `host` (the host a step runs for: its events carry it, and its subtasks inherit it).
 */
export type Step = ListrTask & {does?: string; progress?: () => string | undefined; host?: string}

/** The tree as listr2 runs it. */
export function steps(tree: Step[]): ListrTask[] {
  return tree.map(({does: _does, ...task}) => task)
}

/**
 * Wraps tasks built elsewhere (the reload/confirm/smoke proof) so they skip when `skipWhy` gives a
 * reason, and in a dry run, titled with what they would have done: the same tree serves both.
 */
export function wouldDo(tasks: ListrTask[], opts: {dryRun: boolean; skipWhy: () => string | false}): Step[] {
  return tasks.map((t) => {
    const title = typeof t.title === 'string' ? t.title : ''
    const does = title.charAt(0).toLowerCase() + title.slice(1)
    return {
      ...t,
      does,
      skip: async (ctx: unknown) => {
        const why = opts.skipWhy() || (opts.dryRun && `dry run: would ${does}`)
        if (why) return why
        return typeof t.skip === 'function'
          ? (t.skip as (c: unknown) => boolean | string | Promise<boolean | string>)(ctx)
          : (t.skip ?? false)
      },
    }
  })
}

/** What the enabled steps do, in order: the plan a dry run shows. */
export function described(tree: Step[]): string[] {
  const enabled = (t: Step) =>
    typeof t.enabled === 'function' ? (t.enabled as (c: unknown) => boolean)(undefined) : t.enabled !== false
  return tree.flatMap((t) => (t.does && enabled(t) ? [t.does] : []))
}
