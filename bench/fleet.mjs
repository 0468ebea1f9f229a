#!/usr/bin/env node
// Fleet benchmark (issue 7, "Performance"): the same tree and the same change deployed by the built
// hotctl to N test-bed hosts (default 20) and to 1 host, measured in one run and reported as a ratio
// of wall time (goal ≤ 3×), with the controller's peak RSS. The hosts are real sshd processes on
// this machine (test/fleet/harness.ts; needs root), so their side of the work shares the
// controller's CPUs: the CPU columns say how much of the time is whose.
// Usage: node bench/fleet.mjs [--hosts N] [--files N] [--changed N] [--reps N] [--parallel N] [--kex ALG] [--json] [--keep] [--log DIR]
// The harness is TypeScript: under plain node this script re-runs itself under vite-node.
import {spawn} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const BIN = path.join(ROOT, 'bin', 'run.js')
/** The node flags bin/run.js's shebang names (`#!/usr/bin/env -S node --flag…`). */
const SHEBANG_FLAGS = fs
  .readFileSync(BIN, 'utf8')
  .split('\n', 1)[0]
  .split(/\s+/)
  .filter((a) => a.startsWith('--'))
const HARNESS = path.join(ROOT, 'test', 'fleet', 'harness.ts')
const TIME_BIN = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined
/** --log DIR and --cpu-prof DIR (set in main). */
let LOG_DIR, PROF_DIR
const log = (msg) => process.stderr.write(`bench fleet: ${msg}\n`)

function fail(msg) {
  console.error(`bench fleet: ${msg}`)
  process.exit(2)
}

function parseArgs(argv) {
  const o = {
    hosts: 20,
    files: 2000,
    changed: 10,
    reps: 3,
    avgSize: 4096,
    parallel: undefined,
    json: false,
    keep: false,
    log: undefined,
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const int = () => {
      const n = Number(argv[++i])
      if (!Number.isInteger(n) || n < 1) fail(`${a} needs a positive integer`)
      return n
    }
    if (a === '--json') o.json = true
    else if (a === '--keep') o.keep = true
    else if (a === '--hosts') o.hosts = int()
    else if (a === '--files') o.files = int()
    else if (a === '--changed') o.changed = int()
    else if (a === '--reps') o.reps = int()
    else if (a === '--parallel') o.parallel = int()
    else if (a === '--kex') o.kex = argv[++i] ?? fail('--kex needs an algorithm (ssh -Q kex)')
    else if (a === '--cpu-prof') {
      o.cpuProf = path.resolve(argv[++i] ?? fail('--cpu-prof needs a directory'))
      fs.mkdirSync(o.cpuProf, {recursive: true})
    } else if (a === '--log') {
      o.log = path.resolve(argv[++i] ?? fail('--log needs a directory'))
      fs.mkdirSync(o.log, {recursive: true})
    } else if (a === '--help' || a === '-h') {
      console.log(
        [
          'node bench/fleet.mjs [--hosts N] [--files N] [--changed N] [--reps N] [--parallel N] [--kex ALG] [--json] [--keep]',
          '  --hosts     hosts in the fleet row (default 20); one more host takes the 1-host deploys',
          '  --files     files in the tree (default 2000, mean 4 KiB: a run of a few minutes)',
          '  --changed   files changed per deploy (default 10)',
          '  --reps      measured deploys of each kind (default 3)',
          "  --parallel  the config's `parallel` (default: hotctl's default, 10)",
          "  --kex ALG   ssh's KexAlgorithms for hotctl's connections (ssh.options), to measure what the key exchange costs per host (default: ssh's own)",
          '  --json      print a JSON summary on stdout (the table goes to stderr)',
          '  --keep      leave the controller workspace (the hosts always go)',
          "  --log DIR   keep each deploy's --events NDJSON and HOTCTL_DEBUG_SSH lines (stderr) in DIR, for profiling",
          '  --cpu-prof DIR  run each hotctl under node --cpu-prof, its profile in DIR',
        ].join('\n'),
      )
      process.exit(0)
    } else fail(`unknown option ${a} (see --help)`)
  }
  if (o.files < o.changed * 2) fail(`--files must be at least ${o.changed * 2}`)
  return o
}

// ---------------------------------------------------------------- processes
// This node's directory first on PATH: the node bin/run.js's shebang finds is the one running this.
const childEnv = {
  ...process.env,
  PATH: [path.dirname(process.execPath), process.env.PATH].filter(Boolean).join(path.delimiter),
  NO_COLOR: '1',
  CI: '1',
}
for (const k of ['HOTCTL_CONFIG', 'HOTCTL_RSYNC', 'FORCE_COLOR']) delete childEnv[k]
const children = new Set()

