import {EXIT, HotctlError} from '../errors.js'
import {probeStatus} from '../service/status-probe.js'
import type {PreflightItem, PreflightOptions} from '../target/target.js'
import type {OpContext} from './context.js'

/**
 * What `check` reports and what deploy and rollback require before touching anything: rsync,
 * source, target, state dir, and each status URL answering JSON with the version field.
 */
export async function preflight(ctx: OpContext, opts: PreflightOptions): Promise<PreflightItem[]> {
  const [items, probes] = await Promise.all([
    ctx.target.preflight(opts),
    Promise.all(
      ctx.config.services.filter((s) => s.status).map((s) => probeStatus({...s, status: s.status!}, ctx.signal)),
    ),
  ])
  return [...items, ...probes]
}

/** Exit 1, naming every failed item and what to do, when the preflight did not pass. */
export function requirePreflight(items: PreflightItem[]): void {
  const bad = items.filter((p) => !p.ok)
  if (bad.length === 0) return
  const hints = [...new Set(bad.map((p) => p.hint).filter(Boolean))]
  throw new HotctlError(
    `preflight failed: ${bad.map((p) => `${p.name}: ${p.detail}`).join('; ')}`,
    EXIT.failed,
    `${hints.join(' ')}${hints.length ? ' ' : ''}Nothing was touched; \`hotctl check\` shows the whole preflight.`,
    {preflight: items},
  )
}
