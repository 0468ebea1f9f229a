import fs from 'node:fs'
import type {ResolvedConfig} from '../config/resolve.js'
import {type SshConnection, SshError} from '../ssh/connection.js'
import {describeOwner, isStale, parseLock} from '../state/lock.js'
import {dirCheck, rsyncCheck} from './local-preflight.js'
import type {PreflightItem, PreflightOptions} from './target.js'

/** What the host needs (sshd, POSIX sh, rsync, coreutils, GNU findutils, awk) and the state of its target and state dir, one `key value` line each. */
const FACTS = `t=$1; s=$2
for tool in rsync sha256sum stat readlink sync du find awk base64 xargs; do
  command -v "$tool" >/dev/null 2>&1 || printf 'missing %s\\n' "$tool"
done
# Planning lists the host's tree with GNU find's -printf (BusyBox and BSD find lack it).
if command -v find >/dev/null 2>&1; then find / -maxdepth 0 -printf '' 2>/dev/null || echo 'missing find -printf (GNU findutils)'; fi
command -v rsync >/dev/null 2>&1 && printf 'rsync %s\\n' "$(rsync --version 2>/dev/null | head -n 1)"
near() { p=$1; while [ ! -e "$p" ]; do p=$(dirname -- "$p"); done; printf '%s' "$p"; }
dir() {
  if [ -d "$2" ]; then
    if [ -w "$2" ]; then echo "$1 writable"; else echo "$1 readonly"; fi
  elif [ -e "$2" ]; then echo "$1 notdir"
  else n=$(near "$2"); if [ -w "$n" ]; then echo "$1 creatable $n"; else echo "$1 uncreatable $n"; fi
  fi
}
dir target "$t"
dir state "$s"
printf 'devices %s %s\\n' "$(stat -c %d -- "$(near "$t")")" "$(stat -c %d -- "$(near "$s")")"
printf 'lock '; cat -- "$s/lock" 2>/dev/null; echo
exit 0`

/**
 * Before anything is touched: rsync here, the source, the host reachable with a trusted key, the
 * tools the host needs, target and state dir writable (or creatable) on one filesystem, and whose
 * lock, if any, is on the host. Each failed item names the host and what to do.
 */
export async function sshPreflight(
  conn: SshConnection,
  config: ResolvedConfig,
  opts: PreflightOptions,
): Promise<PreflightItem[]> {
  const host = conn.host.name
  // This machine's rsync is checked while the host is reached (and once per process: hosts share it).
  const [local, facts] = await Promise.all([
    rsyncCheck(),
    conn.must('preflight', FACTS, [config.target, config.stateDir]).then(
      (b) => b.toString('utf8'),
      (err: unknown) => ({err}),
    ),
  ])
  const items: PreflightItem[] = [local]
  if (opts.source) items.push(dirCheck('source', config.source, fs.constants.R_OK))
  if (typeof facts !== 'string') {
    const {err} = facts
    if (!(err instanceof SshError)) throw err
    const name = err.kind === 'host-key' ? `host key of ${host}` : `ssh ${host}`
    items.push({name, ok: false, detail: err.message.replace(/^ssh: /, ''), hint: err.hint})
    return items
  }
  const out = facts
  items.push({name: `ssh ${host}`, ok: true, detail: `${conn.destination} reached`})
  const lines = out.split('\n')
  const value = (key: string) => lines.find((l) => l.startsWith(`${key} `))?.slice(key.length + 1)
  const missing = lines.filter((l) => l.startsWith('missing ')).map((l) => l.slice(8))
  items.push(
    missing.length
      ? {
          name: `tools on ${host}`,
          ok: false,
          detail: `${host} lacks ${missing.join(', ')} (on the PATH of a non-interactive ssh session)`,
          hint: `Install ${missing.includes('rsync') ? 'rsync' : ''}${missing.some((m) => m !== 'rsync') ? ' coreutils/findutils' : ''} on ${host}: a host needs only sshd, a POSIX sh, rsync, coreutils, GNU findutils and awk.`,
        }
      : {
          name: `tools on ${host}`,
          ok: true,
          detail: `rsync, sha256sum, stat, readlink, sync, du, base64, GNU find and xargs, awk present`,
        },
  )
  const rsyncV = /version\s+(\d+)\.(\d+)/.exec(value('rsync') ?? '')
  if (rsyncV && (Number(rsyncV[1]) < 3 || (Number(rsyncV[1]) === 3 && Number(rsyncV[2]) < 1)))
    items.push({
      name: `rsync on ${host}`,
      ok: false,
      detail: `${value('rsync')}: hotctl needs 3.1 or newer`,
      hint: `Install a newer rsync on ${host}.`,
    })
  const dirItem = (key: string, what: string, p: string, missingHint: string | undefined): PreflightItem => {
    const [state, near] = (value(key) ?? 'unknown').split(/ (.*)/s)
    const at = `${host}:${p}`
    if (state === 'writable') return {name: what, ok: true, detail: `${at} writable`}
    if (state === 'readonly')
      return {name: what, ok: false, detail: `${at} is not writable`, hint: `Fix the permissions of ${at}.`}
    if (state === 'notdir') return {name: what, ok: false, detail: `${at} is not a directory`}
    if (state === 'creatable' && !missingHint)
      return {name: `${what} (to be created)`, ok: true, detail: `${host}:${near} writable`}
    if (state === 'creatable') return {name: what, ok: false, detail: `${at} does not exist`, hint: missingHint}
    return {name: what, ok: false, detail: `${at} does not exist and ${host}:${near} is not writable`}
  }
  items.push(
    dirItem(
      'target',
      'target',
      config.target,
      opts.createTarget
        ? undefined
        : 'Check the `target` path in the config; to deploy into a new directory, pass --create-target.',
    ),
  )
  items.push(dirItem('state', 'state dir', config.stateDir, undefined))
  const [dt, ds] = (value('devices') ?? '').split(' ')
  if (dt && ds)
    items.push({
      name: 'same filesystem',
      ok: dt === ds,
      detail:
        dt === ds
          ? `${config.stateDir} is on the target's filesystem`
          : `${config.stateDir} is on another filesystem than ${config.target} on ${host}`,
      hint:
        dt === ds
          ? undefined
          : 'Set `stateDir` to a directory beside the target (on its filesystem), or leave it out for the default.',
    })
  const lock = parseLock(value('lock') ?? '')
  if (lock) {
    // Not a failure here: deploy and rollback report a held lock as exit 5 when they try to take it.
    const stale = isStale(lock)
    items.push({
      name: `lock on ${host}`,
      ok: true,
      detail: stale
        ? `stale lock of ${describeOwner(lock)} (cleared by the next operation)`
        : `held by ${describeOwner(lock)}`,
    })
  }
  return items
}