/** Runs a command in its own process group; resolves {ms, stdout, stderr, status, pid}. */
function run(cmd, args, {cwd = ROOT, onSpawn, env = childEnv} = {}) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    const child = spawn(cmd, args, {cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true})
    children.add(child)
    onSpawn?.(child.pid)
    const out = []
    const err = []
    child.stdout.on('data', (b) => out.push(b))
    child.stderr.on('data', (b) => err.push(b))
    child.on('error', (e) => {
      children.delete(child)
      reject(new Error(`${cmd}: ${e.message}`))
    })
    child.on('close', (status, signal) => {
      children.delete(child)
      resolve({
        ms: Number(process.hrtime.bigint() - t0) / 1e6,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        status: status ?? signal,
      })
    })
  })
}

const PAGE = 4096
const HZ = 100 // USER_HZ: /proc's clock ticks

/** Every process now: parent, RSS (KiB), CPU (ms, its own and its reaped children's), command line. */
function processes() {
  const all = new Map()
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      all.set(Number(name), {
        ppid: Number(f[1]),
        rssKb: (Number(f[21]) * PAGE) / 1024,
        cpuMs: ((Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 1000) / HZ,
        ownCpuMs: ((Number(f[11]) + Number(f[12])) * 1000) / HZ,
      })
    } catch {
      // gone meanwhile
    }
  }
  return all
}

/** `root` and its descendants, in a processes() snapshot. */
function treeOf(all, root) {
  const inTree = []
  for (const [pid, p] of all) {
    for (let q = pid; q > 1; q = all.get(q)?.ppid ?? 0) {
      if (q === root) {
        inTree.push(p)
        break
      }
    }
  }
  return inTree
}

/** RSS (KiB) of `root` and all its descendants now, and the CPU node itself (hotctl) has used so far. */
function treeRssKb(root) {
  const all = processes()
  const tree = treeOf(all, root)
  const node =
    all.get(root)?.ppid === process.pid && TIME_BIN ? [...all.values()].find((p) => p.ppid === root) : all.get(root)
  return {kb: tree.reduce((a, p) => a + p.rssKb, 0), procs: tree.length, nodeCpuMs: node?.ownCpuMs}
}

/**
 * CPU time (ms) the hosts' side has used so far: the bed's supervisor and its descendants (every
 * sshd, its sessions and what they ran: sh, rsync, cp, sha256sum…), reaped children included.
 */
function hostsCpuMs() {
  const all = processes()
  const daemons = [...all].filter(([pid, p]) => {
    if (p.ppid !== process.pid) return false
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('bed-daemon')
    } catch {
      return false
    }
  })
  return daemons.reduce((a, [pid]) => a + treeOf(all, pid).reduce((b, p) => b + p.cpuMs, 0), 0)
}

/**
 * hotctl under /usr/bin/time (node's own peak RSS, %M, and user+sys CPU of it and its children:
 * ssh, rsync), with the whole controller process tree's RSS sampled every 100 ms. Throws unless
 * the JSON says the deploy went through on every host.
 */
async function hotctl(args, cwd, logAs) {
  const log = logAs && LOG_DIR ? path.join(LOG_DIR, `${logAs}.ndjson`) : undefined
  if (log) args = [...args, '--events']
  const hosts0 = hostsCpuMs()
  const timeOut = path.join(os.tmpdir(), `hotctl-bench-fleet-time-${process.pid}`)
  let peak = {kb: 0, procs: 0}
  let nodeCpuMs
  let sampler
  // hotctl as installed: bin/run.js started by its shebang; profiled, node with the shebang's flags
  // and --cpu-prof (not allowed in NODE_OPTIONS).
  const node = PROF_DIR ? [process.execPath, ...SHEBANG_FLAGS, '--cpu-prof', `--cpu-prof-dir=${PROF_DIR}`, BIN] : [BIN]
  const cmd = TIME_BIN ? [TIME_BIN, '-f', '%U %S %M', '-o', timeOut, ...node] : node
  const r = await run(cmd[0], [...cmd.slice(1), ...args], {
    cwd,
    env: log ? {...childEnv, HOTCTL_DEBUG_SSH: '1'} : childEnv,
    onSpawn: (pid) => {
      sampler = setInterval(() => {
        const now = treeRssKb(pid)
        if (now.kb > peak.kb) peak = now
        nodeCpuMs = now.nodeCpuMs ?? nodeCpuMs // its last sample: within 100 ms of its end
      }, 100)
    },
  })
  clearInterval(sampler)
  const hostsCpu = hostsCpuMs() - hosts0
  if (log) fs.writeFileSync(log, r.stderr)
  let time
  if (TIME_BIN) {
    const m = /([\d.]+) ([\d.]+) (\d+)\s*$/.exec(fs.readFileSync(timeOut, 'utf8'))
    fs.rmSync(timeOut, {force: true})
    if (m) time = {cpuMs: (Number(m[1]) + Number(m[2])) * 1000, rssKb: Number(m[3])}
  }
  let json
  try {
    json = JSON.parse(r.stdout.trim().split('\n').at(-1))
  } catch {
    json = undefined
  }
  if (r.status !== 0 || json?.ok !== true)
    throw new Error(
      `hotctl ${args.join(' ')} failed (exit ${r.status})\nstdout: ${r.stdout.trim().slice(-3000)}\nstderr: ${r.stderr.trim().split('\n').slice(-30).join('\n')}`,
    )
  return {ms: r.ms, json, ...time, nodeCpuMs, hostsCpuMs: hostsCpu, treeKb: peak.kb, treeProcs: peak.procs}
}

