#!/usr/bin/env node
// Deploy benchmark (issue 10): every hotctl command against its baseline (bare rsync, rsync -c,
// cp -a, node -e 0), all measured in one run on the same generated tree and reported as ratios,
// each with its goal and met/missed (informational: a missed goal does not fail the run).
// Usage: node bench/deploy.mjs [--keep] [--dir DIR] [--files N] [--reps N] [--json]
import {spawn} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const BIN = path.join(ROOT, 'bin', 'run.js')
const SHEBANG = fs
  .readFileSync(BIN, 'utf8')
  .split('\n', 1)[0]
  .replace(/^#!(\/usr\/bin\/env (-S )?)?/, '')
const MB = 1024 * 1024

// ---------------------------------------------------------------- options
function parseArgs(argv) {
  const o = {
    keep: false,
    json: false,
    dir: undefined,
    files: 20_000,
    perDir: 100,
    avgSize: 12 * 1024,
    changed: 10,
    reps: 3,
    versionReps: 5,
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const val = () => {
      const v = argv[++i]
      if (v === undefined) fail(`${a} needs a value`)
      return v
    }
    const int = () => {
      const n = Number(val())
      if (!Number.isInteger(n) || n < 1) fail(`${a} needs a positive integer`)
      return n
    }
    if (a === '--keep') o.keep = true
    else if (a === '--no-remote') o.noRemote = true
    else if (a === '--json') o.json = true
    else if (a === '--dir') o.dir = path.resolve(val())
    else if (a === '--files') o.files = int()
    else if (a === '--reps') o.reps = int()
    else if (a === '--only') {
      o.only = val()
      if (o.only !== 'remote') fail('--only takes `remote` (the ssh row alone)')
    } else if (a === '--help' || a === '-h') {
      console.log(
        'node bench/deploy.mjs [--keep] [--no-remote] [--dir DIR] [--files N] [--reps N] [--json] [--only remote]\n  --no-remote  skip the ssh host rows\n  --keep   leave the generated trees and state dir\n  --json   print a JSON summary on stdout (the table goes to stderr)\n  --dir    parent dir for generated data (default: os.tmpdir())\n  --files  files in the target tree (default 20000)\n  --reps   repetitions of each measured deploy (default 3)\n  --only remote   the remote (ssh) row alone',
      )
      process.exit(0)
    } else fail(`unknown option ${a} (see --help)`)
  }
  if (o.files < o.changed * 2) fail(`--files must be at least ${o.changed * 2}`)
  return o
}

function fail(msg) {
  console.error(`bench: ${msg}`)
  process.exit(2)
}

// ---------------------------------------------------------------- helpers
/** Live child processes: killed on SIGINT/SIGTERM before the data is removed. */
const children = new Set()

/** Runs a command (async, so signals are handled meanwhile); rejects with its stderr on failure. Resolves {ms, stdout, stderr, status}. */
function run(cmd, args, {cwd = ROOT, allowFail = false} = {}) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    // Own process group: on SIGINT/SIGTERM the whole group (e.g. /usr/bin/time and its node) is killed.
    const child = spawn(cmd, args, {cwd, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'], detached: true})
    children.add(child)
    const out = []
    const err = []
    child.stdout.on('data', (b) => out.push(b))
    child.stderr.on('data', (b) => err.push(b))
    child.on('error', (e) => {
      children.delete(child)
      reject(new Error(`${cmd}: ${e.message}`))
    })
    child.on('close', (status, signal) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6
      children.delete(child)
      const stdout = Buffer.concat(out).toString('utf8')
      const stderr = Buffer.concat(err).toString('utf8')
      if (!allowFail && status !== 0) {
        reject(
          new Error(
            `\`${[cmd, ...args].join(' ')}\` exited ${status ?? signal}\n${stderr.trim().split('\n').slice(-15).join('\n')}\n${stdout.trim().slice(-2000)}`,
          ),
        )
      } else resolve({ms, stdout, stderr, status: status ?? -1})
    })
  })
}

const TIME_BIN = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined
let timeSeq = 0

/**
 * run() under /usr/bin/time when present: adds the CPU time (user + sys, of the command and the
 * children it waited for) and peak RSS. On a shared machine the CPU time is the steadier figure.
 */
async function timed(cmd, args, opts = {}) {
  if (!TIME_BIN) return run(cmd, args, opts)
  const out = path.join(os.tmpdir(), `hotctl-bench-time-${process.pid}-${timeSeq++}`)
  try {
    const r = await run(TIME_BIN, ['-f', '%U %S %M', '-o', out, cmd, ...args], opts)
    const m = /([\d.]+) ([\d.]+) (\d+)\s*$/.exec(fs.readFileSync(out, 'utf8'))
    return m ? {...r, cpuMs: (Number(m[1]) + Number(m[2])) * 1000, rssKb: Number(m[3])} : r
  } finally {
    fs.rmSync(out, {force: true})
  }
}

