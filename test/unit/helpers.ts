import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterEach} from 'vitest'
import {HotctlError} from '../../src/errors.js'

const made: string[] = []

/** A fresh temp dir, removed after the current test. */
export function tmpDir(prefix = 'hotctl-unit-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  made.push(d)
  return d
}

afterEach(() => {
  for (const d of made.splice(0)) {
    // objects are written read-only; make everything writable before removal
    fs.rmSync(d, {recursive: true, force: true})
  }
})

/** Writes files ({'a/b.txt': 'content'}) under root, creating parents. */
export function writeTree(root: string, files: Record<string, string | Buffer>): void {
  for (const [rel, content] of Object.entries(files)) {
    const abs = path.join(root, rel)
    fs.mkdirSync(path.dirname(abs), {recursive: true})
    fs.writeFileSync(abs, content)
  }
}

/** Runs fn, expecting a HotctlError; returns it. */
export function catchHotctl(fn: () => unknown): HotctlError {
  try {
    fn()
  } catch (err) {
    if (err instanceof HotctlError) return err
    throw new Error(`expected a HotctlError, got ${String(err)}`)
  }
  throw new Error('expected a HotctlError, nothing was thrown')
}
