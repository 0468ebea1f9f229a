import {type ChildProcess, spawn} from 'node:child_process'
import crypto from 'node:crypto'

/** What ended a request the shell could not answer: the shell's ssh gone (its exit code and stderr), or the time bound. */
export type ShellFailure = {why: 'exit'; code: number | null; stderr: string} | {why: 'timeout'}

export interface ShellAnswer {
  exitCode: number
  stdout: Buffer
  stderr: string
}

/**
 * One long-lived `sh -s` on a host, over the host's master connection: fixed scripts run in it one
 * at a time, instead of an ssh client here and an sshd session there per script (their process
 * starts were most of a fleet deploy's CPU on both sides, and every spawn stalls this process).
 * Each script runs in a subshell (its `exit`, `cd` and variables stay there) with stdin from
 * /dev/null and stderr into a file on the host; its stdout, exit code and stderr come back framed
 * by a random nonce per request, so no output can fake the frame. The request is one compound
 * command, parsed whole before any of it runs, as `remoteScript` guarantees for a script of its own.
 */
export class RemoteShell {
  private readonly sub: ChildProcess
  private chunks: Buffer[] = []
  private size = 0
  private clientStderr = ''
  private current?: {
    /** `\n<nonce> `: the frame's head, after the script's stdout. */
    nonce: Buffer
    /** `<nonce>\n`: the frame's end, after its stderr. */
    tailMark: Buffer
    /** Where the head is in the output, once found; until then the last bytes it could start in. */
    at?: number
    tail: Buffer
    done: (a: ShellAnswer) => void
    fail: (f: ShellFailure) => void
  }
  /** Set once the shell can take no more requests (its ssh ended, or it was killed). */
  dead = false
  private ended = false
  private queue: Promise<unknown> = Promise.resolve()

  /** `command argv` starts the shell: `ssh [options] -- host 'sh -s'` (a test runs `sh -s` here). */
  constructor(command: string, argv: string[]) {
    this.sub = spawn(command, argv, {stdio: ['pipe', 'pipe', 'pipe']})
    this.sub.on('error', () => this.end(null))
    this.sub.stdin!.on('error', () => undefined) // a dead shell is reported by 'close'
    this.sub.stdout!.on('data', (b: Buffer) => this.data(b))
    this.sub.stderr!.on('data', (b: Buffer) => {
      this.clientStderr = (this.clientStderr + b.toString()).slice(-8192)
    })
    this.sub.on('close', (code) => this.end(code))
    // What the host side left running may hold the pipes open after the shell is gone: its exit
    // ends the request too, once what was already in the pipe had a moment to arrive.
    this.sub.on('exit', (code) => setTimeout(() => this.end(code), 200).unref())
    // Only a request in flight (its timer) keeps this process alive, never the idle shell.
    this.sub.unref()
    for (const s of [this.sub.stdin, this.sub.stdout, this.sub.stderr]) (s as unknown as {unref?: () => void}).unref?.()
    // One stderr file per shell, removed when the shell ends (EOF on its stdin, or a hangup).
    this.sub.stdin!.write(
      `E=$(mktemp "\${TMPDIR:-/tmp}/hotctl-sh.XXXXXX" 2>/dev/null) || { E="\${TMPDIR:-/tmp}/hotctl-sh.$$"; : > "$E" || exit 1; }\n` +
        `trap 'rm -f "$E"' EXIT\ntrap 'exit 1' HUP TERM\n`,
    )
  }

  /** Runs `body` (a remoteScript); one at a time, in call order. */
  run(body: Buffer, timeoutMs: number): Promise<ShellAnswer> {
    const go = () => this.request(body, timeoutMs)
    const p = this.queue.then(go, go)
    this.queue = p.catch(() => undefined)
    return p
  }

