import type {ResolvedConfig} from '../config/resolve.js'
import {LocalTarget} from './local.js'
import type {Target} from './target.js'

type SshModule = typeof import('./ssh.js')
let ssh: SshModule | undefined

/** A config that names a host (one, or a fleet's): its targets are SshTargets (remoteHost). */
const namesAHost = (config: ResolvedConfig) => config.host !== undefined || config.hosts.length > 0

/**
 * Loads the remote target's code when `config` names a host; openTarget needs it then. A local
 * target's run loads none of it (the ssh modules and the zlib they load: ~6 ms of every start).
 */
export async function loadTargetKinds(config: ResolvedConfig): Promise<void> {
  if (namesAHost(config)) ssh ??= await import('./ssh.js')
}

/** The one place a Target class is named: the config decides which kind of target it is. */
export function openTarget(config: ResolvedConfig, opts: {warn: (message: string) => void}): Target {
  if (namesAHost(config)) {
    if (!ssh) throw new Error('openTarget: a config naming a host, before loadTargetKinds(config)')
    const host = ssh.remoteHost(config)
    if (host) return new ssh.SshTarget(config, host, opts.warn)
  }
  // A fleet of several hosts is driven per host (forHost), each an SshTarget.
  if (config.hosts.length > 1) throw new Error('a fleet is opened one host at a time (forHost(config, host))')
  return new LocalTarget(config, opts.warn)
}
