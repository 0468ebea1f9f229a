import os from 'node:os'
import {Worker} from 'node:worker_threads'
import {fsPath} from '../file-names.js'
import {hashFile} from './hash.js'

/** Below this much content, starting workers (~20 ms each) costs more than it saves. */
const MIN_PARALLEL_BYTES = 16 * 1024 * 1024
/** What one message to a worker asks for: enough to make the round trip negligible, small enough to balance. */
const BATCH_BYTES = 4 * 1024 * 1024
const BATCH_FILES = 256

/**
 * The worker: sha256 of each file it is sent, read through one buffer (as hash.ts does), or null
 * when one cannot be read (the caller hashes it again itself, and fails as it would have).
 * Inline source: the CLI is bundled, so there is no worker file beside the chunk that starts it.
 */
const WORKER = `
const {parentPort} = require('node:worker_threads')
const crypto = require('node:crypto')
const fs = require('node:fs')
const buf = Buffer.allocUnsafe(1 << 20)
parentPort.on('message', (files) => {
  parentPort.postMessage(files.map((file) => {
    let fd
    try {
      fd = fs.openSync(file, 'r')
      const h = crypto.createHash('sha256')
      let n
      while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) h.update(n === buf.length ? buf : buf.subarray(0, n))
      return h.digest('hex')
    } catch {
      return null
    } finally {
      if (fd !== undefined) fs.closeSync(fd)
    }
  }))
})
`

/** Workers started by this process (the tests check the pool is really used). */
export const pool = {workers: 0}

/**
 * sha256 (hex) of each file, on every core when there is enough to read: the CI case (a fresh
 * clone, every mtime new) reads the whole source, which one thread hashed at ~1 core's speed.
 * `sizes` (from the walk) only balance the batches. A file a worker could not read is hashed
 * here, so its error is the one hashFile gives.
 */
export async function hashFiles(files: string[], sizes: number[]): Promise<string[]> {
  const total = sizes.reduce((a, b) => a + b, 0)
  const cores = Math.min(os.availableParallelism(), 8)
  if (cores < 2 || total < MIN_PARALLEL_BYTES) return files.map((f) => hashFile(f))
  const out: (string | null)[] = new Array<string | null>(files.length).fill(null)
  let next = 0
  const batch = (): number[] => {
    const picked: number[] = []
    let bytes = 0
    while (next < files.length && picked.length < BATCH_FILES && bytes < BATCH_BYTES) {
      bytes += sizes[next]!
      picked.push(next++)
    }
    return picked
  }
  // This thread hashes too, between the workers' messages: one worker fewer to start (~35 ms of CPU).
  const here = async () => {
    for (let picked = batch(); picked.length > 0; picked = batch()) {
      for (const i of picked) {
        try {
          out[i] = hashFile(files[i]!)
        } catch {
          out[i] = null
        }
      }
      await new Promise((resolve) => setImmediate(resolve)) // the workers' results, and their next batches
    }
  }
  const count = Math.min(cores, Math.ceil(total / BATCH_BYTES)) - 1
  const workers = Array.from({length: count}, () => (pool.workers++, new Worker(WORKER, {eval: true})))
  try {
    await Promise.all([
      here(),
      ...workers.map(
        (worker) =>
          new Promise<void>((resolve, reject) => {
            let sent: number[] = []
            const send = () => {
              sent = batch()
              if (sent.length === 0) resolve()
              else worker.postMessage(sent.map((i) => fsPath(files[i]!)))
            }
            worker.on('message', (hashes: (string | null)[]) => {
              sent.forEach((i, k) => (out[i] = hashes[k] ?? null))
              send()
            })
            worker.on('error', reject)
            send()
          }),
      ),
    ])
  } finally {
    await Promise.all(workers.map((w) => w.terminate()))
  }
  return out.map((h, i) => h ?? hashFile(files[i]!))
}
