import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {cacheFileWriter} from './cache-file.js'

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

  /** `gz` as stored on the host, and its JSON (UTF-8). */
  write(gz: Buffer, json: Buffer): void {
    const copy = this.writer()
    copy.add(json)
    copy.commit(gz)
  }

  /**
   * A new copy written as its JSON is made (`add`, in order; see RemoteHashRecord.stored), put in
   * place by `commit` with the gzip the host stored; `abort` (a no-op after commit) removes it.
   * No copy of the whole JSON is held.
   */
  writer(): {add: (piece: Buffer) => void; commit: (gz: Buffer) => void; abort: () => void} {
    // `<sha256 of the gzip> <sha256 of the JSON>\n` first, written once both are known.
    const out = cacheFileWriter(`${this.file}.${process.pid}.tmp`, HEADER)
    const sum = crypto.createHash('sha256')
    return {
      add: (piece) => {
        sum.update(piece)
        out.write(piece)
      },
      commit: (gz) => void out.finish(this.file, Buffer.from(`${sha256(gz)} ${sum.digest('hex')}\n`)),
      abort: out.drop,
    }
  }
}

/** The copy's first line: two sha256 in hex, a space between, a newline. */
const HEADER = 64 + 1 + 64 + 1
