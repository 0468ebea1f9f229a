/**
 * The fleet test bed: N real SSH hosts on this machine, for hotctl's remote and fleet tests.
 *
 * Each host is its own `sshd -D -e -f <its sshd_config>` on its own loopback address (127.A.B.11,
 * .12, … with A.B random per bed), inside its own mount namespace where /srv and /tmp are private:
 * every host has the same target path /srv/app with its own content, state dir and service, and
 * does not see the controller's temp dirs (test workspaces); /root/.bashrc reads as empty there
 * (bash runs it for every ssh session: a pyenv init in it serialized all hosts). Sessions that sshd spawns live in that
 * namespace; the rest of the file system is shared. Keys (one client key, one host key per host),
 * known_hosts (`[address]:port`, checked: StrictHostKeyChecking yes) and an ssh_config are generated
 * per bed. A small TCP proxy in front of each sshd (same port on every host) lets a test sever the
 * connection. Needs root (CI is root): without it, startHosts fails saying so.
 *
 *   const bed = await startHosts({count: 3, service: true})
 *   bed.hosts[0]    // {name: 'h1', address: '127.A.B.11', port, user: 'root', root, app, serviceUrl, …}
 *   bed.sshConfig   // `ssh -F bed.sshConfig h1`, `rsync -e "ssh -F <it>" … h1:/srv/app/` (names or addresses)
 *   bed.hostEntries()                    // hotctl `hosts:` entries [{name, host, user, port}]
 *   bed.serviceBase                      // 'http://${host}:PORT': the same port on every host
 *   bed.token                            // HOTRELOAD_TOKEN the services accept (hotctl sends Bearer ${HOTRELOAD_TOKEN})
 *   bed.serviceConfig()                  // hotctl reload + smoke sections for that service, with ${host} URLs
 *   await bed.exec(0, ['cat', '/srv/app/.hotctl-release.json'])  // inside h1's namespace (nsenter)
 *   await bed.ssh('h2', 'ls /srv/app')   // through sshd, like hotctl
 *   await bed.stop()                     // everything killed, temp dirs gone; safe twice; also at exit
 *
 * A host is named by its index (0-based) or its name ('h1'). Fault hooks:
 *   killSshd(i, {sessions = true})  SIGKILL sshd (listener and, by default, every session and the
 *                                   commands they run): new connections are refused; startSshd(i)
 *                                   brings it back (same keys, same port)
 *   freeze(i) / thaw(i)             SIGSTOP / SIGCONT sshd and all its descendants (sessions, rsync…)
 *   cut(i, 'reset'|'blackhole')     reset: live connections get an RST and new ones are refused;
 *                                   blackhole: connections stay open but no byte passes (a partition)
 *   restore(i)                      undoes cut: listening again, held connections flow again
 *   diskSize: '8m' (start option)   /srv is a tmpfs of that size (all hosts, or per host: ['8m', undefined])
 *   fillDisk(i, leave = 0) / freeDisk(i)   allocate all but `leave` bytes of that tmpfs / give it back
 *   stopService(i) / startService(i) / restartService(i)   the demo service (SIGTERM, then start again)
 *
 * Inside a host, /run/hotctl-bed is that host's control directory: `service start|stop|restart|status`
 * (usable as a hotctl `on: host` restart command), service.log, sshd.log, host.json. The service is
 * templates/python/demo_service.py with the hot-reload agent, started in /srv/app (seeded with
 * templates/python/demo_app unless `seed` says otherwise), listening on the host's address.
 *
 * All the bed's processes belong to a supervisor (bed-daemon.mjs) that cleans up when this process
 * ends in any way (its stdin closes), so a crashed test leaves no sshd, service, proxy or mount.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import readline from 'node:readline'
import {fileURLToPath} from 'node:url'
import {execa} from 'execa'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const DAEMON = path.join(HERE, 'bed-daemon.mjs')
export const DEMO_APP = path.resolve(HERE, '../../templates/python/demo_app')
/** The target path every host has. */
export const TARGET = '/srv/app'
/** Each host's control directory, as seen inside the host. */
export const HOST_RUN = '/run/hotctl-bed'

export interface StartOptions {
  /** Hosts h1..hN (default 3). */
  count?: number
  /** Run the demo service on every host (default false). */
  service?: boolean
  /** /srv as a tmpfs of this size ('8m'), for every host or per host index (undefined: a plain directory). */
  diskSize?: string | (string | undefined)[]
  /** A tree copied into every host's /srv/app before start. Default: templates/python/demo_app with `service`, else empty. */
  seed?: string | false
  /** A TCP proxy in front of each sshd, needed by cut()/restore() (default true). */
  proxy?: boolean
}

