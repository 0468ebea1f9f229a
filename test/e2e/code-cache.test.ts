import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {execa} from 'execa'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {BIN, requireBuild, runCli} from './helpers.js'

/**
 * bin/run.js runs hotctl's own commands from dist/own/hotctl.cjs through a V8 code cache
 * (src/code-cache.ts) in HOTCTL_CODE_CACHE (default $XDG_CACHE_HOME/hotctl). Each run here is a
 * fresh process, so V8 really reads (or rejects) the file.
 */
const dirs: string[] = []
beforeAll(() => requireBuild())
afterAll(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, {recursive: true, force: true})
})

function smallTree() {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-code-cache-')))
  dirs.push(dir)
  const src = path.join(dir, 'src')
  const live = path.join(dir, 'live')
  fs.mkdirSync(src)
  fs.mkdirSync(live)
  for (let i = 0; i < 3; i++) fs.writeFileSync(path.join(src, `f${i}.py`), `print(${i})\n`)
  const config = path.join(src, 'hotctl.config.json')
  fs.writeFileSync(config, JSON.stringify({target: live, protect: [], checks: {}}))
  return {dir, src, live, config}
}

const deploy = (t: ReturnType<typeof smallTree>, cache: string) =>
  runCli(['deploy', '--skip-checks', '--json', '--config', t.config], {
    cwd: t.src,
    env: {HOTCTL_CODE_CACHE: cache},
  })

