import {stripVTControlCharacters} from 'node:util'
import {Command, Flags, type Interfaces} from '@oclif/core'
import chalk from 'chalk'
import {errorMessage, EXIT, HotctlError} from './errors.js'
import {InterruptReason} from './interrupt.js'
import type {HostSpec} from './config/resolve.js'
import type {OpContext} from './pipeline/context.js'
import type {FleetContext} from './pipeline/fleet-hosts.js'
import {redact, redactValue} from './secrets.js'
import {stdoutColor} from './ui/color.js'
import {createUi, type Ui} from './ui/ui.js'
import {setVerbose} from './ui/verbose.js'

/** `--limit NAME|GLOB[,…]`: the hosts a command acts on, as Ansible's --limit. */
export const limitFlag = Flags.string({
  helpValue: 'HOSTS',
  description: "Remote targets: only these hosts (names or globs, comma-separated; '!name' leaves one out).",
})

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<
  (typeof HotctlCommand)['baseFlags'] & T['flags']
>

/**
 * What every command shares: --json and --config, config loading, the interrupt signal, and the
 * one place results and errors are printed and mapped to exit codes.
 */
export abstract class HotctlCommand extends Command {
  static baseFlags = {
    json: Flags.boolean({
      description: 'Print exactly one JSON object on stdout (errors too); progress goes to stderr.',
      default: false,
    }),
    verbose: Flags.boolean({
      description: 'Show each command run, the rsync argv and each HTTP request on stderr (secrets masked).',
      default: false,
      helpGroup: 'GLOBAL',
    }),
    config: Flags.string({
      char: 'c',
      description:
        'Config file (default: search from the working directory up to the repository root; env HOTCTL_CONFIG).',
      helpGroup: 'GLOBAL',
    }),
    events: Flags.boolean({
      description:
        'Progress on stderr as NDJSON: one object per step start/end (with time and duration) and per message.',
      default: false,
      helpGroup: 'GLOBAL',
    }),
    timestamps: Flags.boolean({
      description: 'Start each progress line with the UTC time (default: on when CI is set).',
      allowNo: true,
      helpGroup: 'GLOBAL',
    }),
    'no-color': Flags.boolean({
      description: 'No colour (also NO_COLOR=1 or FORCE_COLOR=0; FORCE_COLOR=1..3 forces it).',
      default: false,
      helpGroup: 'GLOBAL',
    }),
  }

  protected ui: Ui = createUi(false)
  private readonly abort = new AbortController()
  private readonly startedAt = Date.now()
  /** A host's target was opened (ssh connections to end); a local target opens none. */
  private openedRemote = false

  protected get jsonMode(): boolean {
    return this.argv.includes('--json')
  }

  // Read from argv, not parsed flags: the UI exists before run() parses (errors in parsing use it too).
  async init(): Promise<void> {
    await super.init()
    const timestamps =
      this.argv.includes('--timestamps') || (!this.argv.includes('--no-timestamps') && !!process.env.CI)
    this.ui = createUi({json: this.jsonMode, events: this.argv.includes('--events'), timestamps})
    this.ui.event?.({type: 'run-start', command: this.id})
    setVerbose(this.argv.includes('--verbose'))
  }

  /**
   * Loads the config and opens the target; interrupts (SIGINT/SIGTERM) abort `signal`. A remote
   * target of one host (after --limit) is that host's target; more hosts need openOperation.
   */
  protected async openContext(configPath?: string, limit?: string): Promise<OpContext> {
    const opened = await this.openOperation(configPath, limit)
    if ('ctx' in opened) return opened.ctx
    if (opened.fleet.config.hosts.length === 1) return opened.fleet.host(opened.fleet.config.hosts[0]!)
    const {usageError} = await import('./errors.js')
    throw usageError(
      `\`hotctl ${this.id}\` works on one host at a time; this config names ${opened.fleet.config.hosts.length}`,
      'Choose one with --limit NAME.',
    )
  }