// ---------------------------------------------------------------- the tree
function prng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `files` files, 100 per directory in two levels, sizes 64 B – 2× the mean; returns their relative paths. */
function generateTree(root, o) {
  const rand = prng(0xf1ee7)
  const pool = Buffer.alloc(1 << 20)
  for (let i = 0; i < pool.length; i += 4) pool.writeUInt32LE((rand() * 2 ** 32) >>> 0, i)
  const files = []
  for (let i = 0; i < o.files; i++) {
    const rel = `area${String(Math.floor(i / 1000)).padStart(2, '0')}/mod${String(Math.floor(i / 100) % 10)}/f${String(i % 100).padStart(2, '0')}.py`
    fs.mkdirSync(path.join(root, path.dirname(rel)), {recursive: true})
    const size = Math.max(64, Math.round(o.avgSize * 2 * rand()))
    const off = Math.floor(rand() * (pool.length - size))
    fs.writeFileSync(
      path.join(root, rel),
      Buffer.concat([Buffer.from(`# ${rel} v0\n`), pool.subarray(off, off + size)]),
    )
    files.push(rel)
  }
  return {files, pool, rand}
}

/** New content in the picked files (explicit mtimes a few seconds apart, so rsync's quick check always sees them). */
function mutate(src, picked, gen, rep, baseSec) {
  for (const rel of picked) {
    const off = Math.floor(gen.rand() * (gen.pool.length - 4096))
    fs.writeFileSync(
      path.join(src, rel),
      Buffer.concat([Buffer.from(`# ${rel} rep${rep}\n`), gen.pool.subarray(off, off + 4096)]),
    )
    fs.utimesSync(path.join(src, rel), baseSec + rep * 10, baseSec + rep * 10)
  }
}

