import type {ResolvedConfig} from '../config/resolve.js'
import {LocalTarget} from './local.js'
import {remoteHost, SshTarget} from './ssh.js'
import type {Target} from './target.js'

/** The one place a Target class is named: the config decides which kind of target it is. */
export function openTarget(config: ResolvedConfig, opts: {warn: (message: string) => void}): Target {
  const host = remoteHost(config)
  if (host) return new SshTarget(config, host, opts.warn)
  // A fleet of several hosts is driven per host (forHost), each an SshTarget.
  if (config.hosts.length > 1) throw new Error('a fleet is opened one host at a time (forHost(config, host))')
  return new LocalTarget(config, opts.warn)
}