  /**
   * The config, then one target's context (a local path, or `user@host:/path` over ssh), or a
   * fleet context for `hosts:`/`inventory:` (even of one host): per-host waves, all or nothing.
   */
  protected async openOperation(
    configPath?: string,
    limit?: string,
  ): Promise<{ctx: OpContext} | {fleet: FleetContext}> {
    // Loaded here, not at the top: `hotctl --version` and --help must not pay for zod/cosmiconfig/execa.
    const {loadConfig} = await import('./config/load.js')
    const {forHost, withLimit} = await import('./config/hosts.js')
    const {loadTargetKinds, openTarget} = await import('./target/open.js')
    const config = withLimit(await loadConfig({configPath}), limit)
    await loadTargetKinds(config)
    // A second signal (GitHub Actions follows SIGINT with SIGTERM) never abandons a restore under
    // way: the handler stays installed, and only the first one aborts (its time starts the
    // restore's deadline, see interrupt.ts).
    const onSignal = (sig: NodeJS.Signals) => {
      if (this.abort.signal.aborted) {
        this.ui.say(`hotctl: ${sig} received again: still restoring, please wait`)
        return
      }
      this.ui.say(`hotctl: ${sig} received: stopping; the target will be restored if it was changed`)
      this.abort.abort(new InterruptReason(sig))
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    const env = {HOTCTL_TARGET: config.target, HOTCTL_SOURCE: config.source, HOTCTL_STATE_DIR: config.stateDir}
    const signal = this.abort.signal
    const host = (h: HostSpec): OpContext => {
      // What one host's own task trees (restores, recovery) report names the host, as its wave steps do.
      const ui: Ui = {
        ...this.ui,
        say: (m) => this.ui.say(config.hosts.length > 1 ? `[${h.name}] ${m}` : m),
        step: this.ui.step && ((e) => this.ui.step!({...e, host: e.host ?? h.name})),
      }
      const hostConfig = forHost(config, h)
      const target = openTarget(hostConfig, {warn: (m) => ui.say(`hotctl: warning: ${m}`)})
      this.openedRemote = true
      return {
        config: hostConfig,
        target,
        ui,
        signal,
        env: {...env, HOTCTL_HOST: h.name, HOTCTL_HOST_ADDRESS: h.address},
      }
    }
    if (config.oneHostTarget && config.hosts.length === 1) return {ctx: host(config.hosts[0]!)}
    if (config.hosts.length === 0) {
      const target = openTarget(config, {warn: (m) => this.ui.say(`hotctl: warning: ${m}`)})
      return {ctx: {config, target, ui: this.ui, signal, env}}
    }
    return {fleet: {config, ui: this.ui, signal, env, host}}
  }

  /** Ends the run's ssh master connections (remote targets), whatever the outcome. */
  async finally(err: Error | undefined): Promise<void> {
    if (this.openedRemote) {
      const {closeAllConnections} = await import('./ssh/connection.js')
      await closeAllConnections()
    }
    return super.finally(err)
  }

  /** Prints a result (JSON on stdout, or the human text on stderr/stdout) and sets the exit code. */
  protected finish(result: {exitCode: number} & Record<string, unknown>, human: () => string): void {
    if (this.jsonMode)
      process.stdout.write(`${JSON.stringify(redactValue({ok: result.exitCode === 0, command: this.id, ...result}))}\n`)
    else {
      const text = human()
      if (text) process.stdout.write(`${redact(stdoutColor() ? text : stripVTControlCharacters(text))}\n`)
    }
    this.ended(result.exitCode)
  }

  /** Sets the exit code; --events reports the run's end. */
  private ended(exitCode: number): void {
    process.exitCode = exitCode
    this.ui.event?.({
      type: 'run-end',
      command: this.id,
      exitCode,
      ok: exitCode === 0,
      durationMs: Date.now() - this.startedAt,
    })
  }

  async catch(err: Error & {oclif?: {exit?: number}; code?: string}): Promise<void> {
    const isOurs = err instanceof HotctlError
    // oclif's own parse errors (unknown flag, missing arg) are usage errors.
    const exitCode = isOurs
      ? err.exitCode
      : err.oclif?.exit !== undefined && err.oclif.exit !== 0
        ? EXIT.usage
        : EXIT.failed
    if (err.code === 'EEXIT' || (err.oclif?.exit === 0 && !isOurs)) throw err // help/version
    // A parse error was handled here: oclif's "did not parse its arguments" warning (NODE_ENV=test) would be noise.
    this.parsed = true
    // The command as typed (`backups prune`, not the id `backups:prune`).
    const typed = (this.id ?? '').replace(/:/g, ' ')
    const hint = isOurs ? err.hint : exitCode === EXIT.usage ? `See \`hotctl ${typed} --help\`.` : undefined
    // oclif's parse errors end with their own "See more help with --help": the hint says it.
    err.message = (isOurs ? err.message : errorMessage(err)).replace(/\n*See more help with --help\s*$/, '')
    if (this.jsonMode) {
      const details = isOurs ? err.details : undefined
      process.stdout.write(
        `${JSON.stringify(redactValue({ok: false, command: this.id, exitCode, error: {message: err.message, hint, ...details}}))}\n`,
      )
    } else if (this.ui.events) {
      this.ui.event?.({type: 'error', message: redact(err.message), ...(hint ? {hint: redact(hint)} : {}), exitCode})
    } else {
      process.stderr.write(
        redact(`${chalk.red('Error:')} ${err.message}\n${hint ? `${chalk.dim('→')} ${hint}\n` : ''}`),
      )
    }
    this.ended(exitCode)
  }
}
