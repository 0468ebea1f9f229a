import chalk from 'chalk'
import type {InitResult} from '../init/init.js'

/** `hotctl init`: the file written, the target and checks it holds, what was set up, the next steps. */
export function renderInit(r: InitResult): string {
  const checks = Object.entries(r.checks)
  const listed = checks.map(([n, c]) => `${n}: ${Array.isArray(c) ? c.join(' && ') : c}`).join('; ')
  const lines = [
    chalk.green(`${r.overwrote ? 'Overwrote' : 'Wrote'} ${r.path}`) + ` (template ${r.template}: ${r.reason})`,
    `Target:  ${r.target}${r.targetIsPlaceholder ? chalk.yellow(' (placeholder: edit it)') : ''}`,
    `Checks:  ${checks.length ? listed : 'none detected (add them under checks:)'}`,
  ]
  if (r.agent) lines.push(`Agent:   copied to ${r.agent} (see templates/python/README.md to wire it in)`)
  if (r.tokenFile) {
    const gitignore = r.gitignore ? `, listed in ${r.gitignore}` : ''
    lines.push(
      `Token:   ${r.tokenCreated ? 'generated into' : 'kept'} ${r.tokenFile} (mode 0600, never printed)${gitignore}`,
    )
  }
  for (const w of r.warnings) lines.push(chalk.yellow(`Warning: ${w}`))
  lines.push(chalk.bold('Next steps:'), ...r.next.map((n) => `  ${n}`))
  return lines.join('\n')
}
