#!/usr/bin/env node
// Development entry: same as run.js but against a fresh `npm run build`.
if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '') process.env.FORCE_COLOR = '0'
const {execute} = await import('@oclif/core')
await execute({development: true, dir: import.meta.url})
