#!/usr/bin/env node
// Supervisor of one fleet test bed; test/fleet/harness.ts starts it (the API is documented there).
//
// It owns every process of the bed: per host a mount-namespace holder, an sshd and (optionally) the
// demo service, all started inside the host's namespace. It runs the TCP proxy in front of each sshd
// (cut/restore). When its stdin closes (the test process ended, however it ended), on SIGTERM/SIGINT
// or on a `stop` request, it kills every process inside the bed's namespaces and removes the bed's
// directory. A test process killed with -9 therefore leaves nothing behind; a daemon killed with -9
// is swept by the next bed that starts (sweepStaleBeds).
//
// Protocol on stdin/stdout, one JSON object per line: first the spec, answered by {ready: info} or
// {error}; then requests {id, cmd, host, ...} answered by {id, ok: true, ...} or {id, error}.
import {execFile, spawn} from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'

const run = promisify(execFile)
const HERE = path.dirname(fileURLToPath(import.meta.url))
const DEMO_SERVICE = path.resolve(HERE, '../../templates/python/demo_service.py')
const SSHD = '/usr/sbin/sshd'
/** Each host's private control directory is bound over this path inside its namespace. */
const HOST_RUN = '/run/hotctl-bed'
const BED_PREFIX = 'hotctl-bed-'

const bed = {dir: '', hosts: [], port: 0, innerPort: 0, servicePort: 0, stopping: undefined}