describe('the code cache', () => {
  it("run as installed (a symlink to bin/run.js, started by its shebang), node gets the shebang's V8 flags", async () => {
    // The flags (README: the young generation's size, for peak RSS) are in the cache file's name.
    const flags = fs
      .readFileSync(BIN, 'utf8')
      .split('\n', 1)[0]!
      .split(/\s+/)
      .filter((a) => a.startsWith('--'))
    expect(flags.some((f) => f.startsWith('--max-semi-space-size='))).toBe(true)
    // glibc's malloc gives freed memory back (README: peak RSS of a remote deploy).
    expect(fs.readFileSync(BIN, 'utf8').split('\n', 1)[0]).toMatch(
      /^#!\/usr\/bin\/env -S MALLOC_TRIM_THRESHOLD_=\d+ node /,
    )
    const t = smallTree()
    const cache = path.join(t.dir, 'cache')
    const bin = path.join(t.dir, 'hotctl')
    fs.symlinkSync(BIN, bin) // what npm installs on PATH
    const env = {...process.env, HOTCTL_CODE_CACHE: cache, NODE_OPTIONS: '', NO_COLOR: '1', CI: '1'}
    const version = await execa(bin, ['--version'], {env, reject: false})
    expect(version.exitCode, String(version.stderr)).toBe(0)
    expect(String(version.stdout)).toMatch(/^hotctl\/\d+\.\d+\.\d+ /)
    const r = await execa(bin, ['deploy', '--skip-checks', '--json', '--config', t.config], {
      cwd: t.src,
      env,
      reject: false,
    })
    expect(r.exitCode, String(r.stderr)).toBe(0)
    const options = crypto
      .createHash('sha256')
      .update([...flags, ''].join('\0'))
      .digest('hex')
      .slice(0, 16)
    expect(fs.readdirSync(cache)).toEqual([expect.stringContaining(`-o${options}-`)])
  })

  it('is written by the first run, used untouched by the next, and a corrupt one is rejected and rewritten', async () => {
    const t = smallTree()
    const cache = path.join(t.dir, 'cache')
    const first = await deploy(t, cache)
    expect(first.exitCode, first.stderr).toBe(0)
    expect(first.json.outcome).toBe('deployed')
    const files = fs.readdirSync(cache)
    expect(files).toHaveLength(1)
    expect(files[0]).toMatch(/^hotctl\.cjs\.deploy-v\d+\.\d+\.\d+-[a-z0-9]+-(o[0-9a-f]+-)?[0-9a-f]+-\d+\.v8$/)
    const file = path.join(cache, files[0]!)
    const written = fs.statSync(file)
    expect(written.size).toBeGreaterThan(100_000)

    const second = await deploy(t, cache)
    expect(second.exitCode, second.stderr).toBe(0)
    expect(second.json.outcome).toBe('nothing-to-deploy')
    const after = fs.statSync(file)
    expect([after.ino, after.mtimeMs]).toEqual([written.ino, written.mtimeMs]) // a hit writes nothing

    // Other Node options (V8 would reject the cache): a cache of their own, this one untouched.
    const other = await runCli(['deploy', '--skip-checks', '--json', '--config', t.config], {
      cwd: t.src,
      env: {HOTCTL_CODE_CACHE: cache, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --max-semi-space-size=8`},
    })
    expect(other.exitCode, other.stderr).toBe(0)
    expect(fs.readdirSync(cache)).toHaveLength(2)
    const still = fs.statSync(file)
    expect([still.ino, still.mtimeMs]).toEqual([written.ino, written.mtimeMs])
    fs.rmSync(
      path.join(
        cache,
        fs.readdirSync(cache).find((n) => n !== files[0])!,
      ),
    )

    const garbage = Buffer.alloc(written.size, 0x5a)
    fs.writeFileSync(file, garbage)
    fs.writeFileSync(path.join(t.src, 'f0.py'), 'print("changed")\n')
    const third = await deploy(t, cache)
    expect(third.exitCode, third.stderr).toBe(0)
    expect(third.json.outcome).toBe('deployed')
    expect(third.json.plan.changes).toEqual({added: 0, changed: 1, deleted: 0})
    expect(fs.readFileSync(file).equals(garbage)).toBe(false) // rejected, then rewritten
    expect(fs.readdirSync(cache)).toEqual(files) // no temporary file left
  }, 60_000)

  it('a cache dir that cannot be made, or HOTCTL_CODE_CACHE=0, changes nothing but speed', async () => {
    const t = smallTree()
    const blocker = path.join(t.dir, 'a-file')
    fs.writeFileSync(blocker, '')
    const r = await deploy(t, path.join(blocker, 'cache'))
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.json.outcome).toBe('deployed')
    expect(r.stderr).not.toMatch(/ENOTDIR|code cache/i)
    const off = await deploy(t, '0')
    expect(off.exitCode, off.stderr).toBe(0)
    expect(off.json.outcome).toBe('nothing-to-deploy')
    expect(fs.existsSync(path.join(t.src, '0'))).toBe(false)
    expect(fs.readdirSync(t.dir).sort()).toEqual(['.live.hotctl', 'a-file', 'live', 'src']) // the state dir only
  }, 60_000)

  it("a local command loads no zlib: the cache is keyed with crypto (loaded anyway), the ssh target's code is not loaded", async () => {
    const t = smallTree()
    // Node's list of the built-in modules it loaded, written to a file at exit.
    const list = path.join(t.dir, 'modules.txt')
    const dump = path.join(t.dir, 'dump.cjs')
    fs.writeFileSync(
      dump,
      `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(list)}, process.moduleLoadList.join('\\n')))`,
    )
    const env = {HOTCTL_CODE_CACHE: path.join(t.dir, 'cache'), NODE_OPTIONS: `--require ${dump}`}
    for (const args of [
      ['deploy', '--skip-checks', '--json', '--config', t.config],
      ['status', '--json', '--config', t.config],
    ]) {
      const r = await runCli(args, {cwd: t.src, env})
      expect(r.exitCode, r.stderr).toBe(0)
      const loaded = fs.readFileSync(list, 'utf8').split('\n')
      expect(loaded, args[0]).toContain('NativeModule crypto')
      expect(loaded, args[0]).not.toContain('NativeModule zlib')
    }
    expect(fs.readdirSync(path.join(t.dir, 'cache'))).toHaveLength(2) // the own-command path, through the cache
  }, 60_000)

  it("dynamic imports work from a cached bundle: oclif's hook for a typo, cosmiconfig's JavaScript config", async () => {
    const t = smallTree()
    const env = {HOTCTL_CODE_CACHE: path.join(t.dir, 'cache')}
    const mjs = path.join(t.src, 'hotctl.config.mjs')
    fs.writeFileSync(mjs, `export default ${JSON.stringify({target: t.live, protect: [], checks: {}})}\n`)
    // A usage error (exit 2) writes no cache, the first deploy does; the second round is compiled from it.
    for (const run of [1, 2]) {
      const typo = await runCli(['deploy', 'now-please', '--json'], {cwd: t.src, env})
      expect(typo.exitCode, `run ${run}: ${typo.stderr}`).toBe(2)
      expect(typo.json.error.message).toContain('unexpected argument "now-please"')
      const js = await runCli(['deploy', '--skip-checks', '--json', '--config', mjs], {cwd: t.src, env})
      expect(js.exitCode, `run ${run}: ${js.stderr}`).toBe(0)
      expect(js.json.outcome).toBe(run === 1 ? 'deployed' : 'nothing-to-deploy')
    }
    expect(fs.readdirSync(env.HOTCTL_CODE_CACHE)).toEqual([expect.stringMatching(/^hotctl\.cjs\.deploy-v/)])
  }, 60_000)
})
