import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

/**
 * This controller's copy of a host's hash record base (see RemoteHashRecord), one per host and
 * record file, in `~/.cache/hotctl/ssh-records/`
 * (`$XDG_CACHE_HOME`). The host sends its base only when its sha256 is not this copy's (the base
 * is rewritten only now and then; its patch always comes): a deploy neither moves nor waits for
 * the whole record, and the copy is parsed while the host lists its tree. Only a cache: a lost
 * or stale copy costs the transfer, never a wrong answer (the host decides by sha256).
 */
const sha256 = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest('hex')

export class RecordCache {
  private readonly file: string

  constructor(
    host: string,
    recordFile: string,
    dir = path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'hotctl', 'ssh-records'),
  ) {
    const key = crypto.createHash('sha256').update(`${host}\0${recordFile}`).digest('hex').slice(0, 32)
    this.file = path.join(dir, `${key}.json`)
  }

  /**
   * The copy as its JSON (kept unzipped: gunzip was a third of parsing it), with the sha256 of the
   * host's gzip it came from; undefined when there is none or its JSON is not what was written.
   */
  read(): {text: string; sha: string} | undefined {
    try {
      const data = fs.readFileSync(this.file, 'utf8')
      const nl = data.indexOf('\n')
      const [sha, textSha] = data.slice(0, nl).split(' ')
      const text = data.slice(nl + 1)
      return sha && textSha === sha256(text) ? {text, sha} : undefined
    } catch {
      return undefined
    }
  }

  /** `gz` as stored on the host, and its JSON (UTF-8), written as it is (no copy of it made). */
  write(gz: Buffer, json: Buffer): void {
    try {
      fs.mkdirSync(path.dirname(this.file), {recursive: true, mode: 0o700})
      const tmp = `${this.file}.${process.pid}.tmp`
      const fd = fs.openSync(tmp, 'w', 0o600)
      try {
        fs.writeSync(fd, `${sha256(gz)} ${sha256(json)}\n`)
        for (let at = 0; at < json.length; ) at += fs.writeSync(fd, json, at, json.length - at)
      } finally {
        fs.closeSync(fd)
      }
      fs.renameSync(tmp, this.file)
    } catch {
      // only a cache
    }
  }
}