const send = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`)
process.stdout.on('error', () => {}) // the test process is gone: cleanup follows from stdin's end

// ---------------------------------------------------------------------------------------------
// Processes

const sleepSync = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function alive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

function signal(pid, sig) {
  try {
    process.kill(pid, sig)
  } catch {
    /* already gone */
  }
}

/** pid -> parent pid, for every process. */
function parents() {
  const map = new Map()
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8')
      map.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]))
    } catch {
      /* exited meanwhile */
    }
  }
  return map
}

function descendants(pid) {
  const kids = new Map()
  for (const [p, pp] of parents()) kids.set(pp, [...(kids.get(pp) ?? []), p])
  const out = []
  const todo = [pid]
  while (todo.length) {
    for (const k of kids.get(todo.pop()) ?? []) {
      out.push(k)
      todo.push(k)
    }
  }
  return out
}

/** Sends SIGSTOP to pid and all its descendants until no new one appears; returns them all. */
function stopTree(pid) {
  const stopped = new Set()
  for (let round = 0; round < 20; round++) {
    const fresh = [pid, ...descendants(pid)].filter((p) => !stopped.has(p))
    if (fresh.length === 0) break
    for (const p of fresh) {
      signal(p, 'SIGSTOP')
      stopped.add(p)
    }
  }
  return [...stopped]
}

/** The bed a process belongs to: the host.json its namespace shows at HOST_RUN (cached per namespace). */
function bedOf(pid, cache) {
  let ns
  try {
    ns = fs.readlinkSync(`/proc/${pid}/ns/mnt`)
  } catch {
    return undefined // exited, or a zombie
  }
  if (!cache.has(ns)) {
    let owner
    try {
      owner = JSON.parse(fs.readFileSync(`/proc/${pid}/root${HOST_RUN}/host.json`, 'utf8')).bed
    } catch {
      owner = undefined
    }
    cache.set(ns, owner)
  }
  return cache.get(ns)
}

/** Every process living in one of the bed's host namespaces. */
function bedProcesses(dir) {
  const cache = new Map()
  return [...parents().keys()].filter((pid) => pid !== process.pid && bedOf(pid, cache) === dir)
}

/** SIGKILLs every process in the bed's namespaces (the namespaces and their mounts go with them). */
function killBed(dir) {
  for (let round = 0; round < 100; round++) {
    const pids = bedProcesses(dir)
    if (pids.length === 0) return true
    for (const p of pids) signal(p, 'SIGKILL')
    sleepSync(round < 10 ? 10 : 50)
  }
  return false
}

/** Beds whose daemon died without cleaning up (kill -9): their processes and directories. */
function sweepStaleBeds() {
  for (const name of fs.readdirSync(os.tmpdir())) {
    if (!name.startsWith(BED_PREFIX)) continue
    const dir = path.join(os.tmpdir(), name)
    let info
    try {
      info = JSON.parse(fs.readFileSync(path.join(dir, 'bed.json'), 'utf8'))
    } catch {
      continue // being created right now, or not ours
    }
    if (alive(info.daemon) && cmdline(info.daemon).includes('bed-daemon')) continue
    killBed(dir)
    fs.rmSync(dir, {recursive: true, force: true})
  }
}

function cmdline(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')
  } catch {
    return ''
  }
}

/** Spawns a command and resolves once `ready` matches its output (stdout+stderr), or rejects. */
function startAndWait(cmd, args, {ready, what, log, timeoutMs = 15_000}) {
  const child = spawn(cmd, args, {stdio: ['ignore', 'pipe', 'pipe']})
  const logFd = log ? fs.openSync(log, 'a') : undefined
  let seen = ''
  let settled = false
  return new Promise((resolve, reject) => {
    const settle = (err) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (!err) return resolve(child)
      signal(child.pid, 'SIGKILL')
      reject(new Error(`${err}${seen.trim() ? `:\n${seen.trim()}` : ''}`))
    }
    const timer = setTimeout(() => settle(`${what} was not ready within ${timeoutMs} ms`), timeoutMs)
    const onData = (d) => {
      if (logFd !== undefined) fs.writeSync(logFd, d)
      if (settled) return
      seen += String(d)
      if (ready.test(seen)) settle()
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.once('error', (err) => settle(`cannot start ${what}: ${err.message}`))
    child.once('exit', (code, sig) => settle(`${what} exited (${code ?? sig}) before it was ready`))
    child.once('close', () => logFd !== undefined && fs.closeSync(logFd))
  })
}

// ---------------------------------------------------------------------------------------------
// Ports and the proxy

function listen(server, host, port) {
  return new Promise((resolve, reject) => {
    const onError = (err) => reject(err)
    server.once('error', onError)
    server.listen({host, port, exclusive: true}, () => {
      server.off('error', onError)
      resolve(server.address().port)
    })
  })
}

const closeServer = (s) => new Promise((r) => s.close(() => r()))

/**
 * A port free on every address (the OS picks it on the first). With `handler`, the listening
 * servers are kept (no race); without, they are closed and the port is handed to a child.
 */
async function commonPort(addresses, handler) {
  for (let attempt = 0; ; attempt++) {
    const servers = []
    try {
      let port = 0
      for (const address of addresses) {
        const server = net.createServer({allowHalfOpen: true, pauseOnConnect: false}, handler?.(servers.length))
        servers.push(server)
        port = await listen(server, address, port)
      }
      if (handler) return {port, servers}
      await Promise.all(servers.map(closeServer))
      return {port}
    } catch (err) {
      await Promise.all(servers.filter((s) => s.listening).map(closeServer))
      if (err.code !== 'EADDRINUSE' || attempt > 50) throw err
    }
  }
}

/** Connection handler of host i's proxy: forwards to its sshd unless the host is cut. */
function proxyHandler(i) {
  return (client) => {
    const host = bed.hosts[i]
    client.on('error', () => {})
    if (host.cut) {
      // blackhole: accepted, never answered ('reset' closes the listener, so it never gets here)
      host.held.add(client)
      client.pause()
      client.once('close', () => host.held.delete(client))
      return
    }
    forward(host, client)
  }
}

function forward(host, client) {
  const upstream = net.connect({host: host.address, port: bed.innerPort, allowHalfOpen: true})
  const pair = {client, upstream}
  host.pairs.add(pair)
  upstream.on('error', () => client.resetAndDestroy()) // sshd gone: the client sees a reset
  const done = () => {
    host.pairs.delete(pair)
    client.destroy()
    upstream.destroy()
  }
  client.once('close', done)
  upstream.once('close', done)
  client.pipe(upstream)
  upstream.pipe(client)
}

function hold(pair) {
  pair.client.unpipe(pair.upstream)
  pair.upstream.unpipe(pair.client)
  pair.client.pause()
  pair.upstream.pause()
}

function release(pair) {
  pair.client.pipe(pair.upstream)
  pair.upstream.pipe(pair.client)
}

// ---------------------------------------------------------------------------------------------
// Hosts

function sshdConfig(host) {
  return [
    `# ${host.name} of the hotctl fleet test bed ${bed.dir}`,
    `ListenAddress ${host.address}:${bed.innerPort}`,
    `HostKey ${HOST_RUN}/ssh_host_ed25519_key`,
    'PidFile none',
    `AuthorizedKeysFile ${HOST_RUN}/authorized_keys`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    // The host's files live under the controller's world-writable temp dir, which StrictModes refuses.
    'StrictModes no',
    'UseDNS no',
    'PrintMotd no',
    'PrintLastLog no',
    'X11Forwarding no',
    // Fleet runs open many sessions at once (ControlMaster, parallel hosts).
    'MaxStartups 200',
    'MaxSessions 100',
    'LogLevel VERBOSE',
    'Subsystem sftp internal-sftp',
    '',
  ].join('\n')
}

