import type {Hook} from '@oclif/core'
import {EXIT} from '../errors.js'

/**
 * An unknown command is a usage error (exit 2) with the valid commands; one JSON object under
 * --json. `deploy now-please` is a known command with an unexpected argument, and says so.
 */
const hook: Hook<'command_not_found'> = async function (opts) {
  const ids = opts.config.commandIDs
  const typed = (id: string) => id.replace(/:/g, ' ')
  const words = opts.id.split(':')
  // The longest known command the words start with (`backups` for `backups bogus`).
  const known = words
    .map((_, i) => words.slice(0, words.length - i).join(':'))
    .find((id) => id !== opts.id && ids.includes(id))
  let message: string
  let hint: string
  if (known) {
    const extra = words.slice(known.split(':').length).join(' ')
    const subcommands = ids.filter((id) => id.startsWith(`${known}:`)).map(typed)
    message = `unexpected argument "${extra}" for \`hotctl ${typed(known)}\``
    hint = `${subcommands.length ? `Its subcommands: ${subcommands.join(', ')}. ` : ''}See \`hotctl ${typed(known)} --help\`.`
  } else {
    message = `unknown command "${typed(opts.id)}"`
    hint = `Commands: ${ids.map(typed).join(', ')}. See \`hotctl --help\`.`
  }
  if ((opts.argv ?? []).includes('--json')) {
    process.stdout.write(
      `${JSON.stringify({ok: false, command: typed(opts.id), exitCode: EXIT.usage, error: {message, hint}})}\n`,
    )
  } else process.stderr.write(`Error: ${message}\n→ ${hint}\n`)
  process.exit(EXIT.usage)
}

export default hook
