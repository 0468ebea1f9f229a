import {usageError} from '../errors.js'
import {registerSecret} from '../secrets.js'

/** `${host}` (and `${host.name}`, `${host.vars.X}`, which the pattern below never matches) is reserved. */
const HOST_REF = 'host'

/**
 * Replaces `${VAR}` in the strings of the raw config with the environment's value (shell commands
 * excepted, see below). A missing variable is an error naming it and the field. Every value read
 * is registered as a secret.
 */
export function interpolateEnv(value: unknown, env: NodeJS.ProcessEnv, file: string, path: string[] = []): unknown {
  if (typeof value === 'string') {
    const substituted = value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (m, name: string) => {
      if (name === HOST_REF) return m // per host, filled in by forHost (config/hosts.ts), never from the environment
      const v = env[name]
      if (v === undefined) {
        throw usageError(
          `${file}: ${path.join('.') || '(root)'}: environment variable ${name} is not set`,
          `Export ${name} before running hotctl (it is read from the environment, never stored).`,
        )
      }
      registerSecret(v)
      return v
    })
    // A shell command keeps `${VAR}` for the shell to expand from the environment: an env value
    // pasted into the command string would be shell code (think of a branch name in CI).
    return isShellCommand(path) ? value : substituted
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolateEnv(v, env, file, [...path, String(i)]))
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateEnv(v, env, file, [...path, k])]))
  }
  return value
}

/**
 * Shell-string positions: checks and every `command` string, except the elements of an `{argv}`
 * list (`…argv.N`; under checks at least `checks.NAME.argv.N`, so a check *named* argv is a shell string).
 */
function isShellCommand(path: string[]): boolean {
  const argvElement =
    path.length >= 2 &&
    path.at(-2) === 'argv' &&
    /^\d+$/.test(path.at(-1)!) &&
    (path[0] !== 'checks' || path.length >= 4)
  if (argvElement) return false
  const last = path.at(-1)!
  const stepCommand = path[0] === 'steps' && path.length === 3 && ['run', 'backup', 'undo'].includes(last)
  const maintenanceCommand = path[0] === 'maintenance' && path.length === 2 && ['on', 'off'].includes(last)
  return path[0] === 'checks' || last === 'command' || stepCommand || maintenanceCommand
}