// The demo service of one host; runs inside the host (over ssh, or from the daemon through nsenter).
const SERVICE_SCRIPT = `#!/bin/sh
# The demo service of this test-bed host: service start|stop|restart|status.
set -u
here=${HOST_RUN}
. "$here/service.env"
pidfile=$here/service.pid
log=$here/service.log
running() { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
start() {
  running && return 0
  touch "$log"
  before=$(wc -l <"$log")
  unset HOTRELOAD_TOKEN
  (cd "$APP" && HOTRELOAD_TOKEN_FILE="$here/token" PYTHONDONTWRITEBYTECODE=1 \\
    exec setsid "$PYTHON" -B "$DEMO" --root "$APP" --host "$ADDRESS" --port "$PORT") >>"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  n=0
  until tail -n +$((before + 1)) "$log" | grep -q '^READY '; do
    if ! running; then echo "the service exited:" >&2; tail -n +$((before + 1)) "$log" >&2; rm -f "$pidfile"; return 1; fi
    n=$((n + 1))
    if [ $n -gt 400 ]; then echo "the service printed no READY within 20s" >&2; return 1; fi
    sleep 0.05
  done
}
stop() {
  running || { rm -f "$pidfile"; return 0; }
  pid=$(cat "$pidfile")
  kill -TERM "$pid"
  n=0
  while kill -0 "$pid" 2>/dev/null; do
    n=$((n + 1))
    [ $n -eq 100 ] && kill -KILL "$pid"
    sleep 0.05
  done
  rm -f "$pidfile"
}
case "\${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop && start ;;
  status) if running; then echo "running $(cat "$pidfile")"; else echo stopped; exit 3; fi ;;
  *) echo "usage: $0 start|stop|restart|status" >&2; exit 2 ;;
esac
`

/** Creates the host's namespace: a holder process with HOST_RUN and /srv (tmpfs or a bind) mounted. */
async function startHolder(host) {
  const srv = host.diskSize ? 'mount -t tmpfs -o "size=$4,mode=755" bed-srv /srv' : 'mount --bind "$2" /srv'
  // Order matters: the sources live under the controller's /tmp, which the last mount hides.
  // The hosts share this machine's /root: a ~/.bashrc there (which bash runs for every ssh session)
  // is hidden, as on a bare host. One that runs `pyenv init` made every session of every host wait
  // on pyenv's one rehash lock: seconds per command under load, and 60 s after a killed session.
  const bashrc = 'if [ -f /root/.bashrc ]; then mount --bind /dev/null /root/.bashrc; fi'
  const mounts = `mount --bind "$1" ${HOST_RUN}; ${srv}; mkdir -p /srv/app; mount --bind "$3" /tmp; ${bashrc}`
  const script = `set -e; ${mounts}; echo ready; exec setpriv --pdeathsig KILL sleep infinity`
  const params = [host.run, host.srvDir, host.tmpDir, host.diskSize ?? '']
  const args = ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'holder', ...params]
  host.holder = await startAndWait('unshare', args, {ready: /^ready$/m, what: `${host.name}'s namespace`}).catch(
    (err) => {
      const hint = /not permitted/i.test(err.message)
        ? ' (the bed needs root with CAP_SYS_ADMIN: unshare --mount, mount)'
        : ''
      throw new Error(`${err.message}${hint}`)
    },
  )
  host.ns = fs.readlinkSync(`/proc/${host.holder.pid}/ns/mnt`)
  host.root = host.diskSize ? `/proc/${host.holder.pid}/root/srv` : host.srvDir
}

/** Runs argv inside the host's namespace. */
function inHost(host, argv) {
  return run('nsenter', ['-t', String(host.holder.pid), '-m', '--', ...argv], {timeout: 60_000})
}

