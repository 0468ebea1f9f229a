import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

/**
 * This controller's copy of a host's hash record base (the gzipped file as stored there, see
 * RemoteHashRecord), one per host and record file, in `~/.cache/hotctl/ssh-records/`
 * (`$XDG_CACHE_HOME`). The host sends its base only when its sha256 is not this copy's (the base
 * is rewritten only now and then; its patch always comes): a deploy neither moves nor waits for
 * the whole record, and the copy is parsed while the host lists its tree. Only a cache: a lost
 * or stale copy costs the transfer, never a wrong answer (the host decides by sha256).
 */
export class RecordCache {
  private readonly file: string

  constructor(
    host: string,
    recordFile: string,
    dir = path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'hotctl', 'ssh-records'),
  ) {
    const key = crypto.createHash('sha256').update(`${host}\0${recordFile}`).digest('hex').slice(0, 32)
    this.file = path.join(dir, `${key}.json.gz`)
  }

  /** The copy and its sha256, if there is one. */
  read(): {gz: Buffer; sha: string} | undefined {
    try {
      const gz = fs.readFileSync(this.file)
      return {gz, sha: crypto.createHash('sha256').update(gz).digest('hex')}
    } catch {
      return undefined
    }
  }

  write(gz: Buffer): void {
    try {
      fs.mkdirSync(path.dirname(this.file), {recursive: true, mode: 0o700})
      const tmp = `${this.file}.${process.pid}.tmp`
      fs.writeFileSync(tmp, gz, {mode: 0o600})
      fs.renameSync(tmp, this.file)
    } catch {
      // only a cache
    }
  }
}
