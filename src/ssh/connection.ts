import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type {HostSpec, SshSettings} from '../config/resolve.js'
import {EXIT, HotctlError} from '../errors.js'
import {redact} from '../secrets.js'
import {PRELUDE_EXIT, PRELUDE_FAILED, type Prelude, remoteScript, rshWord, shq} from './quote.js'
import {RemoteShell, ShellGone} from './remote-shell.js'

/** ssh itself failed (exit 255): the host was not reached, or the connection broke. */
export class SshError extends HotctlError {
  constructor(
    readonly host: string,
    readonly sshMessage: string,
    readonly kind: 'unreachable' | 'host-key' | 'auth' | 'broken' | 'timeout',
  ) {
    const what = {
      unreachable: `${host} is unreachable`,
      'host-key': `the host key of ${host} is not trusted`,
      auth: `${host} refused the key`,
      broken: `the connection to ${host} broke`,
      timeout: `${host} did not answer in time`,
    }[kind]
    super(`ssh: ${what}: ${sshMessage}`, EXIT.failed, sshHint(kind, host))
    this.name = 'SshError'
  }
}

function sshHint(kind: SshError['kind'], host: string): string {
  if (kind === 'host-key')
    return `The host key of ${host} is not trusted: check it, then add it to known_hosts (or to the file ssh.config's UserKnownHostsFile names). hotctl never turns host key checking off.`
  if (kind === 'auth')
    return `Make a key for ${host} available (ssh-agent, IdentityFile in ~/.ssh/config or ssh.options).`
  return `Check that ${host} is up and reachable with \`ssh ${host} true\`; to deploy without it, leave it out with --limit.`
}

export interface RemoteResult {
  exitCode: number
  stdout: Buffer
  stderr: string
}

/** Uploads up to this size go through the host's shell (base64 in the script); larger ones get an ssh of their own. */
const SHELL_UPLOAD_MAX = 4 * 1024 * 1024
/** `$3` set: written beside the file, then renamed over it. */
const UPLOAD = `f=$1
[ -z "$3" ] || f=$1.tmp
printf '%s' "$2" | base64 -d > "$f" || exit 3
[ -z "$3" ] || mv -f -- "$f" "$1"`
const RENAME = `mv -f -- "$1" "$2"`

/** Every connection of this process shares one private (0700) directory for its control sockets. */
let controlDir: string | undefined
let sockets = 0
const open = new Set<SshConnection>()

function privateControlDir(): string {
  if (!controlDir) {
    controlDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-ssh-'))
    fs.chmodSync(controlDir, 0o700)
  }
  return controlDir
}

/**
 * One multiplexed OpenSSH connection to a host for this run: the first command starts the master
 * (ControlMaster=auto, a socket in a private directory, ControlPersist short so a killed hotctl
 * does not leave it for long), every later ssh and rsync rides on it, and `close` (or
 * closeAllConnections at exit) ends it. The user's ssh setup is honoured (~/.ssh/config or -F,
 * agent, ProxyJump, known_hosts); host keys are always checked and nothing ever prompts.
 */
export class SshConnection {
  /** `[user@]address` as ssh and messages name it. */
  readonly destination: string
  private shell?: RemoteShell
  private readonly preludes = new Map<string, () => Prelude | undefined>()
  /** Settles once the script that took the queued preludes has run (later scripts wait for it). */
  private carrying?: Promise<void>
  /** This connection's control socket: its own, so `close` can tell whether a master still runs. */
  private socketPath?: string

  constructor(
    readonly host: HostSpec,
    readonly settings: SshSettings,
  ) {
    this.destination = host.user ? `${host.user}@${host.address}` : host.address
  }

  /**
   * ssh's options, shared by ssh itself and rsync's -e (the same connection settings). `persist`:
   * the host's shell is started as the master where none runs yet, with no ControlPersist: the
   * master then ends with the shell, and closing it needs no `ssh -O exit` of its own.
   */
  options(persist: '30' | 'no' = '30'): string[] {
    const s = this.settings
    const secs = (ms: number) => String(Math.max(1, Math.ceil(ms / 1000)))
    return [
      ...(s.config ? ['-F', s.config] : []),
      '-o',
      'BatchMode=yes',
      '-o',
      'ControlMaster=auto',
      '-o',
      `ControlPath=${this.socket()}`,
      '-o',
      `ControlPersist=${persist}`,
      '-o',
      `ConnectTimeout=${secs(s.connectTimeoutMs)}`,
      '-o',
      `ServerAliveInterval=${secs(s.serverAliveIntervalMs)}`,
      '-o',
      'ServerAliveCountMax=3',
      ...s.options.flatMap((o) => ['-o', o]),
      ...(this.host.port ? ['-p', String(this.host.port)] : []),
    ]
  }

