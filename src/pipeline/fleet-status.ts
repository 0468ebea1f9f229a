import {errorMessage, EXIT} from '../errors.js'
import {type BackupsListing, listBackups} from './backups.js'
import {type FleetContext, openHosts} from './fleet-hosts.js'
import {INITIAL} from './releases.js'
import {collectStatus, type StatusReport} from './status.js'

export interface FleetStatus {
  exitCode: number
  target: string
  /** Every reachable host has the same live release (and no host is unreachable). */
  consistent: boolean
  /** Live release → the hosts holding it (`none`: no marker; `unreachable`: could not be read). */
  releases: Record<string, string[]>
  hosts: {name: string; address: string; status?: StatusReport; error?: string}[]
}

/**
 * `hotctl status` on a fleet: each host's status (read in parallel), and whether the fleet runs
 * one release everywhere. Exit 4 when any host needs attention or cannot be read (so a cut host
 * that a restore could not reach stays visible), 0 otherwise.
 */
export async function fleetStatus(fleet: FleetContext): Promise<FleetStatus> {
  const slots = openHosts(fleet)
  const hosts: FleetStatus['hosts'] = await Promise.all(
    slots.map(async (s) => {
      const base = {name: s.host.name, address: s.host.address}
      try {
        return {...base, status: await collectStatus(s.ctx)}
      } catch (err) {
        return {...base, error: errorMessage(err)}
      }
    }),
  )
  const releases: Record<string, string[]> = {}
  for (const h of hosts) {
    const key = h.error ? 'unreachable' : (h.status!.release?.id ?? 'none')
    ;(releases[key] ??= []).push(h.name)
  }
  const bad = hosts.some((h) => h.error || h.status!.needsAttention)
  return {
    exitCode: bad ? EXIT.needsAttention : EXIT.ok,
    target: fleet.config.target,
    consistent: Object.keys(releases).length === 1 && !releases.unreachable,
    releases,
    hosts,
  }
}

export interface FleetBackups {
  exitCode: number
  target: string
  /** Each `rollback --to` value and the hosts that can reach it (their live release included); `everywhere` when all can. */
  targets: {to: string; release: string | null; hosts: string[]; everywhere: boolean}[]
  hosts: {name: string; address: string; backups?: BackupsListing; error?: string}[]
}

/** `hotctl backups` on a fleet: each host's listing, and which releases every host can roll back to. */
export async function fleetBackups(fleet: FleetContext): Promise<FleetBackups> {
  const slots = openHosts(fleet)
  const hosts: FleetBackups['hosts'] = await Promise.all(
    slots.map(async (s) => {
      const base = {name: s.host.name, address: s.host.address}
      try {
        return {...base, backups: await listBackups(s.ctx)}
      } catch (err) {
        return {...base, error: errorMessage(err)}
      }
    }),
  )
  const byTo = new Map<string, {to: string; release: string | null; hosts: string[]}>()
  const add = (h: {name: string}, to: string, release: string | null) => {
    const row = byTo.get(to) ?? {to, release, hosts: []}
    row.hosts.push(h.name)
    byTo.set(to, row)
  }
  for (const h of hosts) {
    if (!h.backups) continue
    for (const t of h.backups.targets) add(h, t.to, t.release)
    // `--to` the live release is valid too: it confirms it and changes nothing.
    add(h, h.backups.liveRelease ?? INITIAL, h.backups.liveRelease)
  }
  const targets = [...byTo.values()]
    .sort((a, b) => (a.to === INITIAL ? 1 : b.to === INITIAL ? -1 : a.to < b.to ? 1 : -1))
    .map((t) => ({...t, everywhere: t.hosts.length === hosts.length}))
  return {
    exitCode: hosts.some((h) => h.error) ? EXIT.failed : EXIT.ok,
    target: fleet.config.target,
    targets,
    hosts,
  }
}
