import path from 'node:path'
import {type JournalEvent, Journal} from '../state/journal.js'
import {acquireLock, currentOwner, isStale, type LockOwner, readLock} from '../state/lock.js'
import type {StateStore} from './target.js'

/** The journal and the lock as files in the state dir on this machine. */
export class LocalStateStore implements StateStore {
  private readonly journal: Journal
  private readonly lockFile: string

  constructor(stateDir: string, warn: (message: string) => void) {
    // The state dir is created by the first write (lock, journal, backup), never by a read-only command.
    this.journal = new Journal(path.join(stateDir, 'journal.jsonl'))
    this.journal.onBadLine = warn
    this.lockFile = path.join(stateDir, 'lock')
  }

  async append(event: JournalEvent): Promise<void> {
    this.journal.append(event)
  }

  async read(): Promise<JournalEvent[]> {
    return this.journal.read()
  }

  async lock(command: string, onStale: (old: LockOwner) => void): Promise<() => Promise<void>> {
    const release = acquireLock(this.lockFile, currentOwner(command), onStale)
    return async () => release()
  }

  async readLock(): Promise<LockOwner | undefined> {
    return readLock(this.lockFile)
  }

  async isStale(owner: LockOwner): Promise<boolean> {
    return isStale(owner)
  }
}