async function startSshd(host) {
  if (host.sshd && host.sshd.exitCode === null && host.sshd.signalCode === null) return // running
  const argv = ['-t', String(host.holder.pid), '-m', '--', 'setpriv', '--pdeathsig', 'KILL', SSHD]
  argv.push('-D', '-e', '-f', `${HOST_RUN}/sshd_config`)
  const log = `${host.run}/sshd.log`
  host.sshd = await startAndWait('nsenter', argv, {ready: /Server listening on/, what: `${host.name}'s sshd`, log})
  host.frozen = []
  await syncListener(host)
}

/** SIGKILL the listener, and with `sessions` every sshd child and what it runs; resolves once it is reaped. */
async function killSshd(host, sessions) {
  const sshd = host.sshd
  if (!sshd) return
  host.sshd = null
  host.frozen = []
  const exited = new Promise((r) => (sshd.exitCode !== null || sshd.signalCode !== null ? r() : sshd.once('exit', r)))
  for (const p of sessions ? stopTree(sshd.pid) : [sshd.pid]) signal(p, 'SIGKILL')
  await exited
  await syncListener(host)
}

/**
 * The proxy listens as the host would: not while its sshd is down or the host is cut (connections are
 * refused), always while it is blackholed (connections hang).
 */
async function syncListener(host) {
  if (!host.server) return
  const want = host.cut === 'blackhole' || (host.cut === null && host.sshd !== null)
  if (!want && host.server.listening) host.server.close() // its callback would wait for the live connections
  if (!want || host.server.listening) return
  // A listener closed a moment ago may still hold the port; the port is ours, so wait for it.
  for (let attempt = 0; ; attempt++) {
    host.server = net.createServer({allowHalfOpen: true}, proxyHandler(host.index))
    try {
      return void (await listen(host.server, host.address, bed.port))
    } catch (err) {
      if (err.code !== 'EADDRINUSE' || attempt >= 40) throw err
      await sleep(50)
    }
  }
}

async function cut(host, mode) {
  if (mode !== 'reset' && mode !== 'blackhole') throw new Error(`cut mode must be reset or blackhole, not ${mode}`)
  if (!host.server) throw new Error(`${host.name} has no proxy (started with proxy: false)`)
  host.cut = mode
  await syncListener(host)
  if (mode === 'blackhole') {
    for (const pair of host.pairs) hold(pair)
    return
  }
  for (const pair of host.pairs) {
    pair.client.resetAndDestroy()
    pair.upstream.destroy()
  }
  for (const client of host.held) client.resetAndDestroy()
}

async function restore(host) {
  if (!host.server) throw new Error(`${host.name} has no proxy (started with proxy: false)`)
  host.cut = null
  await syncListener(host)
  for (const pair of host.pairs) release(pair)
  for (const client of host.held) {
    host.held.delete(client)
    client.resume()
    forward(host, client)
  }
}

// ---------------------------------------------------------------------------------------------
// Setup and teardown

function randomOctet(lo, hi) {
  return lo + crypto.randomInt(hi - lo + 1)
}