// hotctl runs as installed: bin/run.js itself, started by its shebang (`node` from PATH, with the
// V8 flags it names), this node's directory first on PATH so that it is the same node.
const childEnv = {
  ...process.env,
  PATH: [path.dirname(process.execPath), process.env.PATH].filter(Boolean).join(path.delimiter),
  NO_COLOR: '1',
  CI: '1',
}
delete childEnv.HOTCTL_CONFIG
delete childEnv.HOTCTL_RSYNC
delete childEnv.FORCE_COLOR

function which(bin) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    const p = path.join(dir, bin)
    try {
      fs.accessSync(p, fs.constants.X_OK)
      return p
    } catch {
      // next
    }
  }
  return undefined
}

const msOf = (r) => (typeof r === 'number' ? r : r.ms)
const cpuOf = (r) => (typeof r === 'number' ? undefined : r.cpuMs)
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const fmtMs = (ms) =>
  ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`
const fmtBytes = (n) =>
  Math.abs(n) >= MB ? `${(n / MB).toFixed(2)} MiB` : Math.abs(n) >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`
const log = (msg) => process.stderr.write(`bench: ${msg}\n`)

/** Deterministic PRNG (mulberry32). */
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

/** Sum of apparent sizes (files, plus directories as du -sb counts them). */
async function duBytes(dir) {
  const r = await run('du', ['-sb', dir])
  return Number(r.stdout.split(/\s/)[0])
}

/** Sum of file sizes under dir (no directory entries). */
function fileBytes(dir) {
  let total = 0
  if (!fs.existsSync(dir)) return 0
  const visit = (d) => {
    for (const e of fs.readdirSync(d, {withFileTypes: true})) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) visit(p)
      else if (e.isFile()) total += fs.statSync(p).size
    }
  }
  visit(dir)
  return total
}

// ---------------------------------------------------------------- tree generation
const EXTS = ['.py', '.js', '.json', '.html', '.css', '.txt', '.yaml', '.md']

/** ~files files in ~files/perDir leaf dirs nested two levels (area/module/[sub/]file). */
function generateTree(root, o) {
  const rand = prng(0x5eed)
  const pool = Buffer.alloc(4 * MB)
  for (let i = 0; i < pool.length; i += 4) pool.writeUInt32LE((rand() * 2 ** 32) >>> 0, i)
  const leafDirs = Math.max(1, Math.round(o.files / o.perDir))
  const areas = Math.max(1, Math.round(Math.sqrt(leafDirs / 2)))
  const files = []
  let bytes = 0
  let made = 0
  for (let d = 0; d < leafDirs; d++) {
    const area = `area${String(d % areas).padStart(2, '0')}`
    const mod = `module${String(Math.floor(d / areas)).padStart(3, '0')}`
    const dir = d % 3 === 0 ? path.join(area, mod, 'lib') : path.join(area, mod)
    fs.mkdirSync(path.join(root, dir), {recursive: true})
    const n = d === leafDirs - 1 ? o.files - made : Math.min(o.perDir, o.files - made)
    for (let f = 0; f < n; f++) {
      // Sizes: mostly 1–23 KiB (uniform, mean 12 KiB), a few larger files, scaled back to the mean.
      const big = rand() < 0.02
      const size = big
        ? Math.round(o.avgSize * (2 + rand() * 4))
        : Math.max(64, Math.round(o.avgSize * (0.08 + rand() * 1.84) * 0.93))
      const rel = path.join(dir, `file${String(f).padStart(3, '0')}${EXTS[(d + f) % EXTS.length]}`)
      writeContent(path.join(root, rel), rel, size, pool, Math.floor(rand() * (pool.length - size - 256)), 'v0')
      files.push(rel)
      bytes += size
      made++
    }
    if (made >= o.files) break
  }
  return {files, bytes, pool}
}

