import {execFileSync, spawnSync} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import {describe, expect, it} from 'vitest'
import {tmpDir, writeTree} from './helpers.js'

const ROOT = path.resolve(import.meta.dirname, '..', '..')

/**
 * bin/run.js (CommonJS) in a package of its own whose own-command bundle is `command` (the body
 * of runOwnCommand): how the real bin/run.js ends a run, without building hotctl.
 */
function fakePackage(command: string): string {
  const dir = tmpDir('hotctl-bin-')
  writeTree(dir, {
    'package.json': JSON.stringify({name: 'x', version: '1.2.3', type: 'module', oclif: {bin: 'x', plugins: []}}),
    'oclif.manifest.json': JSON.stringify({commands: {deploy: {}}}),
    'bin/package.json': fs.readFileSync(path.join(ROOT, 'bin', 'package.json'), 'utf8'),
    'bin/run.js': fs.readFileSync(path.join(ROOT, 'bin', 'run.js'), 'utf8'),
    // As src/code-cache.ts's requireWithCodeCache: the bundle's exports and a save() run at exit.
    'dist/own/code-cache.cjs': `exports.codeCacheDir = () => '${dir}/cache'
exports.requireWithCodeCache = (file) => ({exports: require(file), save: () => process.stdout.write('saved\\n')})`,
    'dist/own/hotctl.cjs': `exports.runOwnCommand = async () => {${command}}`,
  })
  return dir
}

const run = (dir: string) =>
  spawnSync(process.execPath, [path.join(dir, 'bin', 'run.js'), 'deploy'], {encoding: 'utf8'})

describe('bin/run.js', () => {
  it('is CommonJS in a "type": "module" package, and --version still reads package.json', () => {
    const dir = fakePackage('')
    expect(execFileSync(process.execPath, [path.join(dir, 'bin', 'run.js'), '--version'], {encoding: 'utf8'})).toBe(
      `x/1.2.3 ${process.platform}-${process.arch} node-${process.version}\n`,
    )
  })

  it('after the command returns, exits once the loop is idle: late work still runs, the exit code and exit handlers stay', () => {
    const dir = fakePackage(
      "process.exitCode = 3; setTimeout(() => process.stdout.write('late write\\n'), 50); return 'done'",
    )
    const r = run(dir)
    expect(r.status).toBe(3)
    expect(r.stdout).toBe('late write\nsaved\n')
    expect(r.stderr).toBe('')
  })

  it('a command whose promise never settles exits 13, as an unsettled top-level await did, never 0', () => {
    const r = run(fakePackage('await new Promise(() => {})'))
    expect(r.status).toBe(13)
    expect(r.stderr).toContain('the command stopped before it finished')
  })
})
