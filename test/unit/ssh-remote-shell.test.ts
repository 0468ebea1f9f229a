import {afterEach, describe, expect, it} from 'vitest'
import {PRELUDE_EXIT, PRELUDE_FAILED, remoteScript} from '../../src/ssh/quote.js'
import {RemoteShell, ShellGone} from '../../src/ssh/remote-shell.js'

// The host's long-lived shell (src/ssh/remote-shell.ts), run here as `sh -s` instead of over ssh:
// the framing of every answer, and what ends a request.
const shells: RemoteShell[] = []
const shell = () => {
  const s = new RemoteShell('sh', ['-s'])
  shells.push(s)
  return s
}
afterEach(async () => {
  await Promise.all(shells.splice(0).map((s) => s.close()))
})

describe('RemoteShell', () => {
  it('answers each script with its own stdout (byte for byte), exit code and stderr, in call order, from one process', async () => {
    const sh = shell()
    const binary = Buffer.from([0, 1, 0xff, 0x0a, 0x27, 0])
    const [a, b, c] = await Promise.all([
      sh.run(remoteScript(`printf '%s' "$1"; echo oops >&2; exit 3`, ['x y']), 10_000),
      sh.run(remoteScript(`printf '\\000\\001\\377\\n'"'"'\\000'`), 10_000),
      sh.run(remoteScript(`echo $$`), 10_000),
    ])
    expect(a).toEqual({exitCode: 3, stdout: Buffer.from('x y'), stderr: 'oops'})
    expect(b.stdout).toEqual(binary)
    expect(b.exitCode).toBe(0)
    // `exit`, `cd` and variables stay in the script's subshell: the shell goes on, the same process.
    const d = await sh.run(remoteScript('cd /; x=1; exit 0'), 10_000)
    const e = await sh.run(remoteScript('pwd; echo "${x:-unset}"; echo $$'), 10_000)
    expect(d.exitCode).toBe(0)
    expect(e.stdout.toString().split('\n').slice(1, 3)).toEqual(['unset', c.stdout.toString().trim()])
    expect(e.stdout.toString().split('\n')[0]).not.toBe('/')
  })

  it('an answer whose frame arrives split at any byte, or after a long output, comes back whole', async () => {
    // A stand-in for the host's shell that answers every request with `xxxxxxxx` (or N bytes of it)
    // and its frame, in two writes cut at the byte the request names, a pause between them (two
    // reads here), so the frame's head is found across reads at every offset.
    const fake = String.raw`let buf = ''
process.stdin.on('data', (d) => {
  buf += d
  for (let m; (m = /printf '\\n%s %s\\n' ([0-9a-f]{24})[\s\S]*?printf '%s\\n' \1; }\n/.exec(buf)); ) {
    const [, cut, n] = /cut=(\d+) n=(\d+)/.exec(buf).map(Number)
    buf = buf.slice(m.index + m[0].length)
    const out = 'x'.repeat(n) + '\n' + m[1] + ' 0\n' + m[1] + '\n'
    process.stdout.write(out.slice(0, cut))
    setTimeout(() => process.stdout.write(out.slice(cut)), 30)
  }
})`
    const sh = new RemoteShell(process.execPath, ['-e', fake])
    shells.push(sh)
    for (const [n, cuts] of [
      [8, Array.from({length: 40}, (_, k) => 8 + k)],
      [1_500_000, [1_500_005, 1_500_020]],
    ] as const)
      for (const cut of cuts) {
        const r = await sh.run(remoteScript(`: cut=${cut} n=${n}`), 10_000)
        expect(r.exitCode).toBe(0)
        expect(r.stdout.length).toBe(n)
        expect(r.stdout.every((c) => c === 0x78)).toBe(true)
      }
  })

  it('output that imitates a frame does not end the answer (the nonce is random per request)', async () => {
    const sh = shell()
    const r = await sh.run(remoteScript(`printf '\\n%s %s\\n' 0123456789abcdef01234567 0; printf 'rest'`), 10_000)
    expect(r.stdout.toString()).toBe('\n0123456789abcdef01234567 0\nrest')
    expect(r.exitCode).toBe(0)
  })

  it('a prelude runs first; when it fails the script does not run', async () => {
    const sh = shell()
    const ok = await sh.run(
      remoteScript('echo "main $1"', ['m'], [{script: 'echo "pre $1"', args: ['p'], what: 'x'}]),
      10_000,
    )
    expect(ok.stdout.toString()).toBe('pre p\nmain m\n')
    const bad = await sh.run(
      remoteScript('echo ran', [], [{script: 'echo no >&2; exit 1', args: [], what: 'x'}]),
      10_000,
    )
    expect(bad.exitCode).toBe(PRELUDE_EXIT)
    expect(bad.stdout.toString()).toBe('')
    expect(bad.stderr).toContain(PRELUDE_FAILED)
  })

  it('a script past its time bound ends the shell (ShellGone: timeout); a dead shell takes no request', async () => {
    const sh = shell()
    const err = await sh.run(remoteScript('sleep 5'), 300).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ShellGone)
    expect((err as ShellGone).failure).toEqual({why: 'timeout'})
    expect(sh.dead).toBe(true)
    const next = await sh.run(remoteScript('true'), 1000).catch((e: unknown) => e)
    expect(next).toBeInstanceOf(ShellGone)
    expect((next as ShellGone).failure).toBeUndefined() // never sent: the caller may use a new shell
  })

  it('a shell that ends mid-request (a cut connection) fails that request, with how it ended', async () => {
    const sh = shell()
    const err = await sh.run(remoteScript('echo partial; kill -KILL $$; sleep 2'), 10_000).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ShellGone)
    expect((err as ShellGone).failure).toMatchObject({why: 'exit', code: null})
    expect(sh.dead).toBe(true)
  })
})