export interface BedHost {
  index: number
  name: string
  address: string
  port: number
  user: 'root'
  /** The host's /srv as seen from the controller (valid while the bed runs). */
  root: string
  /** The host's /srv/app as seen from the controller. */
  app: string
  /** The host's control directory (HOST_RUN inside) as seen from the controller. */
  run: string
  /** tmpfs size of its /srv, when it is one. */
  diskSize?: string
  /** Base URL of its demo service (with `service`), e.g. http://127.A.B.11:PORT */
  serviceUrl?: string
  /** Pid of the process that holds its namespace (for nsenter -t). */
  holder: number
}

export interface ExecResult {
  exitCode: number | undefined
  signal?: string
  timedOut: boolean
  stdout: string
  stderr: string
}

export interface ExecOptions {
  /** Working directory inside the host (exec) or nothing (ssh: the login directory). */
  cwd?: string
  input?: string
  timeoutMs?: number
}

export type HostRef = number | string

export interface Bed {
  dir: string
  hosts: BedHost[]
  /** Private ssh_config: Host entries per name and address, identity, known_hosts, StrictHostKeyChecking yes. */
  sshConfig: string
  knownHosts: string
  identityFile: string
  /** The ssh port, the same on every host. */
  port: number
  /** The demo service's port, the same on every host (with `service`). */
  servicePort?: number
  /** 'http://${host}:PORT' for hotctl configs (with `service`). */
  serviceBase?: string
  /** The token the services accept (with `service`): run hotctl with HOTRELOAD_TOKEN set to it. */
  token?: string
  /**
   * hotctl `reload` and `smoke` sections for the demo service on every host (with `service`): URLs
   * use `${host}`, the trigger sends `Bearer ${HOTRELOAD_TOKEN}`, restart runs the host's service script.
   */
  serviceConfig(): {reload: Record<string, unknown>; smoke: Record<string, unknown>[]}
  host(ref: HostRef): BedHost
  /** hotctl `hosts:` entries for these hosts (default all). */
  hostEntries(refs?: HostRef[]): {name: string; host: string; user: string; port: number}[]
  exec(ref: HostRef, argv: string[], opts?: ExecOptions): Promise<ExecResult>
  ssh(ref: HostRef, command: string, opts?: ExecOptions & {options?: string[]}): Promise<ExecResult>
  killSshd(ref: HostRef, opts?: {sessions?: boolean}): Promise<void>
  startSshd(ref: HostRef): Promise<void>
  freeze(ref: HostRef): Promise<void>
  thaw(ref: HostRef): Promise<void>
  cut(ref: HostRef, mode?: 'reset' | 'blackhole'): Promise<void>
  restore(ref: HostRef): Promise<void>
  fillDisk(ref: HostRef, leaveBytes?: number): Promise<void>
  freeDisk(ref: HostRef): Promise<void>
  stopService(ref: HostRef): Promise<void>
  startService(ref: HostRef): Promise<void>
  restartService(ref: HostRef): Promise<void>
  /** The host's sshd and service logs so far (for failure messages). */
  logs(ref: HostRef): {sshd: string; service: string}
  stop(): Promise<void>
}

interface Ready {
  dir: string
  port: number
  servicePort: number | null
  token: string | null
  hosts: {name: string; address: string; holder: number; root: string; run: string; diskSize: string | null}[]
}

const live = new Set<ChildProcess>()
let exitHook = false

