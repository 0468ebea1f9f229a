import type {HotctlConfig} from './config/schema.js'

export type {HotctlConfig} from './config/schema.js'

/** Identity helper for typed config files: `export default defineConfig({...})`. */
export function defineConfig(config: HotctlConfig): HotctlConfig {
  return config
}
