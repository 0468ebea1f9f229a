const t0 = performance.now()
if (process.argv[2] === 'index') require('@oclif/core')
else { require('@oclif/core/command'); require('@oclif/core/execute'); require('@oclif/core/flags'); require('@oclif/core/args'); require('@oclif/core/config') }
const t1 = performance.now()
const files = Object.keys(require.cache)
console.log(process.argv[2], files.length, (t1 - t0).toFixed(1), 'help:', files.filter((f) => f.includes('/help/')).length)
if (process.env.LIST) console.log(files.map((f) => f.replace(/.*node_modules\//, '')).join('\n'))
