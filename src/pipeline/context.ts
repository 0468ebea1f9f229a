import type {ResolvedConfig} from '../config/resolve.js'
import type {Target} from '../target/target.js'
import type {Ui} from '../ui/ui.js'

/** What every pipeline step gets: the config, the one Target, the UI and the interrupt signal. */
export interface OpContext {
  config: ResolvedConfig
  target: Target
  ui: Ui
  signal: AbortSignal
  /** Environment for user commands (checks, triggers, smoke): HOTCTL_* facts of this operation. */
  env: Record<string, string>
}

export const interrupted = (ctx: OpContext) => ctx.signal.aborted
