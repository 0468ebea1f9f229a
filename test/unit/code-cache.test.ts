import fs from 'node:fs'
import path from 'node:path'
import {describe, expect, it} from 'vitest'
import {codeCacheDir, requireWithCodeCache} from '../../src/code-cache.js'
import {tmpDir} from './helpers.js'

/** A bundle as esbuild.config.mjs writes dist/own/hotctl.cjs: the module wrapper itself. */
function bundle(dir: string, body: string): string {
  const file = path.join(dir, 'bundle.cjs')
  fs.writeFileSync(file, `(function (exports, require, module, __filename, __dirname) {"use strict";${body}})`)
  return file
}
const BODY =
  "const path = require('node:path'); module.exports = {sum: (a, b) => a + b, base: path.basename(__filename), strict: (function () { return this === undefined })()}"

describe('requireWithCodeCache', () => {
  it('runs the bundle as a CommonJS module; the cache written at exit is used by the next run', () => {
    const dir = tmpDir()
    const cache = path.join(dir, 'cache')
    const file = bundle(dir, BODY)
    const first = requireWithCodeCache(file, cache)
    expect(first.cache).toBe('miss')
    expect(first.exports).toMatchObject({base: 'bundle.cjs', strict: true})
    expect((first.exports as {sum: (a: number, b: number) => number}).sum(2, 3)).toBe(5)
    expect(fs.existsSync(first.file!)).toBe(false) // written by save(), at exit
    first.save()
    expect(fs.readdirSync(cache)).toEqual([path.basename(first.file!)])
    // (V8's in-process compilation cache may serve this one; a fresh process reads the file:
    // test/e2e/code-cache.test.ts, where a corrupt cache is rejected too)
    const second = requireWithCodeCache(file, cache)
    expect(second.cache).toBe('hit')
    expect((second.exports as {sum: (a: number, b: number) => number}).sum(4, 5)).toBe(9)
  })

  it('a changed bundle of the same length never gets the old cache (V8 checks only the length)', () => {
    const dir = tmpDir()
    const cache = path.join(dir, 'cache')
    const file = bundle(dir, `module.exports = {v: 'aaaa'}`)
    requireWithCodeCache(file, cache).save()
    bundle(dir, `module.exports = {v: 'bbbb'}`)
    const changed = requireWithCodeCache(file, cache)
    expect(changed.exports).toEqual({v: 'bbbb'})
    expect(changed.cache).toBe('miss')
    // Another build's cache stays while it may still be used; a week unused, it goes.
    const old = path.join(cache, fs.readdirSync(cache)[0]!)
    changed.save()
    expect(fs.readdirSync(cache).sort()).toEqual([path.basename(old), path.basename(changed.file!)].sort())
    fs.rmSync(changed.file!)
    const weekAgo = new Date(Date.now() - 8 * 24 * 3600 * 1000)
    fs.utimesSync(old, weekAgo, weekAgo)
    requireWithCodeCache(file, cache).save()
    expect(fs.readdirSync(cache)).toEqual([path.basename(changed.file!)])
  })

  it('each tag (command) has its own cache', () => {
    const dir = tmpDir()
    const cache = path.join(dir, 'cache')
    const file = bundle(dir, BODY)
    requireWithCodeCache(file, cache, 'deploy').save()
    requireWithCodeCache(file, cache, 'backups:prune').save()
    expect(
      fs
        .readdirSync(cache)
        .map((n) => n.split('-')[0])
        .sort(),
    ).toEqual(['bundle.cjs.backups.prune', 'bundle.cjs.deploy'])
    expect(requireWithCodeCache(file, cache, 'deploy').cache).toBe('hit')
  })

  it('a cache dir that cannot be created or written is harmless', () => {
    const dir = tmpDir()
    const blocker = path.join(dir, 'not-a-dir')
    fs.writeFileSync(blocker, '')
    const file = bundle(dir, BODY)
    const r = requireWithCodeCache(file, path.join(blocker, 'cache'))
    expect(r.cache).toBe('miss')
    expect(() => r.save()).not.toThrow()
    expect(fs.readdirSync(dir).sort()).toEqual(['bundle.cjs', 'not-a-dir'])
    expect(requireWithCodeCache(file, undefined)).toMatchObject({cache: 'off', exports: {base: 'bundle.cjs'}})
  })

  it("the bundle's dynamic imports go through its sixth parameter, relative ones from the bundle's own place", async () => {
    const dir = tmpDir()
    fs.writeFileSync(path.join(dir, 'side.mjs'), 'export const side = 7\n')
    const file = path.join(dir, 'bundle.cjs')
    fs.writeFileSync(
      file,
      "(function (exports, require, module, __filename, __dirname, importModule) {module.exports = {os: () => importModule('node:os'), side: () => importModule('./side.mjs')}})",
    )
    const m = requireWithCodeCache(file, undefined).exports as {
      os: () => Promise<{cpus: unknown}>
      side: () => Promise<{side: number}>
    }
    expect(typeof (await m.os()).cpus).toBe('function')
    expect((await m.side()).side).toBe(7)
  })

  it('a non-ASCII bundle is read as UTF-8', () => {
    const dir = tmpDir()
    const file = bundle(dir, "module.exports = {s: 'Grüße → ✓'}")
    expect(requireWithCodeCache(file, undefined).exports).toEqual({s: 'Grüße → ✓'})
  })
})

describe('codeCacheDir', () => {
  it('is $XDG_CACHE_HOME/hotctl, else ~/.cache/hotctl; HOTCTL_CODE_CACHE names another dir or turns it off', () => {
    expect(codeCacheDir({XDG_CACHE_HOME: '/x/cache', HOME: '/home/u'})).toBe('/x/cache/hotctl')
    expect(codeCacheDir({XDG_CACHE_HOME: 'relative', HOME: '/home/u'})).toBe('/home/u/.cache/hotctl')
    expect(codeCacheDir({HOME: '/home/u'})).toBe('/home/u/.cache/hotctl')
    expect(codeCacheDir({HOME: '/home/u', HOTCTL_CODE_CACHE: '/tmp/cc'})).toBe('/tmp/cc')
    for (const off of ['0', 'false', 'off'])
      expect(codeCacheDir({HOME: '/home/u', HOTCTL_CODE_CACHE: off})).toBe(undefined)
  })
})
