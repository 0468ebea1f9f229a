import {usageError} from '../errors.js'
import type {HostSpec, ResolvedConfig} from './resolve.js'

/** Two hosts with one name would share a row, a lock order and a `--limit`: refused. */
export function requireUniqueNames(hosts: HostSpec[], where: string): void {
  const seen = new Set<string>()
  for (const h of hosts) {
    if (seen.has(h.name)) {
      throw usageError(
        `${where}: host ${h.name} is listed twice`,
        'Give every host its own name (hosts: entries take `name:`; an inventory names each host once).',
      )
    }
    seen.add(h.name)
  }
}

/**
 * `--limit NAME|GLOB[,…]`, as Ansible's: comma-separated names or globs (`*`, `?`) matched against
 * host names (and addresses); `!PATTERN` leaves hosts out. A pattern that matches nothing is a
 * usage error naming it: a typo must not shrink a deploy silently.
 */
export function limitHosts(hosts: HostSpec[], limit: string | undefined): HostSpec[] {
  if (limit === undefined) return hosts
  const patterns = limit
    .split(/[,:]/)
    .map((p) => p.trim())
    .filter(Boolean)
  if (patterns.length === 0)
    throw usageError(`--limit "${limit}" names no host`, 'Pass host names or globs: --limit web1,web*')
  const include = patterns.filter((p) => !p.startsWith('!'))
  const exclude = patterns.filter((p) => p.startsWith('!')).map((p) => p.slice(1))
  const names = hosts.map((h) => h.name).join(', ')
  for (const p of [...include, ...exclude]) {
    if (!hosts.some((h) => matches(p, h))) {
      throw usageError(`--limit: ${p} matches no host`, `Hosts in this config: ${names}.`)
    }
  }
  const chosen = hosts.filter(
    (h) => (include.length === 0 || include.some((p) => matches(p, h))) && !exclude.some((p) => matches(p, h)),
  )
  if (chosen.length === 0) throw usageError(`--limit "${limit}" leaves no host`, `Hosts in this config: ${names}.`)
  return chosen
}

function matches(pattern: string, h: HostSpec): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  )
  return re.test(h.name) || re.test(h.address)
}

/** The config with `--limit` applied; a local target has no hosts to limit. */
export function withLimit(config: ResolvedConfig, limit: string | undefined): ResolvedConfig {
  if (limit === undefined) return config
  if (config.hosts.length === 0)
    throw usageError('--limit applies to remote targets (hosts, inventory or user@host:/path)', 'Leave --limit out.')
  return {...config, hosts: limitHosts(config.hosts, limit)}
}

/**
 * Splits hosts into waves. Each entry is how many hosts have been reached once that wave is done
 * (cumulative): a count, or a percentage of the fleet rounded up. `[1, '25%', '100%']` is a canary
 * host, then up to a quarter of the fleet, then the rest. Waves that would be empty are dropped;
 * hosts the last entry leaves out form a final wave (no host is ever skipped).
 */
export function planWaves<T>(hosts: T[], waves: (number | string)[]): T[][] {
  const n = hosts.length
  const out: T[][] = []
  let reached = 0
  for (const w of waves) {
    const target = typeof w === 'number' ? w : Math.ceil((Number.parseFloat(w) / 100) * n - 1e-9) // 25% of 6 → 2, 100% → n
    const upTo = Math.min(n, Math.max(reached, target))
    if (upTo > reached) out.push(hosts.slice(reached, upTo))
    reached = upTo
  }
  if (reached < n) out.push(hosts.slice(reached))
  return out
}

/** `${host}`, `${host.name}`, `${host.vars.NAME}`: per-host values in HTTP URLs. */
const HOST_REF = /\$\{host(?:\.(name)|\.vars\.([A-Za-z_][A-Za-z0-9_-]*))?\}/g

/** Does the text use a per-host reference? (Only remote targets can fill it.) */
export const usesHostRef = (text: string) => /\$\{host(?:\.[^}]*)?\}/.test(text)

/** The config as seen by one host: `host` set, and per-host references in URLs filled in. */
export function forHost(config: ResolvedConfig, host: HostSpec): ResolvedConfig {
  const fill = (url: string, field: string) =>
    url.replace(HOST_REF, (_m, name: string | undefined, v: string | undefined) => {
      if (name) return host.name
      if (v) {
        const value = host.vars[v]
        if (value === undefined) {
          throw usageError(
            `${config.file}: ${field}: \${host.vars.${v}} is not set for host ${host.name}`,
            `Add ${v} to that host's vars (hosts: {vars: {${v}: …}}, or a host/group var in the inventory).`,
          )
        }
        return value
      }
      return host.address.includes(':') ? `[${host.address}]` : host.address
    })
  const services = config.services.map((s, i) => ({
    ...s,
    ...(s.trigger && 'url' in s.trigger
      ? {trigger: {...s.trigger, url: fill(s.trigger.url, `services.${i}.trigger.url`)}}
      : {}),
    ...(s.status ? {status: {...s.status, url: fill(s.status.url, `services.${i}.status.url`)}} : {}),
  }))
  const smoke = config.smoke.map((s, i) => ('url' in s ? {...s, url: fill(s.url, `smoke.${i}.url`)} : s))
  return {...config, host, services, smoke}
}

/** Every HTTP URL of the config, with the field that holds it (for checking per-host references). */
export function httpUrls(config: Pick<ResolvedConfig, 'services' | 'smoke'>): {field: string; url: string}[] {
  const urls: {field: string; url: string}[] = []
  config.services.forEach((s, i) => {
    if (s.trigger && 'url' in s.trigger) urls.push({field: `services.${i}.trigger.url`, url: s.trigger.url})
    if (s.status) urls.push({field: `services.${i}.status.url`, url: s.status.url})
  })
  config.smoke.forEach((s, i) => {
    if ('url' in s) urls.push({field: `smoke.${i}.url`, url: s.url})
  })
  return urls
}
