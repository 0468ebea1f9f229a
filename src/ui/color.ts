/**
 * The one colour decision. chalk (supports-color), listr2 (colorette) and oclif (ansis) each read
 * NO_COLOR / FORCE_COLOR differently (colorette takes any FORCE_COLOR, even 0, as "on"; chalk
 * ignores NO_COLOR), so bin/run.js calls `applyColorPolicy` before any of them loads: it decides
 * once and rewrites the environment so that every library agrees (NO_COLOR=1 and FORCE_COLOR=0
 * when off, FORCE_COLOR=N and no NO_COLOR when on). Child processes (checks, triggers) see the same
 * decision.
 *
 * This module imports nothing: it runs before the libraries load.
 */

export type ColorLevel = 0 | 1 | 2 | 3

export interface ColorInputs {
  env: Record<string, string | undefined>
  argv: string[]
  /** Whether stderr (where progress and errors go) is a terminal. */
  isTTY: boolean
}

/** CI services whose log viewers render ANSI colour (a plain `CI=1` does not say so). */
const COLOUR_CI = ['GITHUB_ACTIONS', 'GITLAB_CI', 'BUILDKITE', 'CIRCLECI']

/**
 * In order: `--no-color` → none; `NO_COLOR` (non-empty) → none; `FORCE_COLOR` 0/false → none,
 * 1..3 (or empty/true → 1) → that level; `TERM=dumb` → none; a terminal → its level (COLORTERM
 * truecolor → 3, a 256-colour TERM → 2, else 1); no terminal → colour only in a CI whose log
 * renders it (GitHub Actions, GitLab, Buildkite, CircleCI), else none.
 */
export function decideColor({env, argv, isTTY}: ColorInputs): ColorLevel {
  if (argv.includes('--no-color')) return 0
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return 0
  const force = env.FORCE_COLOR
  if (force !== undefined) {
    if (force === '' || force === 'true') return 1
    if (force === 'false') return 0
    const n = Number.parseInt(force, 10)
    if (Number.isFinite(n)) return Math.max(0, Math.min(3, n)) as ColorLevel
  }
  if (env.TERM === 'dumb') return 0
  if (isTTY) {
    if (env.COLORTERM === 'truecolor' || env.COLORTERM === '24bit') return 3
    return /256/.test(env.TERM ?? '') ? 2 : 1
  }
  return env.CI !== undefined && COLOUR_CI.some((k) => env[k] !== undefined) ? 1 : 0
}

/**
 * The decision for stdout, where results go: `deploy > out.txt` from a terminal gets no escape codes.
 * Kept on globalThis: bin/run.js loads this module from dist/ui, the bundled CLI has its own copy.
 */
const decided = globalThis as {hotctlStdoutColor?: ColorLevel}

/**
 * Decides (for stderr, and separately for stdout) and writes the stderr decision into `env` so
 * that chalk, colorette and ansis all follow it.
 */
export function applyColorPolicy(
  env: Record<string, string | undefined> = process.env,
  argv: string[] = process.argv,
  tty: {stderr: boolean; stdout: boolean} = {
    stderr: Boolean(process.stderr.isTTY),
    stdout: Boolean(process.stdout.isTTY),
  },
): ColorLevel {
  decided.hotctlStdoutColor = decideColor({env, argv, isTTY: tty.stdout})
  const level = decideColor({env, argv, isTTY: tty.stderr})
  if (level === 0) {
    // Both: colorette only reads NO_COLOR as "off" (it takes FORCE_COLOR=0 as "on"), chalk only FORCE_COLOR=0.
    env.NO_COLOR = '1'
    env.FORCE_COLOR = '0'
  } else {
    env.FORCE_COLOR = String(level)
    delete env.NO_COLOR
  }
  return level
}

/** Whether stdout may carry colour (what `applyColorPolicy` decided; off when it never ran). */
export const stdoutColor = (): boolean => (decided.hotctlStdoutColor ?? 0) > 0