async function keygen(file, comment) {
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file])
  return fs.readFileSync(`${file}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ')
}

async function setup(spec) {
  const count = spec.count
  if (!Number.isInteger(count) || count < 1 || count > 200) throw new Error(`count must be 1..200, not ${count}`)
  if (!fs.existsSync(SSHD)) throw new Error(`${SSHD} is missing: install openssh-server`)
  for (const size of spec.diskSize ?? []) {
    if (size !== null && !/^\d+[kmg]?$/i.test(size)) throw new Error(`diskSize must look like 8m or 512k, not ${size}`)
  }
  sweepStaleBeds()
  fs.mkdirSync('/run/sshd', {recursive: true, mode: 0o755}) // sshd's privilege separation directory
  fs.mkdirSync(HOST_RUN, {recursive: true, mode: 0o755})
  bed.dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), BED_PREFIX)))
  fs.writeFileSync(path.join(bed.dir, 'bed.json'), JSON.stringify({daemon: process.pid, owner: process.ppid}))

  const [a, b] = [randomOctet(64, 254), randomOctet(0, 255)]
  bed.hosts = Array.from({length: count}, (_, i) => {
    const name = `h${i + 1}`
    const dir = path.join(bed.dir, name)
    return {
      index: i,
      name,
      address: `127.${a}.${b}.${11 + i}`,
      run: path.join(dir, 'run'),
      srvDir: path.join(dir, 'srv'),
      tmpDir: path.join(dir, 'tmp'),
      diskSize: spec.diskSize?.[i] ?? null,
      holder: null,
      sshd: null,
      server: null,
      pairs: new Set(),
      held: new Set(),
      cut: null,
      frozen: [],
    }
  })
  const addresses = bed.hosts.map((h) => h.address)
  const token = crypto.randomBytes(32).toString('hex')
  const tokenFile = path.join(bed.dir, 'token')
  fs.writeFileSync(tokenFile, `${token}\n`, {mode: 0o600})
  for (const h of bed.hosts) {
    fs.mkdirSync(h.run, {recursive: true})
    fs.mkdirSync(h.srvDir, {recursive: true})
    fs.mkdirSync(h.tmpDir, {recursive: true})
    fs.chmodSync(h.tmpDir, 0o1777)
    fs.writeFileSync(path.join(h.run, 'host.json'), JSON.stringify({bed: bed.dir, name: h.name, address: h.address}))
  }

  const [clientKey, ...hostKeys] = await Promise.all([
    keygen(path.join(bed.dir, 'id_ed25519'), 'hotctl-bed-client'),
    ...bed.hosts.map((h) => keygen(path.join(h.run, 'ssh_host_ed25519_key'), `hotctl-bed-${h.name}`)),
  ])
  for (const h of bed.hosts) fs.writeFileSync(path.join(h.run, 'authorized_keys'), `${clientKey}\n`)

  if (spec.proxy) {
    const proxies = await commonPort(addresses, (i) => proxyHandler(i))
    bed.port = proxies.port
    proxies.servers.forEach((s, i) => (bed.hosts[i].server = s))
    bed.innerPort = (await commonPort(addresses)).port
  } else {
    bed.port = bed.innerPort = (await commonPort(addresses)).port
  }
  if (spec.service) bed.servicePort = (await commonPort(addresses)).port

  fs.writeFileSync(
    path.join(bed.dir, 'known_hosts'),
    bed.hosts.map((h, i) => `[${h.address}]:${bed.port} ${hostKeys[i]}\n`).join(''),
  )
  fs.writeFileSync(path.join(bed.dir, 'ssh_config'), sshConfig())

  const python = spec.service ? await resolvePython() : ''
  await Promise.all(
    bed.hosts.map(async (h) => {
      fs.writeFileSync(path.join(h.run, 'sshd_config'), sshdConfig(h))
      await startHolder(h)
      if (spec.seed) copyTree(spec.seed, path.join(h.root, 'app'))
      await startSshd(h)
      if (!spec.service) return
      fs.copyFileSync(tokenFile, path.join(h.run, 'token'))
      fs.chmodSync(path.join(h.run, 'token'), 0o600)
      // The host's own copy: the checkout may live under the controller's /tmp, which each host
      // replaces with a private one (a CI workspace in /tmp made the service unreachable there).
      fs.cpSync(path.dirname(DEMO_SERVICE), path.join(h.run, 'python'), {recursive: true})
      const demo = `${HOST_RUN}/python/${path.basename(DEMO_SERVICE)}`
      const env = {PYTHON: python, DEMO: demo, APP: '/srv/app', ADDRESS: h.address, PORT: bed.servicePort}
      fs.writeFileSync(
        path.join(h.run, 'service.env'),
        Object.entries(env)
          .map(([k, v]) => `${k}=${shQuote(v)}\n`)
          .join(''),
      )
      fs.writeFileSync(path.join(h.run, 'service'), SERVICE_SCRIPT, {mode: 0o755})
      await service(h, 'start')
    }),
  )
  return {
    dir: bed.dir,
    port: bed.port,
    servicePort: spec.service ? bed.servicePort : null,
    token: spec.service ? token : null,
    hosts: bed.hosts.map((h) => ({
      name: h.name,
      address: h.address,
      holder: h.holder.pid,
      root: h.root,
      run: h.run,
      diskSize: h.diskSize,
    })),
  }
}

function sshConfig() {
  const lines = [`# hotctl fleet test bed ${bed.dir}: ssh -F <this file> h1`]
  for (const h of bed.hosts) lines.push(`Host ${h.name} ${h.address}`, `  HostName ${h.address}`, `  Port ${bed.port}`)
  lines.push(
    'Host *',
    '  User root',
    `  IdentityFile ${bed.dir}/id_ed25519`,
    '  IdentitiesOnly yes',
    `  UserKnownHostsFile ${bed.dir}/known_hosts`,
    '  GlobalKnownHostsFile /dev/null',
    '  StrictHostKeyChecking yes',
    '  UpdateHostKeys no',
    '  BatchMode yes',
    '',
  )
  return lines.join('\n')
}

