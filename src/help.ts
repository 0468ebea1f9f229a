import {Help} from '@oclif/core'

/**
 * oclif's help, with one change: a topic that is also a command (`backups`, whose subcommands are
 * `backups prune` and `backups verify`) is listed once, under COMMANDS, not under TOPICS too.
 */
export default class HotctlHelp extends Help {
  protected get sortedTopics() {
    return super.sortedTopics.filter((t) => !this.config.findCommand(t.name))
  }
}
