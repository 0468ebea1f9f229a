import type {ResolvedConfig} from '../config/resolve.js'
import {LocalTarget} from './local.js'
import type {Target} from './target.js'

/** The one place a Target class is named: the config decides which kind of target it is. */
export function openTarget(config: ResolvedConfig, opts: {warn: (message: string) => void}): Target {
  // Remote targets (config.host, or a fleet of one) get the SSH target: see issue 7.
  if (config.hosts.length > 0) throw new Error('remote targets are not implemented yet')
  return new LocalTarget(config, opts.warn)
}