// ---------------------------------------------------------------- main
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const fmtMs = (ms) => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${(ms / 1000).toFixed(2)} s`)
const mib = (kb) => `${(kb / 1024).toFixed(0)} MiB`

async function main() {
  const o = parseArgs(process.argv.slice(2))
  LOG_DIR = o.log
  PROF_DIR = o.cpuProf
  if (process.getuid?.() !== 0 || !fs.existsSync('/usr/sbin/sshd')) {
    // As bench/deploy.mjs's remote row: skipped with the reason, so `npm run bench` still runs elsewhere.
    const skipped = 'needs root and /usr/sbin/sshd (apt-get install openssh-server): the hosts are sshd processes here'
    log(`skipped: ${skipped}`)
    if (o.json) console.log(JSON.stringify({skipped}))
    return
  }
  if (!fs.existsSync(path.join(ROOT, 'dist', 'commands', 'deploy.js')))
    fail(`${ROOT}/dist is not built: run \`npm run build\` (or \`npm run bench\`)`)
  const {startHosts, TARGET} = await import(HARNESS)

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-bench-fleet-'))
  const src = path.join(work, 'src')
  let bed
  const cleanup = async () => {
    await bed?.stop().catch(() => {})
    if (o.keep) log(`--keep: left ${work}`)
    else fs.rmSync(work, {recursive: true, force: true})
  }
  const onSignal = async (sig) => {
    log(`${sig}: stopping`)
    for (const c of children) {
      try {
        process.kill(-c.pid, 'SIGKILL')
      } catch {
        // gone
      }
    }
    await cleanup()
    process.exit(130)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const benchStart = Date.now()
  try {
    const gen = generateTree(src, o)
    // Every host starts with the tree (as a server that already runs the app): the first deploy's
    // backup holds it all, so each measured deploy is a steady one (10 files changed, linked backup).
    log(`starting ${o.hosts + 1} test-bed hosts, each holding the ${o.files}-file tree`)
    bed = await startHosts({count: o.hosts + 1, proxy: false})
    // (not startHosts' `seed`: its copy blocks the bed's supervisor while 21 hosts start)
    for (const h of bed.hosts) await run('cp', ['-a', `${src}/.`, `${h.app}/`])
    const step = Math.floor(o.files / o.changed)
    const picked = Array.from({length: o.changed}, (_, i) => gen.files[i * step + ((i * 37) % step)])
    const baseSec = Math.floor(Date.now() / 1000) + 60
    const entries = bed.hostEntries()
    const config = (name, hosts) => {
      const file = path.join(work, name)
      const c = {
        source: src,
        target: TARGET,
        hosts,
        ssh: {config: bed.sshConfig, ...(o.kex ? {options: [`KexAlgorithms=${o.kex}`]} : {})},
        protect: [],
        checks: {},
      }
      // (no reload or smoke: the bench hosts run no service; the deploy still takes each host's lock,
      // backup, sync, verify, marker and journal)
      if (o.parallel) c.parallel = o.parallel
      fs.writeFileSync(file, `${JSON.stringify(c, null, 2)}\n`)
      return file
    }
    const fleetConfig = config('fleet.json', entries.slice(0, o.hosts))
    const oneConfig = config('one.json', entries.slice(o.hosts))
    const allConfig = config('all.json', entries)
    const deploy = async (cfg, hosts, what, logAs) => {
      const r = await hotctl(['deploy', '--skip-checks', '--json', '--config', cfg], work, logAs)
      const bad = r.json.hosts.filter(
        (h) => h.outcome !== 'deployed' || h.result?.changes?.changed?.length !== o.changed,
      )
      if (r.json.hosts.length !== hosts || bad.length)
        throw new Error(
          `${what}: expected ${hosts} hosts deployed with ${o.changed} changed files each; got ${JSON.stringify(r.json.hosts.map((h) => ({name: h.name, outcome: h.outcome, changed: h.result?.changes?.changed?.length}))).slice(0, 1500)}`,
        )
      return r
    }

    // The first deploy (a change, so every host takes its full initial backup) is not measured.
    log(`first deploy to all ${o.hosts + 1} hosts (full initial backups)`)
    mutate(src, picked, gen, 0, baseSec)
    const first = await deploy(allConfig, o.hosts + 1, 'the first deploy', 'first')
    log(`first deploy: ${fmtMs(first.ms)}`)

    const times = {one: [], fleet: []}
    for (let rep = 1; rep <= o.reps; rep++) {
      mutate(src, picked, gen, rep, baseSec)
      const kinds = rep % 2 ? ['one', 'fleet'] : ['fleet', 'one']
      for (const kind of kinds) {
        const r =
          kind === 'one'
            ? await deploy(oneConfig, 1, 'the 1-host deploy', `one-${rep}`)
            : await deploy(fleetConfig, o.hosts, `the ${o.hosts}-host deploy`, `fleet-${rep}`)
        times[kind].push(r)
      }
      log(
        `rep ${rep}/${o.reps}: 1 host ${fmtMs(times.one.at(-1).ms)}, ${o.hosts} hosts ${fmtMs(times.fleet.at(-1).ms)}`,
      )
    }
    // Every host holds exactly the source (the release marker aside).
    for (const h of [bed.hosts[0], bed.hosts[o.hosts - 1], bed.hosts[o.hosts]]) {
      const r = await run('rsync', [
        '-rnc',
        '--delete',
        '--itemize-changes',
        '--exclude=.hotctl-release.json',
        `${src}/`,
        `${h.app}/`,
      ])
      if (r.status !== 0 || r.stdout.trim())
        throw new Error(`${h.name} differs from the source:\n${r.stdout.slice(0, 1000)}`)
    }

    // ------------------------------------------------------------ report
    const ms = (k) => median(times[k].map((r) => r.ms))
    const cpu = (k) => (TIME_BIN ? median(times[k].map((r) => r.cpuMs)) : undefined)
    const hostsCpu = (k) => median(times[k].map((r) => r.hostsCpuMs))
    const nodeCpu = (k) => median(times[k].map((r) => r.nodeCpuMs ?? NaN))
    const ratio = ms('fleet') / ms('one')
    const nodeRss = Math.max(...times.fleet.map((r) => r.rssKb ?? 0))
    const tree = times.fleet.reduce((a, r) => (r.treeKb > a.treeKb ? r : a))
    const parallel = o.parallel ?? 10
    const summary = {
      hosts: o.hosts,
      files: o.files,
      avgBytes: o.avgSize,
      changed: o.changed,
      reps: o.reps,
      parallel,
      node: process.version,
      cpus: os.cpus().length,
      time: new Date().toISOString(),
      firstDeployMs: first.ms,
      oneHost: {
        ms: ms('one'),
        runs: times.one.map((r) => r.ms),
        controllerCpuMs: cpu('one'),
        nodeCpuMs: nodeCpu('one'),
        hostsCpuMs: hostsCpu('one'),
      },
      fleet: {
        ms: ms('fleet'),
        runs: times.fleet.map((r) => r.ms),
        controllerCpuMs: cpu('fleet'),
        nodeCpuMs: nodeCpu('fleet'),
        hostsCpuMs: hostsCpu('fleet'),
      },
      ratio,
      goal: '≤ 3× one host',
      met: ratio <= 3,
      peakRss: {nodeKiB: nodeRss || undefined, controllerTreeKiB: tree.treeKb, controllerTreeProcs: tree.treeProcs},
    }
    const secs = (x) => `${((x ?? NaN) / 1000).toFixed(1)} s`
    // On this bed every host's work runs on this machine's CPUs: (controller + hosts) CPU / CPUs
    // is a floor under the wall time that real, separate hosts would not have.
    const floor = (k) => ((cpu(k) ?? 0) + hostsCpu(k)) / os.cpus().length
    const row = (k, label) =>
      `${label}${fmtMs(ms(k)).padStart(8)}  (${times[k].map((r) => fmtMs(r.ms)).join(' / ')}); CPU: controller ${secs(cpu(k))} (node ${secs(nodeCpu(k))}, the rest ssh/rsync), hosts ${secs(hostsCpu(k))}; CPU floor on ${os.cpus().length} CPUs ${fmtMs(floor(k))}`
    summary.oneHost.cpuFloorMs = floor('one')
    summary.fleet.cpuFloorMs = floor('fleet')
    const lines = [
      '',
      `hotctl fleet benchmark — ${o.files} files (mean ${o.avgSize / 1024} KiB), ${o.changed} changed per deploy, median of ${o.reps}; parallel ${parallel}${o.parallel ? '' : ' (default)'}`,
      `node ${process.version}, ${os.cpus().length} CPUs; the hosts are sshd processes on this machine, sharing its CPUs; hotctl run as installed (bin/run.js by its shebang)`,
      '',
      row('one', 'deploy to 1 host:       '),
      row('fleet', `deploy to ${String(o.hosts).padEnd(3)} hosts:    `),
      `ratio ${o.hosts} hosts / 1 host: ${ratio.toFixed(2)}×   goal ≤ 3×   ${summary.met ? '✔ met' : '✖ missed'}`,
      `controller peak RSS (${o.hosts} hosts): node ${nodeRss ? mib(nodeRss) : '?'} (/usr/bin/time %M); node + ssh + rsync ${mib(tree.treeKb)} over ${tree.treeProcs} processes (sampled every 100 ms)`,
      `first deploy to ${o.hosts + 1} hosts (full initial backups): ${fmtMs(first.ms)}; bench took ${fmtMs(Date.now() - benchStart)}`,
    ]
    if (o.json) {
      process.stderr.write(`${lines.join('\n')}\n`)
      console.log(JSON.stringify(summary, null, 2))
    } else console.log(lines.join('\n'))
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    await cleanup()
  }
}

// Plain node cannot import the TypeScript harness: run again under vite-node (as the tests do).
if (!process.env.HOTCTL_BENCH_VITE_NODE) {
  const viteNode = path.join(ROOT, 'node_modules', '.bin', 'vite-node')
  const child = spawn(viteNode, [fileURLToPath(import.meta.url), '--', ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: {...process.env, HOTCTL_BENCH_VITE_NODE: '1'},
  })
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig))
  child.on('exit', (code, sig) => process.exit(code ?? (sig ? 130 : 1)))
} else {
  main().catch((err) => {
    console.error(`bench fleet: FAILED: ${err.stack || err.message || err}`)
    process.exitCode = 1
  })
}
