/** Sizes as people read them: bytes below 1 KiB, then KiB, MiB, GiB (powers of 1024). */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`
  return `${(n / 1024 ** 3).toFixed(2)} GiB`
}

/** A duration in seconds with one decimal: "12.3s". */
export function formatDuration(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`
}
