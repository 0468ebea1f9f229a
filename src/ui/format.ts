/** Sizes as people read them: bytes below 1 KiB, then KiB, MiB, GiB (powers of 1024). */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`
  return `${(n / 1024 ** 3).toFixed(2)} GiB`
}

/**
 * A duration written the way the config writes one: "55ms" below a second, "10s" or "12.3s"
 * below a minute, then "2m" or "2m 5s". Every duration hotctl prints goes through here.
 */
export function formatDuration(ms: number): string {
  const n = Math.max(0, Math.round(ms))
  if (n < 1000) return `${n}ms`
  const tenths = Math.round(n / 100)
  if (tenths < 600) return tenths % 10 === 0 ? `${tenths / 10}s` : `${(tenths / 10).toFixed(1)}s`
  const s = Math.round(n / 1000)
  return s % 60 === 0 ? `${s / 60}m` : `${Math.floor(s / 60)}m ${s % 60}s`
}

/** A rate in bytes per second, from bytes over milliseconds. */
export function formatRate(bytes: number, ms: number): string {
  return `${formatBytes(ms > 0 ? Math.round((bytes * 1000) / ms) : 0)}/s`
}
