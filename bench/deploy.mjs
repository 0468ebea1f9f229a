#!/usr/bin/env node
// Deploy benchmark: hotctl against bare rsync and the seed's `cp -r` backup + rsync, all measured in
// one run on the same generated tree, reported as ratios (informational: nothing here fails the run
// because a target is missed). Usage: node bench/deploy.mjs [--keep] [--dir DIR] [--files N] [--reps N]
import {spawn} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const BIN = path.join(ROOT, 'bin', 'run.js')
const MB = 1024 * 1024

// ---------------------------------------------------------------- options
function parseArgs(argv) {
  const o = {
    keep: false,
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
    else if (a === '--dir') o.dir = path.resolve(val())
    else if (a === '--files') o.files = int()
    else if (a === '--reps') o.reps = int()
    else if (a === '--help' || a === '-h') {
      console.log(
        'node bench/deploy.mjs [--keep] [--dir DIR] [--files N] [--reps N]\n  --keep   leave the generated trees and state dir\n  --dir    parent dir for generated data (default: os.tmpdir())\n  --files  files in the target tree (default 20000)\n  --reps   repetitions of each measured deploy (default 3)',
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

const childEnv = {...process.env, NO_COLOR: '1', CI: '1'}
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

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const fmtMs = (ms) =>
  ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`
const fmtBytes = (n) =>
  Math.abs(n) >= MB ? `${(n / MB).toFixed(2)} MiB` : Math.abs(n) >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`
const mark = (ok) => (ok ? '✔' : '✖')
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
async function hotctl(args, cwd, timeBin, rssFile) {
  const argv = [BIN, ...args]
  const r = await (timeBin
    ? run(timeBin, ['-f', '%M', '-o', rssFile, process.execPath, ...argv], {cwd, allowFail: true})
    : run(process.execPath, argv, {cwd, allowFail: true}))
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
  let rssKb
  if (timeBin) {
    const m = /(\d+)\s*$/.exec(fs.readFileSync(rssFile, 'utf8'))
    rssKb = m ? Number(m[1]) : undefined
  }
  return {ms: r.ms, json, rssKb}
}

/** Flushes dirty pages (the seed way writes a whole tree copy) so writeback does not land inside the next timed command. Not timed. */
const syncDisks = () => run('sync', [], {allowFail: true})

// ---------------------------------------------------------------- one remote host (ssh)
/**
 * hotctl deploy to `root@host:/path` (a throwaway sshd on 127.0.0.2, test/ssh/sshd-host.mjs)
 * against bare `rsync -a --delete -e ssh` with the same ssh options, each a fresh connection per
 * run (hotctl opens and closes its own master). Same changes, same tree. Needs root and sshd;
 * otherwise skipped with the reason.
 */
async function remoteBench(o, work, src, picked, pool, baseSec, timeBin, rssFile) {
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
    const first = await hotctl(
      ['deploy', '--create-target', '--skip-checks', '--json', '--config', rconfig],
      work,
      timeBin,
      rssFile,
    )
    await bare()
    const times = {hotctl: [], rsync: []}
    const rss = []
    for (let rep = 1; rep <= o.reps; rep++) {
      mutate(src, picked, pool, 100 + rep, baseSec)
      const steps = [
        async () => {
          const r = await hotctl(['deploy', '--skip-checks', '--json', '--config', rconfig], work, timeBin, rssFile)
          const n = r.json.changes?.changed?.length ?? 0
          if (n !== o.changed) throw new Error(`remote hotctl deploy changed ${n} files, not ${o.changed}`)
          times.hotctl.push(r.ms)
          if (r.rssKb) rss.push(r.rssKb)
        },
        async () => times.rsync.push(await bare()),
      ]
      if (rep % 2 === 0) steps.reverse()
      for (const step of steps) await step()
      log(
        `remote rep ${rep}/${o.reps}: hotctl ${fmtMs(times.hotctl.at(-1))}, rsync -e ssh ${fmtMs(times.rsync.at(-1))}`,
      )
    }
    fs.rmSync(control, {recursive: true, force: true})
    return {first: first.ms, hotctl: times.hotctl, rsync: times.rsync, rss}
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
  const timeBin = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined

  const parent = o.dir ?? os.tmpdir()
  fs.mkdirSync(parent, {recursive: true})
  const work = fs.mkdtempSync(path.join(parent, 'hotctl-bench-'))
  const target = path.join(work, 'live')
  const src = path.join(work, 'src')
  const copyR = path.join(work, 'rsync-copy')
  const copyS = path.join(work, 'seed-copy')
  const stateDir = path.join(work, '.live.hotctl') // hotctl's default: <dirname(target)>/.<basename(target)>.hotctl
  const config = path.join(src, 'hotctl.config.json')
  const rssFile = path.join(work, 'rss.txt')
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
    let t0 = Date.now()
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

    // 2. Baseline deploy: creates the state dir; the first backup stores the whole tree.
    log('first deploy (full initial backup)')
    await syncDisks()
    const first = await hotctl(['deploy', '--skip-checks', '--json', '--config', config], src, timeBin, rssFile)
    log(`first deploy: ${fmtMs(first.ms)}`)

    // Identical copies of the deployed target for the baselines, brought to exactly the source.
    await run('cp', ['-a', target, copyR])
    await run('cp', ['-a', target, copyS])
    await run('rsync', ['-a', '--delete', `${src}/`, `${copyR}/`])
    await run('rsync', ['-a', '--delete', `${src}/`, `${copyS}/`])

    // 3. Repetitions: each re-changes the same files in the source, then every contender deploys
    // exactly those changes into its own tree (order rotated per repetition).
    const baseSec = Math.floor(Date.now() / 1000) + 60
    const times = {hotctl: [], rsync: [], seed: [], seedCp: [], inProcess: []}
    const added = {du: [], store: [], changed: [], reported: []}
    const rss = []
    const seedBackups = []
    const contenders = {
      hotctl: async () => {
        const oldBytes = sizesIn(target, picked)
        const duBefore = await duBytes(stateDir)
        const storeBefore = fileBytes(path.join(stateDir, 'objects')) + fileBytes(path.join(stateDir, 'backups'))
        await syncDisks()
        const r = await hotctl(['deploy', '--skip-checks', '--json', '--config', config], src, timeBin, rssFile)
        const ch = r.json.changes ?? {}
        const n = (ch.added?.length ?? 0) + (ch.changed?.length ?? 0) + (ch.deleted?.length ?? 0)
        if (r.json.outcome !== 'deployed' || ch.changed?.length !== o.changed || n !== o.changed) {
          throw new Error(
            `hotctl deploy did not deploy exactly ${o.changed} changed files: outcome ${r.json.outcome}, changes ${JSON.stringify(ch).slice(0, 500)}`,
          )
        }
        times.hotctl.push(r.ms)
        times.inProcess.push(r.json.durationMs)
        added.du.push((await duBytes(stateDir)) - duBefore)
        added.store.push(
          fileBytes(path.join(stateDir, 'objects')) + fileBytes(path.join(stateDir, 'backups')) - storeBefore,
        )
        added.changed.push(oldBytes)
        added.reported.push(r.json.backup?.added ?? NaN)
        if (r.rssKb) rss.push(r.rssKb)
      },
      rsync: async () => {
        await syncDisks()
        times.rsync.push((await run('rsync', ['-a', '--delete', `${src}/`, `${copyR}/`])).ms)
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
      mutate(src, picked, gen.pool, rep, baseSec)
      const order = names.map((_, i) => names[(i + rep - 1) % names.length])
      for (const name of order) await contenders[name]()
      log(
        `rep ${rep}/${o.reps}: hotctl ${fmtMs(times.hotctl.at(-1))}, rsync ${fmtMs(times.rsync.at(-1))}, seed ${fmtMs(times.seed.at(-1))}`,
      )
    }
    for (const b of seedBackups) fs.rmSync(b, {recursive: true, force: true})
    // Same content everywhere?
    const check = await run('rsync', [
      '-rl',
      '--delete',
      '--dry-run',
      '--itemize-changes',
      '--checksum',
      '--exclude=.hotctl-release.json',
      `${src}/`,
      `${target}/`,
    ])
    const diffs = check.stdout.split('\n').filter((l) => l.trim())
    if (diffs.length)
      throw new Error(`target differs from source after the hotctl deploys:\n${diffs.slice(0, 10).join('\n')}`)

    // 4. Rollback: restores the backup taken before the last deploy.
    log('rollback')
    await syncDisks()
    const rb = await hotctl(['rollback', '--json', '--config', config], src, timeBin, rssFile)
    const wantTag = o.reps > 1 ? `rep${o.reps - 1}` : 'v0'
    const rolledBack = picked.filter((rel) =>
      fs.readFileSync(path.join(target, rel)).subarray(0, 200).toString('latin1').startsWith(`// ${rel} ${wantTag}\n`),
    ).length
    if (rolledBack !== picked.length)
      throw new Error(
        `rollback did not restore the previous version of the changed files (${rolledBack}/${picked.length})`,
      )

    // 5. One remote host over ssh.
    const remote = await remoteBench(o, work, src, picked, gen.pool, baseSec + 1000, timeBin, rssFile)

    // 6. Startup.
    log('--version / node -e 0')
    const version = []
    const nodeBare = []
    for (let i = 0; i < o.versionReps; i++) {
      nodeBare.push((await run(process.execPath, ['-e', '0'])).ms)
      version.push((await run(process.execPath, [BIN, '--version'])).ms)
    }

    // ------------------------------------------------------------ report
    const m = {
      hotctl: median(times.hotctl),
      rsync: median(times.rsync),
      seed: median(times.seed),
      version: median(version),
      node: median(nodeBare),
    }
    // The first measured deploy backs up the original versions, which the full initial backup
    // already holds: only later deploys store genuinely new old versions, so judge those.
    const from = o.reps > 1 ? 1 : 0
    const pick = (xs) => median(xs.slice(from))
    const lastAddedDu = pick(added.du)
    const lastChanged = pick(added.changed)
    const lastStore = pick(added.store)
    const reportedAdded = pick(added.reported)
    const rows = [
      [
        'first deploy (full initial backup)',
        fmtMs(first.ms),
        '1 run',
        first.rssKb ? `peak RSS ${(first.rssKb / 1024).toFixed(0)} MiB` : '',
      ],
      [
        `hotctl deploy --skip-checks (${o.changed} changed)`,
        fmtMs(m.hotctl),
        times.hotctl.map(fmtMs).join(' / '),
        `${(m.hotctl / m.rsync).toFixed(2)}× bare rsync`,
      ],
      ['bare rsync -a --delete (baseline 1)', fmtMs(m.rsync), times.rsync.map(fmtMs).join(' / '), '1.00×'],
      [
        'seed: cp -r backup + rsync (baseline 2)',
        fmtMs(m.seed),
        `${times.seed.map(fmtMs).join(' / ')} (cp -r: ${times.seedCp.map(fmtMs).join(' / ')})`,
        `${(m.seed / m.rsync).toFixed(2)}× bare rsync`,
      ],
      ['hotctl rollback', fmtMs(rb.ms), '1 run', `${(rb.ms / m.rsync).toFixed(2)}× bare rsync`],
      [
        'hotctl --version',
        fmtMs(m.version),
        version.map(fmtMs).join(' / '),
        `${(m.version / m.node).toFixed(2)}× node -e 0`,
      ],
      ['node -e 0', fmtMs(m.node), nodeBare.map(fmtMs).join(' / '), ''],
    ]
    const rm = remote.skipped ? undefined : {hotctl: median(remote.hotctl), rsync: median(remote.rsync)}
    if (rm)
      rows.push(
        [
          `hotctl deploy to 1 ssh host (${o.changed} changed)`,
          fmtMs(rm.hotctl),
          remote.hotctl.map(fmtMs).join(' / '),
          `${(rm.hotctl / rm.rsync).toFixed(2)}× rsync -e ssh`,
        ],
        ['bare rsync -a --delete -e ssh (same options)', fmtMs(rm.rsync), remote.rsync.map(fmtMs).join(' / '), '1.00×'],
      )
    const w = [0, 1, 2, 3].map((i) =>
      Math.max(...rows.map((r) => r[i].length), ['what', 'median', 'runs', 'ratio'][i].length),
    )
    const line = (r) =>
      r
        .map((c, i) => (i === 1 ? c.padStart(w[i]) : c.padEnd(w[i])))
        .join('  ')
        .trimEnd()
    const out = []
    out.push('')
    out.push(
      `hotctl deploy benchmark — ${gen.files.length} files in ${dirs} dirs, ${fmtBytes(gen.bytes)}; ${o.changed} files changed per deploy; median of ${o.reps} (--version: ${o.versionReps})`,
    )
    out.push(`node ${process.version}, ${os.cpus().length} CPUs, ${os.platform()} ${os.release()}, data in ${parent}`)
    out.push('')
    out.push(line(['what', 'median', 'runs', 'ratio']))
    out.push(line(w.map((n) => '-'.repeat(n))))
    for (const r of rows) out.push(line(r))
    out.push('')
    out.push(
      `backup growth per deploy (median over measured deploys ${from + 1}..${o.reps}${from ? '; deploy 1 re-backs up originals the initial backup already holds' : ''}):`,
    )
    out.push(
      `  du -sb state dir: +${fmtBytes(lastAddedDu)}   objects+backups files: +${fmtBytes(lastStore)}   hotctl reports added: ${fmtBytes(reportedAdded)}`,
    )
    out.push(
      `  changed bytes (old versions of the ${o.changed} files): ${fmtBytes(lastChanged)}   overhead: ${fmtBytes(lastAddedDu - lastChanged)}`,
    )
    out.push(
      `  per deploy: ${added.du.map((d, i) => `#${i + 1} +${fmtBytes(d)} for ${fmtBytes(added.changed[i])} changed`).join('; ')}`,
    )
    out.push(
      `hotctl deploy: ${fmtMs(median(times.inProcess))} inside deploy() (its durationMs; runs ${times.inProcess.map(fmtMs).join(' / ')}), the rest of ${fmtMs(m.hotctl)} is process start, module loading, config and exit`,
    )
    out.push(
      `peak RSS of hotctl deploy: ${rss.length ? `${(Math.max(...rss) / 1024).toFixed(0)} MiB (max of ${rss.length}; runs ${rss.map((k) => `${(k / 1024).toFixed(0)}`).join('/')} MiB)` : 'not measured (/usr/bin/time missing: apt-get install time)'}${rb.rssKb ? `; rollback ${(rb.rssKb / 1024).toFixed(0)} MiB` : ''}`,
    )
    out.push('')
    out.push('targets:')
    const t1 = m.hotctl / m.rsync
    const t2 = m.seed / m.hotctl
    const limit = lastChanged + 2 * MB
    out.push(
      `  ${mark(t1 <= 2.5)} deploy ≤ 2.5× bare rsync:            ${t1.toFixed(2)}× (${fmtMs(m.hotctl)} vs ${fmtMs(m.rsync)})`,
    )
    out.push(
      `  ${mark(t2 >= 2)} deploy ≥ 2× faster than seed's way:   ${t2.toFixed(2)}× faster (${fmtMs(m.hotctl)} vs ${fmtMs(m.seed)})`,
    )
    out.push(
      `  ${mark(lastAddedDu <= limit)} backup adds ≤ changed + 2 MiB:       +${fmtBytes(lastAddedDu)} vs limit ${fmtBytes(limit)} (${fmtBytes(lastChanged)} changed)`,
    )
    out.push(
      `  ${mark(m.version <= 300)} hotctl --version ≤ 300 ms:           ${fmtMs(m.version)} (node -e 0: ${fmtMs(m.node)}, ${(m.version / m.node).toFixed(2)}×)`,
    )
    if (rm)
      out.push(
        `  ${mark(rm.hotctl / rm.rsync <= 2.5)} remote deploy ≤ 2.5× rsync -e ssh:  ${(rm.hotctl / rm.rsync).toFixed(2)}× (${fmtMs(rm.hotctl)} vs ${fmtMs(rm.rsync)}; first remote deploy ${fmtMs(remote.first)}; peak RSS ${remote.rss.length ? `${(Math.max(...remote.rss) / 1024).toFixed(0)} MiB` : 'not measured'})`,
      )
    else out.push(`  remote deploy: skipped (${remote.skipped})`)
    out.push('')
    out.push(`bench took ${fmtMs(Date.now() - benchStart)}${o.keep ? `; data kept in ${work}` : ''}`)
    console.log(out.join('\n'))
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    if (!interrupted) cleanup()
  }
}

main().catch((err) => {
  console.error(`bench: FAILED: ${err.stack || err.message || err}`)
  process.exitCode = 1
})
