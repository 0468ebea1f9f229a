#!/usr/bin/env node
// Colour is decided once, before chalk, listr2 (colorette) and oclif (ansis) load: they read the
// environment differently, so normalise it here.
if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '') process.env.FORCE_COLOR = '0'
const {execute} = await import('@oclif/core')
await execute({dir: import.meta.url})
