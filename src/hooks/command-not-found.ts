import type {Hook} from '@oclif/core'
import {EXIT} from '../errors.js'

/** An unknown command is a usage error (exit 2) with the valid commands; one JSON object under --json. */
const hook: Hook<'command_not_found'> = async function (opts) {
  const message = `unknown command "${opts.id.replace(/:/g, ' ')}"`
  const hint = `Commands: ${opts.config.commandIDs.map((c) => c.replace(/:/g, ' ')).join(', ')}. See \`hotctl --help\`.`
  if ((opts.argv ?? []).includes('--json')) {
    process.stdout.write(
      `${JSON.stringify({ok: false, command: opts.id, exitCode: EXIT.usage, error: {message, hint}})}\n`,
    )
  } else process.stderr.write(`Error: ${message}\n→ ${hint}\n`)
  process.exit(EXIT.usage)
}

export default hook
