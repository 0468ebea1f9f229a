import {redact} from '../secrets.js'

export interface Ui {
  json: boolean
  /** A line for humans, on stderr (kept out of --json's stdout). */
  say(message: string): void
}

export function createUi(json: boolean): Ui {
  return {json, say: (m) => process.stderr.write(`${redact(m)}\n`)}
}
