import {execFileSync} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterEach, describe, expect, it} from 'vitest'
import {RSYNC_RECORD, rsyncCheck} from '../../src/target/local-preflight.js'

const hasCc = (() => {
  try {
    execFileSync('cc', ['--version'], {stdio: 'ignore'})
    return true
  } catch {
    return false
  }
})()

/**
 * A stand-in rsync that counts its runs in a file beside it and prints `version`: a compiled
 * program (a script is never recorded), or a shell script with `script`.
 */
function fakeRsync(dir: string, version: string, script = false): {bin: string; runs: () => number} {
  const bin = path.join(dir, 'rsync')
  const count = path.join(dir, 'runs')
  const line = `rsync  version ${version}  protocol version 31`
  if (script) fs.writeFileSync(bin, `#!/bin/sh\necho x >> '${count}'\necho "${line}"\n`, {mode: 0o755})
  else {
    const c = path.join(dir, 'fake-rsync.c')
    fs.writeFileSync(
      c,
      `#include <stdio.h>\nint main(void){FILE*f=fopen(${JSON.stringify(count)},"a");if(f){fputs("x\\n",f);fclose(f);}puts(${JSON.stringify(line)});return 0;}\n`,
    )
    execFileSync('cc', ['-o', bin, c])
  }
  return {bin, runs: () => (fs.existsSync(count) ? fs.readFileSync(count, 'utf8').split('\n').length - 1 : 0)}
}

describe('rsyncCheck: a binary that passed is not run again while its stat is unchanged', () => {
  const saved = process.env.HOTCTL_RSYNC
  afterEach(() => {
    if (saved === undefined) delete process.env.HOTCTL_RSYNC
    else process.env.HOTCTL_RSYNC = saved
  })

  it.skipIf(!hasCc)(
    'records the check in the state dir, reuses it, and asks again when the binary changes',
    async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-rsync-check-'))
      const stateDir = path.join(dir, 'state')
      fs.mkdirSync(stateDir)
      const fake = fakeRsync(dir, '3.2.7')
      process.env.HOTCTL_RSYNC = fake.bin

      // Under --dry-run (and `check`) the state dir is not written: asked, nothing recorded.
      expect((await rsyncCheck(stateDir, false)).ok).toBe(true)
      expect(fs.existsSync(path.join(stateDir, RSYNC_RECORD))).toBe(false)
      fs.rmSync(path.join(dir, 'runs'))

      const first = await rsyncCheck(stateDir)
      expect(first).toMatchObject({name: 'rsync', ok: true})
      expect(first.detail).toBe(`${fake.bin} (from HOTCTL_RSYNC): rsync  version 3.2.7  protocol version 31`)
      expect(fake.runs()).toBe(1)
      expect(fs.existsSync(path.join(stateDir, RSYNC_RECORD))).toBe(true)

      // The same binary: the same item, from the record, without running it.
      expect(await rsyncCheck(stateDir)).toEqual(first)
      expect(fake.runs()).toBe(1)

      // Without a state dir (ssh preflight): always run.
      await rsyncCheck()
      expect(fake.runs()).toBe(2)

      // Replaced by one too old: its stat differs, so it is run, and refused.
      fs.rmSync(fake.bin)
      const old = fakeRsync(dir, '2.6.9')
      const refused = await rsyncCheck(stateDir)
      expect(refused.ok).toBe(false)
      expect(refused.detail).toContain('is version 2.6.9; hotctl needs 3.1 or newer')
      expect(old.runs()).toBe(3)
      expect(await rsyncCheck(stateDir)).toEqual(refused) // a failure is never recorded
      expect(old.runs()).toBe(4)

      // Gone: named as before.
      fs.rmSync(old.bin)
      expect(await rsyncCheck(stateDir)).toMatchObject({
        ok: false,
        detail: `${old.bin} (from HOTCTL_RSYNC) cannot be run (not found or not executable)`,
      })
    },
  )

  it('a script (a wrapper around another rsync) is run every time', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-rsync-check-'))
    const fake = fakeRsync(dir, '3.2.7', true)
    process.env.HOTCTL_RSYNC = fake.bin
    expect((await rsyncCheck(dir)).ok).toBe(true)
    expect((await rsyncCheck(dir)).ok).toBe(true)
    expect(fake.runs()).toBe(2)
    expect(fs.existsSync(path.join(dir, RSYNC_RECORD))).toBe(false)
  })

  it.skipIf(!hasCc)('a damaged record is ignored (rsync is asked)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-rsync-check-'))
    const fake = fakeRsync(dir, '3.2.7')
    process.env.HOTCTL_RSYNC = fake.bin
    fs.writeFileSync(path.join(dir, RSYNC_RECORD), '{"path": ')
    expect((await rsyncCheck(dir)).ok).toBe(true)
    expect(fake.runs()).toBe(1)
    expect((await rsyncCheck(dir)).ok).toBe(true)
    expect(fake.runs()).toBe(1)
  })
})