  private socket(): string {
    this.socketPath ??= path.join(privateControlDir(), String(++sockets))
    return this.socketPath
  }

  /** rsync's `-e`: the same ssh, the same options, so rsync rides on the master connection. */
  rsh(): string {
    open.add(this)
    return ['ssh', ...this.options()].map(rshWord).join(' ')
  }

  /** `[user@]host:path` for rsync (IPv6 addresses in brackets); the path is sent with --secluded-args. */
  rsyncPath(p: string): string {
    const addr = this.host.address.includes(':') ? `[${this.host.address}]` : this.host.address
    return `${this.host.user ? `${this.host.user}@` : ''}${addr}:${p}`
  }

  /**
   * Runs a fixed POSIX sh script on the host (values only as quoted positional args, see
   * quote.ts), bounded by `timeoutMs` (default ssh.timeout). Resolves with the script's exit code
   * (0-254); ssh's own failure (255) throws SshError naming the host.
   */
  async run(
    script: string,
    args: (string | Buffer)[] = [],
    opts: {
      timeoutMs?: number
      signal?: AbortSignal
      detached?: boolean
      onStderr?: (chunk: Buffer) => void
      /** Output byte for byte (file content): a final newline is kept. */
      exact?: boolean
    } = {},
  ): Promise<RemoteResult> {
    open.add(this)
    const started = Date.now()
    const timeoutMs = opts.timeoutMs ?? this.settings.timeoutMs
    const preludes = await this.takePreludes()
    let done = () => {}
    if (preludes.length) this.carrying = new Promise<void>((resolve) => (done = resolve))
    try {
      // A script nobody needs to interrupt, watch or stop on its own runs in the host's shell.
      const body = remoteScript(script, args, preludes)
      const r =
        !opts.signal && !opts.detached && !opts.onStderr
          ? await this.inShell(body, timeoutMs).then((a) => ({
              ...a,
              stdout: opts.exact || a.stdout.at(-1) !== 0x0a ? a.stdout : a.stdout.subarray(0, -1),
            }))
          : await this.inSession(body, timeoutMs, opts)
      this.debug(started, script, args, preludes, body.length, r.stdout.length)
      if (r.exitCode === PRELUDE_EXIT && r.stderr.includes(PRELUDE_FAILED))
        throw new Error(
          `${preludes.map((p) => p.what).join(' and ')} on ${this.host.name} failed: ${lastLine(r.stderr.replace(PRELUDE_FAILED, ''))}`,
        )
      if (r.exitCode === 255) throw sshFailure(this.host.name, r.stderr)
      return r
    } finally {
      done()
    }
  }

  /**
   * `prelude` runs on the host in front of the next script (any script, or rsync's first
   * round trip: `flush`), in its round trip; `key` replaces one queued under the same key.
   */
  defer(key: string, prelude: () => Prelude | undefined): void {
    this.preludes.set(key, prelude)
  }

  /** Runs what `defer` queued now, if anything is queued (before an action that is not a script here, such as rsync). */
  async flush(): Promise<void> {
    if (this.preludes.size > 0) await this.must('connecting', 'true')
  }

  /** The queued preludes, taken by the caller's script (once one already carrying some has run them). */
  private async takePreludes(): Promise<Prelude[]> {
    await this.carrying
    const out = [...this.preludes.values()].map((make) => make()).filter((p) => p !== undefined)
    this.preludes.clear()
    return out
  }

