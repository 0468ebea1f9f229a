import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import {Worker} from 'node:worker_threads'

/** How copying one file into the staging directory ended (`StagedBatch.states`). */
export const STAGED = {
  /** This copy created the object under its name. */
  new: 0,
  /** The object was already staged (the same content elsewhere in the tree): nothing written. */
  already: 1,
  /** The source could not be opened or read before anything was written: the caller copies it again itself. */
  failed: 2,
} as const

/** What copying a batch of files gave, per file: the sha256 (32 bytes each), the bytes copied, and how it ended. */
export interface StagedBatch {
  digests: Uint8Array
  sizes: Float64Array
  states: Uint8Array
}

/**
 * The copy loop, as source text: the workers run it, and this thread runs the same text (one
 * implementation of how an object is staged). Each file is read, hashed as it is read and written
 * under its name (`<stage>/<fan>/<sha256>`, created exclusively: of two copies of one content, one
 * writes and the other finds it staged). A file that fits the buffer is read once; a bigger one is
 * streamed into a temp file and linked under its name. Nothing half-written is ever under an
 * object's name for long: a failure after the source was opened stops the batch (`fatal`), and the
 * backup fails as a sequential copy would; one before (a file gone since the walk) is left to the
 * caller (`failed`).
 */
const STAGE_SOURCE = `
return function stageFiles(root, files, sizes, stage, buf, tmpPrefix, counter) {
  const n = files.length
  const digests = new Uint8Array(32 * n)
  const got = new Float64Array(n)
  const states = new Uint8Array(n)
  const sha256 = (data) =>
    typeof crypto.hash === 'function' ? crypto.hash('sha256', data, 'buffer') : crypto.createHash('sha256').update(data).digest()
  // A new name under the fan-out directory, made when the first object of the fan lands.
  const create = (make, fan) => {
    try {
      return make()
    } catch (err) {
      if (err.code !== 'ENOENT') throw err
      fs.mkdirSync(stage + '/' + fan, {recursive: true})
      return make()
    }
  }
  for (let i = 0; i < n; i++) {
    let src
    try {
      const f = files[i]
      src = fs.openSync(typeof f === 'string' && typeof root === 'string' ? root + f : Buffer.concat([Buffer.from(root), Buffer.from(f)]), 'r')
    } catch {
      states[i] = ${STAGED.failed}
      continue
    }
    try {
      let r
      try {
        r = fs.readSync(src, buf, 0, buf.length, null)
      } catch {
        states[i] = ${STAGED.failed}
        continue
      }
      if (r < buf.length) {
        const data = buf.subarray(0, r)
        const digest = sha256(data)
        const hex = digest.toString('hex')
        const fan = hex.slice(0, 2)
        const dest = stage + '/' + fan + '/' + hex
        let fd
        try {
          fd = create(() => fs.openSync(dest, 'wx', 0o444), fan)
        } catch (err) {
          if (err.code !== 'EEXIST') throw err
        }
        if (fd === undefined) states[i] = ${STAGED.already}
        else {
          try {
            for (let at = 0; at < r; ) at += fs.writeSync(fd, data, at, r - at)
          } finally {
            fs.closeSync(fd)
          }
          states[i] = ${STAGED.new}
        }
        digests.set(digest, i * 32)
        got[i] = r
        continue
      }
      const tmp = stage + '/' + tmpPrefix + '-' + counter.seq++
      const h = crypto.createHash('sha256')
      const out = fs.openSync(tmp, 'wx', 0o444)
      let size = 0
      try {
        for (; r > 0; r = fs.readSync(src, buf, 0, buf.length, null)) {
          h.update(buf.subarray(0, r))
          for (let at = 0; at < r; ) at += fs.writeSync(out, buf, at, r - at)
          size += r
        }
      } finally {
        fs.closeSync(out)
      }
      const digest = h.digest()
      const hex = digest.toString('hex')
      const fan = hex.slice(0, 2)
      try {
        create(() => fs.linkSync(tmp, stage + '/' + fan + '/' + hex), fan)
        states[i] = ${STAGED.new}
      } catch (err) {
        if (err.code !== 'EEXIST') throw err
        states[i] = ${STAGED.already}
      }
      fs.unlinkSync(tmp)
      digests.set(digest, i * 32)
      got[i] = size
    } catch (err) {
      return {fatal: String(err && err.message ? err.message : err)}
    } finally {
      fs.closeSync(src)
    }
  }
  return {digests, sizes: got, states}
}
`

type StageFiles = (
  root: string | Buffer,
  files: (string | Buffer)[],
  sizes: number[],
  stage: string,
  buf: Buffer,
  tmpPrefix: string,
  counter: {seq: number},
) => StagedBatch | {fatal: string}

