/**
 * One throwaway OpenSSH host for the SSH target's end-to-end tests: a real sshd on a loopback
 * address (127.0.0.x, port picked by the OS), generated host and client keys, a known_hosts and an
 * ssh_config hotctl gets through `ssh.config`. The "host" shares this machine's filesystem (the
 * target is a temp path), which is all these tests need: every byte still goes through ssh, the
 * remote shell and rsync over ssh. (The fleet test bed, test/fleet, adds mount namespaces.)
 */
import {spawn, spawnSync} from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

/**
 * @typedef {object} SshHost
 * @property {string} alias host alias in `sshConfig` (also the known_hosts name, via HostKeyAlias)
 * @property {string} address
 * @property {number} port
 * @property {string} dir
 * @property {string} sshConfig ssh_config for hotctl's `ssh.config` (and for `ssh -F`)
 * @property {string} knownHosts
 * @property {() => Promise<void>} stop
 */

/** @type {SshHost[]} */
const hosts = []

/** @param {string} address @returns {Promise<number>} */
async function freePort(address) {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, address, () => {
      const {port} = /** @type {import('node:net').AddressInfo} */ (srv.address())
      srv.close(() => resolve(port))
    })
  })
}

/** @param {string} file */
function keygen(file) {
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file], {encoding: 'utf8'})
  if (r.status !== 0) throw new Error(`ssh-keygen: ${r.stderr}`)
  return fs.readFileSync(`${file}.pub`, 'utf8').trim()
}

/**
 * Starts an sshd accepting root by key; `sshdLines` adds sshd_config lines (e.g. SetEnv, ForceCommand);
 * `pidNamespace`: the host gets process ids of its own (a pid on the host means nothing here).
 */
/**
 * @param {{address?: string, sshdLines?: string[], alias?: string, hideTools?: string[], pidNamespace?: boolean}} [opts]
 * @returns {Promise<SshHost>}
 */
export async function startSshHost(opts = {}) {
  const address = opts.address ?? '127.0.0.2'
  const alias = opts.alias ?? `testhost${hosts.length + 1}`
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hotctl-sshd-'))
  fs.chmodSync(dir, 0o700)
  const hostPub = keygen(path.join(dir, 'host_ed25519'))
  const clientPub = keygen(path.join(dir, 'id_ed25519'))
  fs.writeFileSync(path.join(dir, 'authorized_keys'), `${clientPub}\n`)
  fs.mkdirSync('/run/sshd', {recursive: true, mode: 0o755})
  const port = await freePort(address)
  const sshdConfig = path.join(dir, 'sshd_config')
  fs.writeFileSync(
    sshdConfig,
    [
      `ListenAddress ${address}:${port}`,
      `HostKey ${dir}/host_ed25519`,
      `PidFile ${dir}/sshd.pid`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'MaxSessions 50',
      'MaxStartups 50:30:100',
      'LogLevel ERROR',
      ...(opts.sshdLines ?? []),
      '',
    ].join('\n'),
  )
  const knownHosts = path.join(dir, 'known_hosts')
  fs.writeFileSync(knownHosts, `${alias} ${hostPub.split(' ').slice(0, 2).join(' ')}\n`)
  const sshConfig = path.join(dir, 'ssh_config')
  fs.writeFileSync(
    sshConfig,
    [
      `Host ${alias}`,
      `  HostName ${address}`,
      `  Port ${port}`,
      '  User root',
      `  IdentityFile ${dir}/id_ed25519`,
      '  IdentitiesOnly yes',
      `  HostKeyAlias ${alias}`,
      `  UserKnownHostsFile ${knownHosts}`,
      '  GlobalKnownHostsFile /dev/null',
      '  StrictHostKeyChecking yes',
      '  LogLevel ERROR',
      '',
    ].join('\n'),
  )
  // A private mount namespace: root's login shell reads ~/.bashrc over ssh (bash's sshd rule), which
  // may be slow or print; the host gets an empty one. `hideTools` covers binaries with an empty
  // non-executable file, for "tool missing on the host" tests.
  const empty = path.join(dir, 'empty')
  fs.writeFileSync(empty, '')
  const mounts = [
    ...['/root/.bashrc', '/root/.profile'].filter((f) => fs.existsSync(f)),
    ...(opts.hideTools ?? []).map((t) => spawnSync('sh', ['-c', `command -v ${t}`], {encoding: 'utf8'}).stdout.trim()),
  ].filter(Boolean)
  const script = [...mounts.map((m) => `mount --bind "$1" '${m}' || exit 1`), 'exec /usr/sbin/sshd -D -e -f "$2"'].join(
    '\n',
  )
  const proc = spawn(
    'unshare',
    [
      '--mount',
      '--propagation',
      'private',
      // unshare then ignores SIGTERM and waits: SIGKILL it, its child (the namespace's init) follows.
      ...(opts.pidNamespace ? ['--pid', '--fork', '--mount-proc', '--kill-child'] : []),
      'sh',
      '-c',
      script,
      'sh',
      empty,
      sshdConfig,
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  )
  let log = ''
  proc.stderr.on('data', (d) => (log += String(d)))
  const deadline = Date.now() + 10_000
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, address, () => {
        s.destroy()
        resolve(true)
      })
      s.on('error', () => resolve(false))
    })
    if (ok) break
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`sshd did not start: ${log}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  /** @type {SshHost} */
  const host = {
    alias,
    address,
    port,
    dir,
    sshConfig,
    knownHosts,
    stop: async () => {
      if (proc.exitCode === null) {
        proc.kill(opts.pidNamespace ? 'SIGKILL' : 'SIGTERM')
        await new Promise((r) => proc.once('exit', r))
      }
      fs.rmSync(dir, {recursive: true, force: true})
    },
  }
  hosts.push(host)
  return host
}

export async function stopSshHosts() {
  await Promise.all(hosts.splice(0).map((h) => h.stop()))
}