  /** A script in an ssh session of its own: one that is interrupted, watched or stopped on its own. */
  private async inSession(
    input: Buffer,
    timeoutMs: number,
    opts: {signal?: AbortSignal; detached?: boolean; onStderr?: (chunk: Buffer) => void; exact?: boolean},
  ): Promise<RemoteResult> {
    const {execa} = await import('execa') // loaded when ssh runs, not at every start
    const sub = execa('ssh', [...this.options(), '--', this.destination, 'sh -s'], {
      input,
      reject: false,
      encoding: 'buffer',
      detached: opts.detached,
      stripFinalNewline: !opts.exact,
    })
    if (opts.onStderr) sub.stderr?.on('data', opts.onStderr)
    // The bound is kept here, not by waiting for the pipes: a multiplexed ssh hands its stdio to
    // the master, so they stay open until the remote command ends even after the client is killed.
    let timer: NodeJS.Timeout | undefined
    let onAbort: (() => void) | undefined
    const bound = new Promise<'timeout' | 'abort'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs)
      onAbort = () => resolve('abort')
      if (opts.signal?.aborted) resolve('abort')
      else opts.signal?.addEventListener('abort', onAbort, {once: true})
    })
    const first = await Promise.race([sub.then((r) => ({r})), bound.then((why) => ({why}))])
    clearTimeout(timer)
    if (onAbort) opts.signal?.removeEventListener('abort', onAbort)
    if ('why' in first) {
      sub.kill('SIGKILL')
      sub.catch(() => undefined) // settles once the host side ends
      if (first.why === 'abort')
        throw new HotctlError(`interrupted while talking to ${this.host.name}`, EXIT.interrupted)
      throw new SshError(this.host.name, `no answer within ${timeoutMs} ms (ssh.timeout)`, 'timeout')
    }
    const r = first.r
    const stderr = Buffer.from(r.stderr).toString()
    if (r.exitCode === undefined || r.exitCode === 255) throw sshFailure(this.host.name, stderr, r.shortMessage)
    return {exitCode: r.exitCode, stdout: Buffer.from(r.stdout), stderr}
  }

  /**
   * Starts connecting now (the host's shell, as its first script would), so the connection is made
   * while this process still loads what it runs next; the first script then finds it (or its
   * failure, reported by that script as always).
   */
  connect(): void {
    if (process.env.HOTCTL_DEBUG_SSH)
      process.stderr.write(
        `hotctl: ssh ${this.host.name}: connecting ${Math.round(performance.now())} ms into the run\n`,
      )
    open.add(this)
    if (!this.shell || this.shell.dead)
      this.shell = new RemoteShell('ssh', [...this.options('no'), '--', this.destination, 'sh -s'])
  }

  /**
   * The host's shell: started on first use, started again after it ended (a cut connection, a
   * timeout). A request it could not answer is an SshError, as ssh's own failure is; one that never
   * reached a shell (it was already gone) goes to a new one.
   */
  private async inShell(body: Buffer, timeoutMs: number) {
    for (;;) {
      if (!this.shell || this.shell.dead)
        this.shell = new RemoteShell('ssh', [...this.options('no'), '--', this.destination, 'sh -s'])
      try {
        return await this.shell.run(body, timeoutMs)
      } catch (err) {
        if (!(err instanceof ShellGone)) throw err
        const f = err.failure
        if (!f) continue
        if (f.why === 'timeout')
          throw new SshError(this.host.name, `no answer within ${timeoutMs} ms (ssh.timeout)`, 'timeout')
        throw sshFailure(this.host.name, f.stderr, `ssh exited with ${f.code ?? 'a signal'}`)
      }
    }
  }

  /** HOTCTL_DEBUG_SSH=1: one stderr line per remote script (time, first words, argument count, bytes sent and received, how it ran). */
  private debug(
    started: number,
    script: string,
    args: unknown[],
    preludes: Prelude[],
    sent: number,
    got: number,
  ): void {
    if (process.env.HOTCTL_DEBUG_SSH)
      process.stderr.write(
        `hotctl: ssh ${this.host.name} ${Date.now() - started} ms (done ${Math.round(performance.now())} ms into the run): ${script.split('\n')[0]!.slice(0, 50)} (${args.length} args, ${sent} B sent, ${got} B back)${preludes.length ? ` after ${preludes.map((p) => p.what).join(', ')}` : ''}\n`,
      )
  }

  /**
   * Writes `bytes` to `file` on the host (`atomic`: to `file.tmp`, then renamed over it): through
   * the host's shell, or for a large file `cat >` in an ssh of its own (the path quoted by shq).
   */
  async upload(file: string, bytes: Buffer, opts: {atomic?: boolean} = {}): Promise<void> {
    open.add(this)
    if (bytes.length <= SHELL_UPLOAD_MAX) {
      // Through the host's shell as base64 (a script's argument cannot hold every byte).
      const r = await this.run(UPLOAD, [file, base64Bytes(bytes), opts.atomic ? '1' : ''])
      if (r.exitCode !== 0) throw new Error(`writing ${file} on ${this.host.name} failed: ${lastLine(r.stderr)}`)
      return
    }
    if (opts.atomic) {
      await this.upload(`${file}.tmp`, bytes)
      await this.must(`writing ${file}`, RENAME, [`${file}.tmp`, file])
      return
    }
    await this.flush()
    const {execa} = await import('execa')
    const r = await execa('ssh', [...this.options(), '--', this.destination, `cat > ${shq(file)}`], {
      input: bytes,
      reject: false,
      encoding: 'buffer',
      timeout: this.settings.timeoutMs,
      forceKillAfterDelay: 1000,
    })
    const stderr = Buffer.from(r.stderr).toString()
    if (r.exitCode === undefined || r.exitCode === 255) throw sshFailure(this.host.name, stderr, r.shortMessage)
    if (r.exitCode !== 0) throw new Error(`writing ${file} on ${this.host.name} failed: ${lastLine(stderr)}`)
  }

  /** `run`, but any exit other than 0 throws, quoting the script's stderr. */
  async must(
    what: string,
    script: string,
    args: (string | Buffer)[] = [],
    opts: {timeoutMs?: number; exact?: boolean} = {},
  ): Promise<Buffer> {
    const r = await this.run(script, args, opts)
    if (r.exitCode !== 0)
      throw new Error(`${what} on ${this.host.name} failed (exit ${r.exitCode}): ${lastLine(r.stderr)}`)
    return r.stdout
  }

  /** Ends the master connection (ssh -O exit); quietly nothing when none is running. */
  async close(): Promise<void> {
    open.delete(this)
    const shell = this.shell
    this.shell = undefined
    await shell?.close()
    // The shell was the master (no ControlPersist): it is gone with it, and so is its socket.
    if (!this.socketPath || !fs.existsSync(this.socketPath)) return
    const {execa} = await import('execa')
    await execa('ssh', [...this.options(), '-O', 'exit', '--', this.destination], {
      reject: false,
      timeout: 5000,
      stdin: 'ignore',
    })
  }
}