/** A per-file header (so files differ) followed by a slice of the shared random pool. */
function writeContent(file, rel, size, pool, offset, tag) {
  const header = Buffer.from(`// ${rel} ${tag}\n`)
  const body = pool.subarray(offset, offset + Math.max(0, size - header.length))
  const fd = fs.openSync(file, 'w')
  try {
    fs.writeSync(fd, header, 0, Math.min(header.length, size))
    if (body.length) fs.writeSync(fd, body)
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * Changes the same `picked` files in `src` for repetition `rep`: new content, half of them with a
 * new size. The mtime is set explicitly (distinct whole seconds per rep) so rsync's quick check
 * (size + mtime) always sees the change, even for same-size rewrites within one second.
 */
function mutate(src, picked, pool, rep, baseSec) {
  const rand = prng(1000 + rep)
  let bytes = 0
  picked.forEach((rel, i) => {
    const file = path.join(src, rel)
    const old = fs.statSync(file).size
    const size = i % 2 === 0 ? old : Math.max(64, Math.round(old * (0.5 + rand())))
    writeContent(file, rel, size, pool, Math.floor(rand() * (pool.length - size - 256)), `rep${rep}`)
    const t = baseSec + rep * 10
    fs.utimesSync(file, t, t)
    bytes += size
  })
  return bytes
}

const sizesIn = (root, rels) => rels.reduce((s, rel) => s + fs.statSync(path.join(root, rel)).size, 0)

// ---------------------------------------------------------------- hotctl invocations
/** Runs hotctl with --json; peak RSS (KiB) through /usr/bin/time when present. Throws unless it reports ok. */
async function hotctl(args, cwd) {
  const r = await timed(BIN, args, {cwd, allowFail: true})
  let json
  try {
    json = JSON.parse(r.stdout.trim().split('\n').at(-1))
  } catch {
    json = undefined
  }
  if (r.status !== 0 || !json || json.ok !== true) {
    throw new Error(
      `hotctl ${args.join(' ')} failed (exit ${r.status})\nstdout: ${r.stdout.trim().slice(-3000)}\nstderr: ${r.stderr.trim().split('\n').slice(-20).join('\n')}`,
    )
  }
  return {...r, json}
}

const changeCountOf = (json) => {
  const ch = json.changes ?? {}
  return {
    changed: ch.changed?.length ?? 0,
    all: (ch.added?.length ?? 0) + (ch.changed?.length ?? 0) + (ch.deleted?.length ?? 0),
  }
}

/** Flushes dirty pages so writeback of one command does not land inside the next timed one. Not timed. */
const syncDisks = () => run('sync', [], {allowFail: true})

// ---------------------------------------------------------------- one remote host (ssh)
/**
 * hotctl deploy to `root@host:/path` (a throwaway sshd on 127.0.0.2, test/ssh/sshd-host.mjs)
 * against bare `rsync -a --delete -e ssh` with the same ssh options, each a fresh connection per
 * run (hotctl opens and closes its own master). Same changes, same tree. Needs root and sshd;
 * otherwise skipped with the reason.
 */
async function remoteBench(o, work, src, picked, pool, baseSec) {
  if (o.noRemote) return {skipped: '--no-remote'}
  if (!fs.existsSync('/usr/sbin/sshd') || process.getuid?.() !== 0)
    return {skipped: 'needs root and /usr/sbin/sshd (apt-get install openssh-server)'}
  const {startSshHost, stopSshHosts} = await import('../test/ssh/sshd-host.mjs')
  const host = await startSshHost()
  try {
    const rlive = path.join(work, 'remote-live')
    const rcopy = path.join(work, 'remote-rsync-copy')
    const rconfig = path.join(work, 'hotctl.remote.json')
    fs.writeFileSync(
      rconfig,
      `${JSON.stringify({source: src, target: `root@${host.alias}:${rlive}`, ssh: {config: host.sshConfig}, protect: [], checks: {}}, null, 2)}\n`,
    )
    const control = fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-bench-cm-'))
    const rsh = `ssh -F ${host.sshConfig} -o BatchMode=yes -o ControlMaster=auto -o ControlPath=${control}/%C -o ControlPersist=30`
    const bare = async () => {
      const r = await run('rsync', ['-a', '--delete', '-e', rsh, `${src}/`, `root@${host.alias}:${rcopy}/`])
      await run('ssh', ['-F', host.sshConfig, '-o', `ControlPath=${control}/%C`, '-O', 'exit', host.alias], {
        allowFail: true,
      })
      return r.ms
    }
    log('remote: first deploy to one ssh host (full initial backup)')
    const first = await hotctl(['deploy', '--create-target', '--skip-checks', '--json', '--config', rconfig], work)
    await bare()
    const times = {hotctl: [], rsync: []}
    const rss = []
    for (let rep = 1; rep <= o.reps; rep++) {
      mutate(src, picked, pool, 100 + rep, baseSec)
      const steps = [
        async () => {
          const r = await hotctl(['deploy', '--skip-checks', '--json', '--config', rconfig], work)
          const n = r.json.changes?.changed?.length ?? 0
          if (n !== o.changed) throw new Error(`remote hotctl deploy changed ${n} files, not ${o.changed}`)
          times.hotctl.push(r)
          if (r.rssKb) rss.push(r.rssKb)
        },
        async () => times.rsync.push({ms: await bare()}),
      ]
      if (rep % 2 === 0) steps.reverse()
      for (const step of steps) await step()
      log(
        `remote rep ${rep}/${o.reps}: hotctl ${fmtMs(times.hotctl.at(-1).ms)}, rsync -e ssh ${fmtMs(times.rsync.at(-1).ms)}`,
      )
    }
    fs.rmSync(control, {recursive: true, force: true})
    return {first: first.ms, firstRss: first.rssKb, hotctl: times.hotctl, rsync: times.rsync, rss}
  } finally {
    await stopSshHosts()
  }
}

// ---------------------------------------------------------------- main
async function main() {
  const o = parseArgs(process.argv.slice(2))
  for (const bin of ['rsync', 'cp', 'du'])
    if (!which(bin)) fail(`${bin} not found on PATH (apt-get install ${bin === 'rsync' ? 'rsync' : 'coreutils'})`)
  if (!fs.existsSync(path.join(ROOT, 'dist', 'commands', 'deploy.js')))
    fail(`${ROOT}/dist is not built: run \`npm run build\` (or \`npm run bench\`)`)

  const parent = o.dir ?? os.tmpdir()
  fs.mkdirSync(parent, {recursive: true})
  const work = fs.mkdtempSync(path.join(parent, 'hotctl-bench-'))
  const target = path.join(work, 'live')
  const src = path.join(work, 'src')
  const ci = path.join(work, 'ci-src') // a "fresh clone": cp -r of src, every mtime new
  const prev = path.join(work, 'prev') // the source before the last deploy, for the rsync-back baseline
  const copyR = path.join(work, 'rsync-copy')
  const copyC = path.join(work, 'rsync-c-copy')
  const copyS = path.join(work, 'seed-copy')
  const copyA = path.join(work, 'cp-a-copy')
  const stateDir = path.join(work, '.live.hotctl') // hotctl's default: <dirname(target)>/.<basename(target)>.hotctl
  const config = path.join(src, 'hotctl.config.json')
  const benchStart = Date.now()

  let interrupted = false
  const onSignal = (sig) => {
    interrupted = true
    log(`${sig}: stopping; cleaning up ${work}`)
    for (const c of children) {
      try {
        process.kill(-c.pid, 'SIGKILL')
      } catch {
        c.kill('SIGKILL')
      }
    }
    cleanup()
    process.exit(130)
  }
  const cleanup = () => {
    if (o.keep) {
      log(`--keep: left ${work}`)
      return
    }
    try {
      fs.rmSync(work, {recursive: true, force: true})
    } catch (err) {
      log(`could not remove ${work}: ${err.message}`)
    }
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  try {
    // 1. Data.
    log(`generating ${o.files} files in ${target}`)
    const t0 = Date.now()
    const gen = generateTree(target, o)
    const dirs = new Set(gen.files.map((f) => path.dirname(f))).size
    log(`generated ${gen.files.length} files in ${dirs} dirs, ${fmtBytes(gen.bytes)}, in ${fmtMs(Date.now() - t0)}`)
    await run('cp', ['-a', target, src])
    fs.writeFileSync(config, `${JSON.stringify({target, protect: [], checks: {}}, null, 2)}\n`)
    // Changed files: spread over the tree, same set every repetition.
    const step = Math.floor(gen.files.length / o.changed)
    const picked = Array.from({length: o.changed}, (_, i) =>
      gen.files[i * step + ((i * 37) % step)].split(path.sep).join('/'),
    )
    const baseSec = Math.floor(Date.now() / 1000) + 60
    let tag = 0 // content version of the picked files: rep<tag>
    if (o.only === 'remote') {
      const remote = await remoteBench(o, work, src, picked, gen.pool, baseSec + 1000)
      if (remote.skipped) return log(`remote row skipped: ${remote.skipped}`)
      const h = median(remote.hotctl.map(msOf))
      const b = median(remote.rsync.map(msOf))
      const cpu = median(remote.hotctl.map(cpuOf).filter((c) => c !== undefined))
      console.log(
        `remote: deploy to 1 ssh host, ${gen.files.length} files, ${o.changed} changed: hotctl ${fmtMs(h)} (runs ${remote.hotctl.map((r) => fmtMs(r.ms)).join(' / ')}; cpu ${fmtMs(cpu)}), rsync -a --delete -e ssh ${fmtMs(b)} (runs ${remote.rsync.map((r) => fmtMs(msOf(r))).join(' / ')}): ${(h / b).toFixed(2)}× (goal ≤ 2.5×); first deploy ${fmtMs(remote.first)}${remote.firstRss ? ` (peak RSS ${(remote.firstRss / 1024).toFixed(0)} MiB)` : ''}; peak RSS ${remote.rss.length ? `${(Math.max(...remote.rss) / 1024).toFixed(0)} MiB (runs ${remote.rss.map((k) => (k / 1024).toFixed(0)).join(' / ')}; limit ${(100 + (0.75 * gen.files.length) / 1024).toFixed(0)})` : 'not measured'}`,
      )
      return
    }

    // 2. First deploy (the full initial backup) against cp -a of the same tree, both after a sync.
    // The copy is deleted only after the first deploy: ext4 without a journal scans the inodes
    // freed in the last 60 s on every file it creates (recently_deleted), so a deploy right after
    // deleting 20k files measured that scan (cp -a itself: 0.86 s system time, 12 s right after
    // an rm -rf of 20k files).
    log('cp -a of the tree (baseline of the first deploy)')
    await syncDisks()
    const cpA = await timed('cp', ['-a', target, copyA])
    await syncDisks()
    log('first deploy (full initial backup)')
    const first = await hotctl(['deploy', '--skip-checks', '--json', '--config', config], src)
    log(`first deploy: ${fmtMs(first.ms)} (cp -a: ${fmtMs(cpA.ms)})`)
    fs.rmSync(copyA, {recursive: true, force: true})

    // Identical copies of the deployed target for the baselines, brought to exactly the source.
    for (const copy of [copyR, copyC, copyS]) {
      await run('cp', ['-a', target, copy])
      await run('rsync', ['-a', '--delete', `${src}/`, `${copy}/`])
    }

    // 3. Deploys with mtimes kept: each repetition re-changes the same files in the source, then
    // every contender deploys exactly those changes into its own tree (order rotated).
    const times = {hotctl: [], rsync: [], seed: [], seedCp: [], inProcess: []}
    const added = {du: [], store: [], changed: [], reported: []}
    const rss = {deploy: [], ci: []}
    const seedBackups = []
    const expectDeployed = (what, json) => {
      const n = changeCountOf(json)
      if (json.outcome !== 'deployed' || n.changed !== o.changed || n.all !== o.changed)
        throw new Error(
          `${what} did not deploy exactly ${o.changed} changed files: outcome ${json.outcome}, changes ${JSON.stringify(json.changes).slice(0, 500)}`,
        )
    }
    const contenders = {
      hotctl: async () => {
        const oldBytes = sizesIn(target, picked)
        const duBefore = await duBytes(stateDir)
        const storeBefore = fileBytes(path.join(stateDir, 'objects')) + fileBytes(path.join(stateDir, 'backups'))
        await syncDisks()
        const r = await hotctl(['deploy', '--skip-checks', '--json', '--config', config], src)
        expectDeployed('hotctl deploy', r.json)
        times.hotctl.push(r)
        times.inProcess.push(r.json.durationMs)
        added.du.push((await duBytes(stateDir)) - duBefore)
        added.store.push(
          fileBytes(path.join(stateDir, 'objects')) + fileBytes(path.join(stateDir, 'backups')) - storeBefore,
        )
        added.changed.push(oldBytes)
        added.reported.push(r.json.backup?.added ?? NaN)
        if (r.rssKb) rss.deploy.push(r.rssKb)
      },
      rsync: async () => {
        await syncDisks()
        times.rsync.push(await timed('rsync', ['-a', '--delete', `${src}/`, `${copyR}/`]))
      },
      seed: async () => {
        const backup = `${copyS}.backup.${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}`
        await syncDisks()
        const t = process.hrtime.bigint()
        const cp = await run('cp', ['-r', copyS, backup])
        await run('rsync', ['-a', '--delete', `${src}/`, `${copyS}/`])
        times.seed.push(Number(process.hrtime.bigint() - t) / 1e6)
        times.seedCp.push(cp.ms)
        // Backup copies are removed after all repetitions: deleting 20k files between repetitions
        // was seen to make the next cp -r several times slower (filesystem busy freeing them).
        seedBackups.push(backup)
      },
    }
    const names = Object.keys(contenders)
    for (let rep = 1; rep <= o.reps; rep++) {
      if (interrupted) return
      if (rep === o.reps) await run('cp', ['-a', src, prev]) // what the rollback goes back to
      mutate(src, picked, gen.pool, ++tag, baseSec)
      const order = names.map((_, i) => names[(i + rep - 1) % names.length])
      for (const name of order) await contenders[name]()
      await run('rsync', ['-a', '--delete', `${src}/`, `${copyC}/`])
      log(
        `rep ${rep}/${o.reps}: hotctl ${fmtMs(msOf(times.hotctl.at(-1)))}, rsync ${fmtMs(msOf(times.rsync.at(-1)))}, seed ${fmtMs(times.seed.at(-1))}`,
      )
    }
    for (const b of seedBackups) fs.rmSync(b, {recursive: true, force: true})
    await expectSame(src, target, 'the hotctl deploys')

    // 4. Rollback (to the backup taken before the last deploy) against bare rsync of the previous
    // tree, `reps` times, as the deploys: between two, the rollback is undone (`rollback --to` the
    // release it replaced) and rsync's copy brought back, untimed. The first rollback after a build
    // also compiles the command and writes its code cache (src/code-cache.ts), as the first deploy
    // does for the deploys: the median is the steady state, the runs column shows each.
    log('rollback')
    const rbs = []
    const rsyncBacks = []
    const wantTag = tag > 1 ? `rep${tag - 1}` : 'v0'
    for (let rep = 1; rep <= o.reps; rep++) {
      if (interrupted) return
      await syncDisks()
      const rb = await hotctl(['rollback', '--json', '--config', config], src)
      const rolledBack = picked.filter((rel) =>
        fs
          .readFileSync(path.join(target, rel))
          .subarray(0, 200)
          .toString('latin1')
          .startsWith(`// ${rel} ${wantTag}\n`),
      ).length
      if (rolledBack !== picked.length)
        throw new Error(
          `rollback did not restore the previous version of the changed files (${rolledBack}/${picked.length})`,
        )
      rbs.push(rb)
      await syncDisks()
      rsyncBacks.push(await timed('rsync', ['-a', '--delete', `${prev}/`, `${copyR}/`]))
      if (rep < o.reps) {
        await hotctl(['rollback', '--to', rb.json.from, '--json', '--config', config], src)
        await run('rsync', ['-a', '--delete', `${src}/`, `${copyR}/`])
      }
    }
    await run('rsync', ['-a', '--delete', `${prev}/`, `${copyC}/`])

    // 5. The CI case: a fresh copy of the source (every mtime new, 10 files changed) against
    // rsync -a -c --delete; then a fresh copy of what is live against rsync -a -c -n.
    const ciTimes = {hotctl: [], rsync: [], hashedMs: []}
    for (let rep = 1; rep <= o.reps; rep++) {
      if (interrupted) return
      mutate(src, picked, gen.pool, ++tag, baseSec)
      fs.rmSync(ci, {recursive: true, force: true})
      await run('cp', ['-r', src, ci])
      const ciConfig = path.join(ci, 'hotctl.config.json')
      const contendersCi = {
        hotctl: async () => {
          await syncDisks()
          const r = await hotctl(['deploy', '--skip-checks', '--json', '--config', ciConfig], ci)
          expectDeployed('hotctl deploy (CI case)', r.json)
          ciTimes.hotctl.push(r)
          if (r.rssKb) rss.ci.push(r.rssKb)
        },
        rsync: async () => {
          await syncDisks()
          ciTimes.rsync.push(await timed('rsync', ['-a', '-c', '--delete', `${ci}/`, `${copyC}/`]))
        },
      }
      for (const name of rep % 2 ? ['hotctl', 'rsync'] : ['rsync', 'hotctl']) await contendersCi[name]()
      log(
        `CI rep ${rep}/${o.reps}: hotctl ${fmtMs(msOf(ciTimes.hotctl.at(-1)))}, rsync -a -c ${fmtMs(msOf(ciTimes.rsync.at(-1)))}`,
      )
    }
    await expectSame(ci, target, 'the CI deploys')
    const same = {hotctl: [], rsync: []}
    for (let rep = 1; rep <= o.reps; rep++) {
      fs.rmSync(ci, {recursive: true, force: true})
      await run('cp', ['-r', src, ci])
      const contendersSame = {
        hotctl: async () => {
          await syncDisks()
          const r = await hotctl(
            ['deploy', '--skip-checks', '--json', '--config', path.join(ci, 'hotctl.config.json')],
            ci,
          )
          if (r.json.outcome !== 'nothing-to-deploy' || changeCountOf(r.json).all !== 0)
            throw new Error(`CI deploy of an unchanged tree changed something: ${r.json.outcome}`)
          same.hotctl.push(r)
        },
        rsync: async () => {
          await syncDisks()
          same.rsync.push(await timed('rsync', ['-a', '-c', '-n', '--delete', `${ci}/`, `${copyC}/`]))
        },
      }
      // Order alternated, as above: the first reader of a fresh copy pays more system time.
      for (const name of rep % 2 ? ['hotctl', 'rsync'] : ['rsync', 'hotctl']) await contendersSame[name]()
    }
    log(
      `CI nothing changed: hotctl ${same.hotctl.map((r) => fmtMs(r.ms)).join(' / ')}, rsync -a -c -n ${same.rsync.map((r) => fmtMs(r.ms)).join(' / ')}`,
    )

    // 5b. One remote host over ssh (the same tree and changes).
    const remote = await remoteBench(o, work, src, picked, gen.pool, baseSec + 1000)

    // 6. Startup and the fixed cost of a deploy: --version, and a no-change deploy of a 10-file tree.
    log('--version, no-change deploy of 10 files, node -e 0')
    const small = path.join(work, 'small')
    const smallLive = path.join(work, 'small-live')
    fs.mkdirSync(small)
    fs.mkdirSync(smallLive)
    for (let i = 0; i < 10; i++) fs.writeFileSync(path.join(small, `f${i}.py`), `print(${i})\n`)
    const smallConfig = path.join(small, 'hotctl.config.json')
    fs.writeFileSync(smallConfig, `${JSON.stringify({target: smallLive, protect: [], checks: {}}, null, 2)}\n`)
    await hotctl(['deploy', '--skip-checks', '--json', '--config', smallConfig], small)
    const version = []
    const nodeBare = []
    const fixed = []
    for (let i = 0; i < o.versionReps; i++) {
      nodeBare.push(await timed(process.execPath, ['-e', '0']))
      version.push(await timed(BIN, ['--version']))
      const r = await hotctl(['deploy', '--skip-checks', '--json', '--config', smallConfig], small)
      if (r.json.outcome !== 'nothing-to-deploy') throw new Error(`10-file deploy: ${r.json.outcome}`)
      fixed.push(r)
    }

    // ------------------------------------------------------------ report
    const files = gen.files.length
    const rssLimitKb = 100 * 1024 + 0.75 * files
    const md = (xs) => median(xs)
    const runs = (xs) => xs.map(fmtMs).join(' / ')
    const rows = []
    /** One row: a measure, its baseline, and the goal as a ratio limit (at most `max`, or at least `min` for "faster"). */
    const ratioRow = (name, results, baseName, baseResults, goal) => {
      const xs = results.map(msOf)
      const bs = baseResults.map(msOf)
      const v = md(xs)
      const b = md(bs)
      const ratio = v / b
      const met = goal.max !== undefined ? ratio <= goal.max : b / v >= goal.min
      // CPU time (user + sys): steadier than wall time when other work shares the cores.
      const cx = results.map(cpuOf).filter((c) => c !== undefined)
      const cb = baseResults.map(cpuOf).filter((c) => c !== undefined)
      const cpu =
        cx.length && cb.length ? {ms: md(cx), baselineMs: md(cb), ratio: md(cx) / Math.max(1, md(cb))} : undefined
      rows.push({
        name,
        value: fmtMs(v),
        runs: runs(xs),
        baseline: `${baseName} ${fmtMs(b)}`,
        ratio: goal.min !== undefined ? `${(b / v).toFixed(2)}× faster` : `${ratio.toFixed(2)}×`,
        cpu: cpu ? `${fmtMs(cpu.ms)} vs ${fmtMs(cpu.baselineMs)} (${cpu.ratio.toFixed(2)}×)` : '',
        goal: goal.text,
        met,
        json: {ms: v, runs: xs, baselineMs: b, baselineRuns: bs, ratio, cpu, goal: goal.text, met},
      })
    }
    const rssRow = (name, kbs) => {
      if (!kbs.length) return
      const kb = Math.max(...kbs)
      rows.push({
        name,
        value: `${(kb / 1024).toFixed(0)} MiB`,
        runs: kbs.map((k) => `${(k / 1024).toFixed(0)}`).join(' / '),
        baseline: `limit ${(rssLimitKb / 1024).toFixed(0)} MiB`,
        ratio: `${(kb / rssLimitKb).toFixed(2)}× limit`,
        cpu: '',
        goal: '≤ 100 MiB + 0.75 KiB/file',
        met: kb <= rssLimitKb,
        json: {peakKiB: kb, runs: kbs, limitKiB: rssLimitKb, met: kb <= rssLimitKb},
      })
    }
    ratioRow(`deploy, ${o.changed} changed, mtimes kept`, times.hotctl, 'rsync -a --delete', times.rsync, {
      max: 2,
      text: '≤ 2.0× rsync -a',
    })
    ratioRow("deploy vs the seed's cp -r + rsync", times.hotctl, 'cp -r + rsync', times.seed, {
      min: 3,
      text: '≥ 3× faster',
    })
    ratioRow(`CI: fresh copy, ${o.changed} changed`, ciTimes.hotctl, 'rsync -a -c --delete', ciTimes.rsync, {
      max: 1.5,
      text: '≤ 1.5× rsync -a -c',
    })
    ratioRow('CI: fresh copy, nothing changed', same.hotctl, 'rsync -a -c -n', same.rsync, {
      max: 1.2,
      text: '≤ 1.2× rsync -a -c -n',
    })
    ratioRow('first deploy (full initial backup)', [first], 'cp -a', [cpA], {max: 1.3, text: '≤ 1.3× cp -a'})
    ratioRow('rollback (one step back)', rbs, 'rsync -a back', rsyncBacks, {max: 2, text: '≤ 2.0× rsync back'})
    ratioRow('hotctl --version', version, 'node -e 0', nodeBare, {max: 1.5, text: '≤ 1.5× node -e 0'})
    ratioRow('no-change deploy, 10-file tree', fixed, 'node -e 0', nodeBare, {max: 3, text: '≤ 3× node -e 0'})
    rssRow('peak RSS: first deploy', first.rssKb ? [first.rssKb] : [])
    rssRow('peak RSS: deploy', rss.deploy)
    rssRow('peak RSS: CI deploy', rss.ci)
    rssRow(
      'peak RSS: rollback',
      rbs.flatMap((r) => (r.rssKb ? [r.rssKb] : [])),
    )
    if (remote.skipped) log(`remote row skipped: ${remote.skipped}`)
    else {
      ratioRow('remote: deploy to 1 ssh host', remote.hotctl, 'rsync -a --delete -e ssh', remote.rsync, {
        max: 2.5,
        text: '≤ 2.5× rsync -e ssh',
      })
      rssRow('peak RSS: remote deploy', remote.rss)
      rssRow('peak RSS: remote first deploy', remote.firstRss ? [remote.firstRss] : [])
    }

    const from = o.reps > 1 ? 1 : 0 // deploy 1 re-backs up originals the initial backup already holds
    const pick = (xs) => median(xs.slice(from))
    const lastAddedDu = pick(added.du)
    const lastChanged = pick(added.changed)
    const backupRow = {
      name: 'backup growth per deploy',
      value: `+${fmtBytes(lastAddedDu)}`,
      runs: added.du.map((d) => `+${fmtBytes(d)}`).join(' / '),
      baseline: `changed ${fmtBytes(lastChanged)}`,
      ratio: `+${fmtBytes(lastAddedDu - lastChanged)}`,
      cpu: '',
      goal: '≤ changed + 2 MiB',
      met: lastAddedDu <= lastChanged + 2 * MB,
    }
    rows.push(backupRow)

    const head = ['what', 'median', 'runs', 'baseline (same run)', 'ratio', 'cpu (user+sys) vs baseline', 'goal', '']
    const cells = rows.map((r) => [
      r.name,
      r.value,
      r.runs,
      r.baseline,
      r.ratio,
      r.cpu,
      r.goal,
      r.met ? '✔ met' : '✖ missed',
    ])
    const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)))
    const line = (c) =>
      c
        .map((x, i) => (i === 1 ? x.padStart(w[i]) : x.padEnd(w[i])))
        .join('  ')
        .trimEnd()
    const out = [
      '',
      `hotctl benchmark — ${files} files in ${dirs} dirs, ${fmtBytes(gen.bytes)}; ${o.changed} files changed per deploy; median of ${o.reps} (startup: ${o.versionReps})`,
      `node ${process.version}, ${os.cpus().length} CPUs, ${os.platform()} ${os.release()}, data in ${parent}`,
      `hotctl run as installed: bin/run.js by its shebang (${SHEBANG}); baseline of the startup rows: node -e 0`,
      '',
      line(head),
      line(w.map((n) => '-'.repeat(n))),
      ...cells.map(line),
      '',
      `deploy inside deploy() (its durationMs): ${runs(times.inProcess)}; the rest is process start, module loading, config and exit`,
      `goals met: ${rows.filter((r) => r.met).length}/${rows.length}; bench took ${fmtMs(Date.now() - benchStart)}${o.keep ? `; data kept in ${work}` : ''}`,
    ]
    if (o.json) {
      process.stderr.write(`${out.join('\n')}\n`)
      const summary = {
        files,
        dirs,
        bytes: gen.bytes,
        changed: o.changed,
        reps: o.reps,
        node: process.version,
        cpus: os.cpus().length,
        time: new Date().toISOString(),
        rows: Object.fromEntries(rows.map((r) => [r.name, r.json ?? {met: r.met, value: r.value, goal: r.goal}])),
      }
      console.log(JSON.stringify(summary, null, 2))
    } else console.log(out.join('\n'))
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    if (!interrupted) cleanup()
  }
}

/** Same content in both trees (the release marker aside)? */
async function expectSame(a, b, after) {
  const check = await run('rsync', [
    '-rl',
    '--delete',
    '--dry-run',
    '--itemize-changes',
    '--checksum',
    '--exclude=.hotctl-release.json',
    `${a}/`,
    `${b}/`,
  ])
  const diffs = check.stdout.split('\n').filter((l) => l.trim())
  if (diffs.length) throw new Error(`target differs from source after ${after}:\n${diffs.slice(0, 10).join('\n')}`)
}

main().catch((err) => {
  console.error(`bench: FAILED: ${err.stack || err.message || err}`)
  process.exitCode = 1
})
