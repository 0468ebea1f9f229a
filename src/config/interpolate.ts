import {usageError} from '../errors.js'
import {registerSecret} from '../secrets.js'

/**
 * Replaces `${VAR}` in every string of the raw config with the environment's value. A missing
 * variable is an error naming it and the field. Substituted values are registered as secrets.
 */
export function interpolateEnv(value: unknown, env: NodeJS.ProcessEnv, file: string, path: string[] = []): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
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
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolateEnv(v, env, file, [...path, String(i)]))
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateEnv(v, env, file, [...path, k])]))
  }
  return value
}