  private request(body: Buffer, timeoutMs: number): Promise<ShellAnswer> {
    if (this.dead) return Promise.reject(new ShellGone())
    const nonce = crypto.randomBytes(12).toString('hex')
    return new Promise<ShellAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.current = undefined
        this.kill()
        reject(Object.assign(new ShellGone(), {failure: {why: 'timeout'} satisfies ShellFailure}))
      }, timeoutMs)
      this.current = {
        nonce: Buffer.from(`\n${nonce} `),
        tailMark: Buffer.from(`${nonce}\n`),
        tail: Buffer.alloc(0),
        done: (a) => {
          clearTimeout(timer)
          resolve(a)
        },
        fail: (f) => {
          clearTimeout(timer)
          reject(Object.assign(new ShellGone(), {failure: f}))
        },
      }
      this.chunks = []
      this.size = 0
      // Three writes, in order (no copy of a body of megabytes: a manifest in base64).
      this.sub.stdin!.write('{ (\n')
      this.sub.stdin!.write(body)
      this.sub.stdin!.write(
        `) 2>"$E"; s=$?; printf '\\n%s %s\\n' ${nonce} "$s"; ` +
          `while IFS= read -r l || [ -n "$l" ]; do printf '%s\\n' "$l"; done < "$E"; printf '%s\\n' ${nonce}; }\n`,
      )
    })
  }

  private data(b: Buffer): void {
    const c = this.current
    if (!c) return // a killed request's late output
    this.chunks.push(b)
    this.size += b.length
    if (c.at === undefined) {
      // Looked for in the new bytes and across their start (the few bytes before them): never the
      // whole output again, and no copy of a chunk (a listing is megabytes).
      const edge = Buffer.concat([c.tail, b.subarray(0, c.nonce.length - 1)])
      let i = edge.indexOf(c.nonce)
      if (i !== -1) c.at = this.size - b.length - c.tail.length + i
      else if ((i = b.indexOf(c.nonce)) !== -1) c.at = this.size - b.length + i
      else {
        const keep = c.nonce.length - 1
        c.tail = b.length >= keep ? Buffer.from(b.subarray(b.length - keep)) : Buffer.from(edge.subarray(-keep))
        return
      }
    }
    const buf = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks)
    this.chunks = [buf]
    const statusEnd = buf.indexOf(0x0a, c.at + c.nonce.length)
    const end = statusEnd === -1 ? -1 : buf.indexOf(c.tailMark, statusEnd + 1)
    if (end === -1) return // the frame's end is still on its way
    const exitCode = Number(buf.toString('latin1', c.at + c.nonce.length, statusEnd))
    const stderr = buf.toString('utf8', statusEnd + 1, end).replace(/\n$/, '')
    // A view, not a copy: `buf` is this request's own (a chunk read for it, or their concatenation).
    const stdout = buf.subarray(0, c.at)
    this.current = undefined
    this.chunks = []
    this.size = 0
    c.done({exitCode, stdout, stderr})
  }

  private end(code: number | null): void {
    if (this.ended) return
    this.ended = true
    this.dead = true
    const c = this.current
    this.current = undefined
    c?.fail({why: 'exit', code, stderr: this.clientStderr})
  }

  /** Stops the shell here (its ssh client); the host side ends at EOF once what it runs ends. */
  kill(): void {
    this.dead = true
    this.sub.stdin!.destroy()
    this.sub.stdout!.destroy()
    this.sub.kill('SIGKILL')
  }

  /** Ends the shell: EOF on its stdin (the host's sh exits and removes its stderr file); resolves once its ssh has ended (at most 5 s, then it is killed). */
  close(): Promise<void> {
    this.dead = true
    if (this.sub.exitCode !== null || this.sub.signalCode !== null) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.sub.kill('SIGKILL'), 5000)
      this.sub.once('close', () => {
        clearTimeout(timer)
        resolve()
      })
      this.sub.stdin!.end()
    })
  }
}

/** A request the shell could not answer (`failure` says why); never sent when the shell was already gone. */
export class ShellGone extends Error {
  failure?: ShellFailure
  constructor() {
    super('the remote shell is gone')
  }
}