/** Starts a bed; rejects with a clear message when this machine cannot run one (not root, no sshd). */
export async function startHosts(opts: StartOptions = {}): Promise<Bed> {
  if (process.getuid?.() !== 0) {
    throw new Error('the fleet test bed needs root (unshare, mount, sshd on loopback addresses): run the tests as root')
  }
  const count = opts.count ?? 3
  const sizes = Array.from({length: count}, (_, i) =>
    Array.isArray(opts.diskSize) ? (opts.diskSize[i] ?? null) : (opts.diskSize ?? null),
  )
  const seed = opts.seed === undefined ? (opts.service ? DEMO_APP : false) : opts.seed
  const spec = {count, service: !!opts.service, diskSize: sizes, seed: seed || null, proxy: opts.proxy !== false}

  const child = spawn(process.execPath, [DAEMON], {stdio: ['pipe', 'pipe', 'pipe'], detached: true})
  live.add(child)
  if (!exitHook) {
    exitHook = true
    // The daemon cleans up when our end of its stdin closes; SIGTERM makes it start at once.
    process.on('exit', () => live.forEach((c) => c.kill('SIGTERM')))
  }
  let stderr = ''
  child.stderr!.on('data', (d) => (stderr += String(d)))
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  const rpc = new Rpc(child, () => stderr)
  child.stdin!.write(`${JSON.stringify(spec)}\n`)
  const info = (await rpc.first().catch((err) => {
    live.delete(child)
    throw err
  })) as Ready
  const sshConfig = path.join(info.dir, 'ssh_config')
  const hosts: BedHost[] = info.hosts.map((h, index) => ({
    index,
    name: h.name,
    address: h.address,
    port: info.port,
    user: 'root',
    root: h.root,
    app: path.join(h.root, 'app'),
    run: h.run,
    holder: h.holder,
    ...(h.diskSize ? {diskSize: h.diskSize} : {}),
    ...(info.servicePort ? {serviceUrl: `http://${h.address}:${info.servicePort}`} : {}),
  }))
  let stopped = false

  const host = (ref: HostRef): BedHost => {
    const h = typeof ref === 'number' ? hosts[ref] : hosts.find((x) => x.name === ref)
    if (!h)
      throw new Error(`the bed has no host ${JSON.stringify(ref)} (hosts: ${hosts.map((x) => x.name).join(', ')})`)
    return h
  }
  const call = async (cmd: string, ref: HostRef, fields: Record<string, unknown> = {}) => {
    if (stopped) throw new Error(`the bed is stopped (${cmd})`)
    return rpc.request({cmd, host: host(ref).index, ...fields})
  }
  const run = async (argv: string[], opts: ExecOptions): Promise<ExecResult> => {
    const r = await execa(argv[0], argv.slice(1), {
      reject: false,
      input: opts.input ?? '',
      timeout: opts.timeoutMs ?? 60_000,
    })
    return {
      exitCode: r.exitCode,
      ...(r.signal ? {signal: r.signal} : {}),
      timedOut: r.timedOut,
      stdout: String(r.stdout),
      stderr: String(r.stderr),
    }
  }

  const bed: Bed = {
    dir: info.dir,
    hosts,
    sshConfig,
    knownHosts: path.join(info.dir, 'known_hosts'),
    identityFile: path.join(info.dir, 'id_ed25519'),
    port: info.port,
    ...(info.servicePort
      ? {servicePort: info.servicePort, serviceBase: `http://\${host}:${info.servicePort}`, token: info.token!}
      : {}),
    host,
    serviceConfig: () => {
      if (!info.servicePort) throw new Error('the bed runs no service: start it with {service: true}')
      const base = `http://\${host}:${info.servicePort}`
      return {
        reload: {
          trigger: {
            url: `${base}/api/v1/hot-reload/check`,
            method: 'POST',
            headers: {Authorization: 'Bearer ${HOTRELOAD_TOKEN}'},
          },
          status: {url: `${base}/api/v1/hot-reload/status`, version: 'version', settle: '200ms'}, // one process
          timeout: '15s',
          restart: {command: `${HOST_RUN}/service restart`, on: 'host'},
          requireRestart: ['requirements*.txt'],
        },
        smoke: [
          {name: 'health', url: `${base}/health`, expect: {status: 200}},
          {
            name: 'calc',
            url: `${base}/api/v1/calc`,
            method: 'POST',
            json: {a: 2, b: 3},
            expect: {status: 200, json: {success: true, result: 5}},
            retries: 1,
          },
        ],
      }
    },
    hostEntries: (refs) =>
      (refs ? refs.map(host) : hosts).map((h) => ({name: h.name, host: h.address, user: h.user, port: h.port})),
    exec: (ref, argv, opts = {}) => {
      // cd inside the namespace (nsenter --wd resolves the directory before entering it).
      const inDir = opts.cwd ? ['sh', '-c', 'cd "$0" && exec "$@"', opts.cwd] : []
      return run(['nsenter', '-t', String(host(ref).holder), '-m', '--', ...inDir, ...argv], opts)
    },
    ssh: (ref, command, opts = {}) =>
      run(['ssh', '-F', sshConfig, ...(opts.options ?? []), host(ref).name, command], opts),
    killSshd: async (ref, opts = {}) => void (await call('killSshd', ref, {sessions: opts.sessions !== false})),
    startSshd: async (ref) => void (await call('startSshd', ref)),
    freeze: async (ref) => void (await call('freeze', ref)),
    thaw: async (ref) => void (await call('thaw', ref)),
    cut: async (ref, mode = 'reset') => void (await call('cut', ref, {mode})),
    restore: async (ref) => void (await call('restore', ref)),
    fillDisk: async (ref, leaveBytes = 0) => {
      const h = host(ref)
      if (!h.diskSize) throw new Error(`${h.name}'s /srv is not a tmpfs: start the bed with diskSize to fill it`)
      const st = fs.statfsSync(h.root)
      const bytes = Math.floor(Math.max(0, st.bavail * st.bsize - leaveBytes) / st.bsize) * st.bsize
      if (bytes === 0) return
      const r = await bed.exec(ref, ['fallocate', '-l', String(bytes), `/srv/.bed-fill-${Date.now()}`])
      if (r.exitCode !== 0) throw new Error(`${h.name}: fallocate failed: ${r.stderr}`)
    },
    freeDisk: async (ref) => {
      const r = await bed.exec(ref, ['sh', '-c', 'rm -f /srv/.bed-fill-*'])
      if (r.exitCode !== 0) throw new Error(`${host(ref).name}: cannot free the disk: ${r.stderr}`)
    },
    stopService: async (ref) => void (await call('service', ref, {action: 'stop'})),
    startService: async (ref) => void (await call('service', ref, {action: 'start'})),
    restartService: async (ref) => void (await call('service', ref, {action: 'restart'})),
    logs: (ref) => {
      const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '')
      return {sshd: read(path.join(host(ref).run, 'sshd.log')), service: read(path.join(host(ref).run, 'service.log'))}
    },
    stop: async () => {
      if (stopped) return
      stopped = true
      if (child.exitCode === null && child.signalCode === null) {
        await rpc.request({cmd: 'stop'}).catch(() => child.kill('SIGTERM'))
        await rpc.busy(exited)
      }
      live.delete(child)
    },
  }
  return bed
}

