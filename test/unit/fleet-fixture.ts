import type {HostSpec, ResolvedConfig} from '../../src/config/resolve.js'
import {forHost} from '../../src/config/hosts.js'
import type {FleetContext} from '../../src/pipeline/fleet-hosts.js'
import {COMMAND_SERVICE, FakeTarget, fakeConfig} from './fake-target.js'

/**
 * A fleet of in-memory targets: one FakeTarget per host name, every host on release R0 with the
 * same live tree, the same source to deploy. `said` collects each host's messages, prefixed.
 */
export const R0 = '20240101000000'
export const LIVE = {'app.py': 'v1', 'old.py': 'old'}
export const SOURCE = {'app.py': 'v2', 'new.py': 'new'}

export interface FakeFleet {
  fleet: FleetContext
  fakes: Map<string, FakeTarget>
  fake(name: string): FakeTarget
  said: string[]
  ac: AbortController
  config: ResolvedConfig
}

export function fakeFleet(
  names: string[],
  over: Partial<ResolvedConfig> = {},
  fleetOver: Partial<ResolvedConfig['fleet']> = {},
): FakeFleet {
  const hosts: HostSpec[] = names.map((name) => ({name, address: `10.0.0.${names.indexOf(name) + 1}`, vars: {}}))
  const base = fakeConfig({...COMMAND_SERVICE, ...over})
  const config: ResolvedConfig = {...base, hosts, fleet: {...base.fleet, ...fleetOver}}
  const fakes = new Map<string, FakeTarget>()
  for (const name of names) {
    const f = new FakeTarget({source: SOURCE, description: `${name}:/srv/app`})
    f.setLive(LIVE, R0)
    fakes.set(name, f)
  }
  const said: string[] = []
  const ac = new AbortController()
  const ui = {json: true, say: (m: string) => void said.push(m)}
  const fleet: FleetContext = {
    config,
    ui,
    signal: ac.signal,
    env: {},
    host: (h) => ({
      config: forHost(config, h),
      target: fakes.get(h.name)!,
      ui: {json: true, say: (m: string) => void said.push(`[${h.name}] ${m}`)},
      signal: ac.signal,
      env: {HOTCTL_HOST: h.name},
    }),
  }
  return {fleet, fakes, fake: (n) => fakes.get(n)!, said, ac, config}
}