const WORKER = `
const {parentPort, workerData} = require('node:worker_threads')
const fs = require('node:fs')
const crypto = require('node:crypto')
const stageFiles = new Function('fs', 'crypto', ${JSON.stringify(STAGE_SOURCE)})(fs, crypto)
const buf = Buffer.allocUnsafe(1 << 20)
const counter = {seq: 0}
parentPort.on('message', ({id, files, sizes}) => {
  const r = stageFiles(workerData.root, files, sizes, workerData.stage, buf, workerData.tmpPrefix, counter)
  parentPort.postMessage({id, ...r}, r.fatal ? [] : [r.digests.buffer, r.sizes.buffer, r.states.buffer])
})
`

/** Below this much content, starting a worker (~20 ms, ~12 MiB) costs more than it saves. */
export const MIN_PARALLEL_BYTES = 16 * 1024 * 1024
/**
 * One batch: enough to make a worker's round trip negligible (~50 µs), small enough to balance,
 * and short on this thread, which copies its batches between timers and signals (~20 ms here).
 */
export const BATCH_BYTES = 1024 * 1024
export const BATCH_FILES = 64

/** Workers started by this process (the tests check a first backup really copies on them). */
export const putPool = {workers: 0}

/** How many workers copy beside this thread: one per core but this one, at most 3. */
export const copyWorkers = (): number => Math.min(os.availableParallelism(), 4) - 1

interface Job {
  id: number
  files: (string | Buffer)[]
  sizes: number[]
  resolve: (b: StagedBatch) => void
  reject: (err: Error) => void
}

/**
 * Copies batches of files into a staging directory on this thread and `workers` worker threads
 * at once (a first backup: the whole tree's content, which one thread copied at one core's speed).
 * Batches are taken in the order they were queued; this thread takes one whenever it is free
 * (between them it yields, so results, progress and signals are seen).
 */
export class StagingPool {
  private readonly queue: Job[] = []
  private readonly workers: Worker[] = []
  /** The batch each worker is copying. */
  private readonly busy = new Map<Worker, Job>()
  private readonly stageHere: StageFiles
  private readonly counter = {seq: 0}
  private seq = 0
  private closed = false
  private wake?: () => void
  private readonly running: Promise<void>

  /**
   * `root`: the tree's directory with its trailing slash, prefixed to the paths of the files put
   * (the paths are made where they are opened, not all held here while their batches wait).
   */
  constructor(
    private readonly root: string | Buffer,
    private readonly stage: string,
    private readonly buf: Buffer,
    tmpPrefix: string,
    workers: number,
  ) {
    this.stageHere = new Function('fs', 'crypto', STAGE_SOURCE)(fs, crypto) as StageFiles
    for (let k = 0; k < workers; k++) this.startWorker(`${tmpPrefix}-w${k}`)
    this.running = this.copyHere(`${tmpPrefix}-m`)
  }

  /** Queues one batch; resolves with its results once copied. */
  put(files: (string | Buffer)[], sizes: number[]): Promise<StagedBatch> {
    if (this.closed) return Promise.reject(new Error('staging pool closed'))
    return new Promise((resolve, reject) => {
      this.queue.push({id: this.seq++, files, sizes, resolve, reject})
      this.wake?.()
      for (const w of this.workers) if (!this.busy.has(w)) this.feed(w)
    })
  }

  /** Stops the workers (after what they are copying: nothing is written into the staging directory after this). */
  async close(): Promise<void> {
    this.closed = true
    for (const job of this.queue.splice(0)) job.reject(new Error('staging pool closed'))
    this.wake?.()
    await this.running
    await Promise.all(this.workers.map((w) => w.terminate()))
  }

  private startWorker(tmpPrefix: string): void {
    putPool.workers++
    const worker = new Worker(WORKER, {eval: true, workerData: {root: this.root, stage: this.stage, tmpPrefix}})
    this.workers.push(worker)
    worker.on('message', (r: (StagedBatch | {fatal: string}) & {id: number}) => {
      const job = this.busy.get(worker)!
      this.busy.delete(worker)
      if ('fatal' in r) job.reject(new Error(r.fatal))
      else job.resolve(r)
      this.feed(worker)
    })
    worker.on('error', (err) => {
      this.busy.get(worker)?.reject(err)
      this.busy.delete(worker)
    })
  }

  private feed(worker: Worker): void {
    const job = this.closed ? undefined : this.queue.shift()
    if (!job) return
    this.busy.set(worker, job)
    worker.postMessage({id: job.id, files: job.files, sizes: job.sizes})
  }

  /** This thread's share: the next queued batch whenever it is free, yielding between batches. */
  private async copyHere(tmpPrefix: string): Promise<void> {
    while (!this.closed) {
      const job = this.queue.shift()
      if (!job) {
        await new Promise<void>((resolve) => (this.wake = resolve))
        this.wake = undefined
        continue
      }
      let r: StagedBatch | {fatal: string}
      try {
        r = this.stageHere(this.root, job.files, job.sizes, this.stage, this.buf, tmpPrefix, this.counter)
      } catch (err) {
        r = {fatal: (err as Error).message}
      }
      if ('fatal' in r) job.reject(new Error(r.fatal))
      else job.resolve(r)
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
}
