import {redact} from '../secrets.js'

/**
 * `--verbose`: every command hotctl runs (checks, triggers, smoke, restart, rsync with its argv)
 * and every HTTP request, one line each on stderr, secrets masked. Off unless a command turns it on.
 */
let enabled = false

export function setVerbose(on: boolean): void {
  enabled = on
}

export const isVerbose = () => enabled

export function verbose(line: string): void {
  if (enabled) process.stderr.write(`${redact(`[verbose] ${line}`)}\n`)
}

/** An argv as a reader can paste it (display only: nothing is ever run from this text). */
export function showArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ')
}

/** Header values that are not secrets; every other value is shown as ***. */
const PLAIN_HEADERS = new Set(['accept', 'content-type', 'user-agent', 'content-length'])

/** Request headers for the verbose log: names kept, values masked unless plainly harmless. */
export function showHeaders(headers: Record<string, string>): string {
  const parts = Object.entries(headers).map(([k, v]) => `${k}: ${PLAIN_HEADERS.has(k.toLowerCase()) ? v : '***'}`)
  return parts.length ? ` {${parts.join(', ')}}` : ''
}
