#!/usr/bin/env node
// Colour is decided once (src/ui/color.ts), before chalk, listr2 (colorette) and oclif (ansis)
// load: they read the environment differently, so it is normalised first.
const {applyColorPolicy} = await import('../dist/ui/color.js')
applyColorPolicy()
const {execute} = await import('@oclif/core')
await execute({dir: import.meta.url})