async function resolvePython() {
  const {stdout} = await run('python3', ['-c', 'import sys; print(sys.executable)'])
  return stdout.trim()
}

/** A POSIX shell single-quoted word (service.env is sourced by the service script). */
function shQuote(value) {
  return `'${String(value).replaceAll("'", `'\\''`)}'`
}

function copyTree(from, to) {
  fs.cpSync(from, to, {recursive: true, filter: (src) => !/(__pycache__|\.pyc)$/.test(src)})
}

async function service(host, action) {
  try {
    const {stdout} = await inHost(host, [`${HOST_RUN}/service`, action])
    return stdout.trim()
  } catch (err) {
    throw new Error(`${host.name}: service ${action} failed: ${String(err.stderr || err.message).trim()}`)
  }
}

/** Kills everything of the bed, waits until our own children are reaped, removes the directory. */
function teardown() {
  bed.stopping ??= (async () => {
    for (const h of bed.hosts) {
      for (const pair of h.pairs) {
        pair.client.destroy()
        pair.upstream.destroy()
      }
      for (const client of h.held) client.destroy()
      h.server?.close()
    }
    if (!bed.dir) return
    killBed(bed.dir)
    const children = bed.hosts
      .flatMap((h) => [h.holder, h.sshd])
      .filter((c) => c && c.exitCode === null && c.signalCode === null)
    for (const c of children) signal(c.pid, 'SIGKILL')
    // Reaped before we go, so that no <defunct> sshd outlives bed.stop().
    await Promise.race([Promise.all(children.map((c) => new Promise((r) => c.once('exit', r)))), sleep(3000)])
    fs.rmSync(bed.dir, {recursive: true, force: true})
  })()
  return bed.stopping
}

// ---------------------------------------------------------------------------------------------
// Requests

async function handle(req) {
  const host = bed.hosts[req.host]
  if (req.cmd !== 'stop' && !host) throw new Error(`no host ${req.host}`)
  switch (req.cmd) {
    case 'killSshd':
      return void (await killSshd(host, req.sessions !== false))
    case 'startSshd':
      return startSshd(host)
    case 'freeze':
      if (!host.sshd) throw new Error(`${host.name}'s sshd is not running (killSshd): nothing to freeze`)
      host.frozen = [...new Set([...host.frozen, ...stopTree(host.sshd.pid)])]
      return {pids: host.frozen}
    case 'thaw': {
      const pids = [...host.frozen, ...(host.sshd ? [host.sshd.pid, ...descendants(host.sshd.pid)] : [])]
      for (const p of pids) signal(p, 'SIGCONT')
      host.frozen = []
      return
    }
    case 'cut':
      return cut(host, req.mode ?? 'reset')
    case 'restore':
      return restore(host)
    case 'service':
      return {output: await service(host, req.action)}
    case 'stop':
      return teardown()
    default:
      throw new Error(`unknown request ${req.cmd}`)
  }
}

function exitAfterTeardown() {
  teardown().finally(() => process.exit(0))
}

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, exitAfterTeardown)

const lines = readline.createInterface({input: process.stdin})
let started = false
lines.on('line', (line) => {
  if (!started) {
    started = true
    setup(JSON.parse(line)).then(
      (ready) => send({ready}),
      (err) => {
        send({error: err.message})
        exitAfterTeardown()
      },
    )
    return
  }
  const req = JSON.parse(line)
  Promise.resolve()
    .then(() => handle(req))
    .then(
      (res) => {
        send({id: req.id, ok: true, ...res})
        if (req.cmd === 'stop') setTimeout(() => process.exit(0), 0)
      },
      (err) => send({id: req.id, error: err.message}),
    )
})
lines.on('close', () => {
  // The test process is gone (or closed our stdin): wait for setup to settle, then clean up.
  sleep(0).then(exitAfterTeardown)
})
