// The CLI's entry (bin/run.js): oclif itself, bundled by esbuild.config.mjs into the same chunks
// the commands use, so one copy of @oclif/core is loaded, from a few files.
export {execute} from '@oclif/core'