/** JSON lines to and from the daemon; keeps this process alive only while a request is pending. */
class Rpc {
  private pending = new Map<number, {resolve: (v: any) => void; reject: (e: Error) => void}>()
  private next = 1
  private waiting = 0
  private firstAnswer: Promise<unknown>
  private settleFirst!: {resolve: (v: any) => void; reject: (e: Error) => void}
  private streams: {ref(): void; unref(): void}[]

  constructor(
    private child: ChildProcess,
    stderr: () => string,
  ) {
    this.firstAnswer = new Promise((resolve, reject) => (this.settleFirst = {resolve, reject}))
    this.streams = [child.stdout as any, child.stderr as any, child.stdin as any, child as any]
    readline.createInterface({input: child.stdout!}).on('line', (line) => {
      const msg = JSON.parse(line)
      if ('ready' in msg) this.settleFirst.resolve(msg.ready)
      else if (msg.id === undefined)
        this.settleFirst.reject(new Error(`the fleet test bed did not start: ${msg.error}`))
      else {
        const p = this.pending.get(msg.id)
        this.pending.delete(msg.id)
        if (msg.error) p?.reject(new Error(msg.error))
        else p?.resolve(msg)
        this.refresh()
      }
    })
    child.once('exit', (code, sig) => {
      const err = new Error(`the fleet test bed's daemon exited (${code ?? sig}): ${stderr().trim()}`)
      this.settleFirst.reject(err)
      for (const p of this.pending.values()) p.reject(err)
      this.pending.clear()
    })
  }

  async first(): Promise<unknown> {
    try {
      return await this.firstAnswer
    } finally {
      this.refresh()
    }
  }

  request(req: Record<string, unknown>): Promise<any> {
    const id = this.next++
    const answer = new Promise((resolve, reject) => this.pending.set(id, {resolve, reject}))
    this.refresh()
    this.child.stdin!.write(`${JSON.stringify({...req, id})}\n`)
    return answer
  }

  /** Keeps this process alive until `p` settles (like a pending request). */
  async busy<T>(p: Promise<T>): Promise<T> {
    this.waiting++
    this.refresh()
    try {
      return await p
    } finally {
      this.waiting--
      this.refresh()
    }
  }

  /** A running bed must not keep the test process alive by itself (the daemon waits for our exit). */
  private refresh(): void {
    const busy = this.pending.size > 0 || this.waiting > 0
    for (const s of this.streams) (busy ? s.ref : s.unref)?.call(s)
  }
}