/** `bytes` in base64, as bytes: a megabyte of base64 (a manifest, a hash record) kept out of the JS heap (see remoteScript). */
export function base64Bytes(bytes: Buffer): Buffer {
  const step = 3 * 32 * 1024
  const out = Buffer.allocUnsafe(Math.ceil(bytes.length / 3) * 4) // written whole below, pieces in place (no copy to join)
  let n = 0
  for (let at = 0; at < bytes.length; at += step)
    n += out.write(bytes.subarray(at, at + step).toString('base64'), n, 'latin1')
  return out.subarray(0, n)
}

/** Closes every master connection this process opened, and removes the private control directory. */
export async function closeAllConnections(): Promise<void> {
  await Promise.all([...open].map((c) => c.close()))
  if (controlDir) fs.rmSync(controlDir, {recursive: true, force: true})
  controlDir = undefined
}

const lastLine = (text: string) => redact(text.trim().split('\n').slice(-2).join(' | ')) || '(no message)'

/** ssh's exit 255, told apart by its message: unreachable, host key, authentication, or a cut connection. */
export function sshFailure(host: string, stderr: string, fallback = ''): SshError {
  const text = stderr.trim() || fallback
  const line =
    text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('@') && !/^(Warning: Permanently added|debug)/.test(l))
      .slice(-2)
      .join(' | ') || 'ssh exited with 255'
  const kind: SshError['kind'] =
    /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No (?:RSA|ED25519|ECDSA)? ?host key is known|host key .* differs/i.test(
      text,
    )
      ? 'host-key'
      : /Permission denied|Too many authentication failures/i.test(text)
        ? 'auth'
        : /Connection (?:refused|timed out)|Could not resolve|No route to host|Network is unreachable|Operation timed out|Connection closed by .* port|kex_exchange_identification/i.test(
              text,
            )
          ? 'unreachable'
          : 'broken'
  return new SshError(host, redact(line), kind)
}
