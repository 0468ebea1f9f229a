import {Args, Flags} from '@oclif/core'
import {HotctlCommand} from '../base-command.js'

export default class Diff extends HotctlCommand {
  static summary = 'What differs between two trees: releases, snapshots or live. Default: hand edits on the server.'
  static description =
    'Each of A and B is `live`, a release id (the tree as it was deployed; else the newest snapshot holding it), ' +
    '`initial` (the tree from before hotctl) or `snapshot:ID`. Without arguments: the live release as deployed against ' +
    'live, which shows edits made on the server since. With one: A against live. Lists added (A), changed (M) and ' +
    'deleted (D) paths with their sizes; protected and excluded paths and the release marker are left out.'
  static examples = [
    '<%= config.bin %> diff',
    '<%= config.bin %> diff --patch',
    '<%= config.bin %> diff 20250115120000 20250116093000 --stat',
    '<%= config.bin %> diff snapshot:20250116093000 live --json',
  ]
  static args = {
    a: Args.string({description: 'The tree to compare from (default: the live release as deployed).'}),
    b: Args.string({description: 'The tree to compare to (default: live).'}),
  }
  static flags = {
    stat: Flags.boolean({description: 'Only the totals, no list of paths.', default: false, exclusive: ['patch']}),
    patch: Flags.boolean({char: 'p', description: 'Also print a unified diff of the text files.', default: false}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(Diff)
    const ctx = await this.openContext(flags.config)
    const {diffTrees} = await import('../pipeline/diff.js')
    const {renderDiff} = await import('../ui/diff-report.js')
    const r = await diffTrees(ctx, {a: args.a, b: args.b}, {patch: flags.patch})
    this.finish({...r}, () => renderDiff(r, {stat: flags.stat}))
  }
}
