import os from 'node:os'
import {Worker} from 'node:worker_threads'
import {fsPath} from '../file-names.js'
import {hashFileDigest} from './hash.js'

/** Bytes of one sha256 digest in the buffer hashFiles returns. */
export const DIGEST = 32
/** Below this much content, starting workers (~20 ms each) costs more than it saves. */
const MIN_PARALLEL_BYTES = 16 * 1024 * 1024
/** What one message to a worker asks for: enough to make the round trip negligible, small enough to balance. */
const BATCH_BYTES = 4 * 1024 * 1024
const BATCH_FILES = 256

/**
 * The worker: the sha256 of each file it is sent (paths and the sizes the walk saw), read as
 * hashFileDigest reads it, answered as one buffer of digests (transferred, not copied) and the
 * indexes it could not read (the caller hashes those again itself, and fails as it would have).
 * Inline source: the CLI is bundled, so there is no worker file beside the chunk that starts it.
 */
const WORKER = `
const {parentPort} = require('node:worker_threads')
const crypto = require('node:crypto')
const fs = require('node:fs')
const buf = Buffer.allocUnsafe(256 * 1024)
const oneShot = typeof crypto.hash === 'function'
parentPort.on('message', ({files, sizes}) => {
  const out = new Uint8Array(${DIGEST} * files.length)
  const failed = []
  files.forEach((file, i) => {
    let fd
    try {
      fd = fs.openSync(file, 'r')
      let n = fs.readSync(fd, buf, 0, buf.length, null)
      if (oneShot && n < buf.length && n >= sizes[i]) out.set(crypto.hash('sha256', buf.subarray(0, n), 'buffer'), i * ${DIGEST})
      else {
        const h = crypto.createHash('sha256')
        for (let total = n; ; total += n) {
          if (n > 0) h.update(n === buf.length ? buf : buf.subarray(0, n))
          if (n === 0 || (n < buf.length && total >= sizes[i])) break
          n = fs.readSync(fd, buf, 0, buf.length, null)
        }
        out.set(h.digest(), i * ${DIGEST})
      }
    } catch {
      failed.push(i)
    } finally {
      if (fd !== undefined) fs.closeSync(fd)
    }
  })
  parentPort.postMessage({digests: out, failed}, [out.buffer])
})
`

/** Workers started by this process (the tests check the pool is really used). */
export const pool = {workers: 0}

/** Files named as they are needed (planning's paths are built per batch, never all at once). */
export interface FileList {
  readonly length: number
  path(i: number): string
}

/**
 * sha256 of each file, as one buffer of 32-byte digests in the files' order, on every core when
 * there is enough to read: the CI case (a fresh clone, every mtime new) reads the whole source,
 * which one thread hashed at ~1 core's speed. `sizes` (from the walk) balance the batches and
 * spare each file the read that finds its end. A file a worker could not read is hashed here, so
 * its error is the one hashFileDigest gives.
 */
export async function hashFiles(list: readonly string[] | FileList, sizes: ArrayLike<number>): Promise<Buffer> {
  const files: FileList = isFileList(list) ? list : {length: list.length, path: (i) => list[i]!}
  const out = Buffer.alloc(DIGEST * files.length)
  const done = new Uint8Array(files.length)
  const hashHere = (i: number) => {
    hashFileDigest(files.path(i), sizes[i]).copy(out, i * DIGEST)
    done[i] = 1
  }
  let total = 0
  for (let i = 0; i < files.length; i++) total += sizes[i]!
  const cores = Math.min(os.availableParallelism(), 8)
  if (cores < 2 || total < MIN_PARALLEL_BYTES) {
    for (let i = 0; i < files.length; i++) hashHere(i)
    return out
  }
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
          hashHere(i)
        } catch {
          // hashed again below, where its error is thrown
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
              else worker.postMessage({files: sent.map((i) => fsPath(files.path(i))), sizes: sent.map((i) => sizes[i])})
            }
            worker.on('message', ({digests, failed}: {digests: Uint8Array; failed: number[]}) => {
              out.set(digests, sent[0]! * DIGEST) // a batch is consecutive files
              for (const i of sent) done[i] = 1
              for (const k of failed) done[sent[k]!] = 0
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
  for (let i = 0; i < files.length; i++) if (!done[i]) hashHere(i)
  return out
}

const isFileList = (list: readonly string[] | FileList): list is FileList => !Array.isArray(list)
