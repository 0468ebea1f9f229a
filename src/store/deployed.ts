import fs from 'node:fs'
import path from 'node:path'
import {ID_PATTERN} from '../ids.js'
import type {ManifestRoot} from './manifest.js'

/** The tree a release had when its deploy was verified: what `hotctl diff` compares live against. */
export interface DeployedRecord {
  release: string
  time: string
  root: ManifestRoot
}

/**
 * `deployed/<release>.json` in the state dir: one manifest root per deployed release, sharing the
 * object store with the backups (the next deploy's backup of an unedited tree then adds nothing).
 */
export class DeployedIndex {
  constructor(readonly dir: string) {}

  private file(release: string): string {
    return path.join(this.dir, `${release}.json`)
  }

  write(record: DeployedRecord): void {
    fs.mkdirSync(this.dir, {recursive: true})
    const tmp = `${this.file(record.release)}.${process.pid}.tmp`
    fs.writeFileSync(tmp, JSON.stringify(record))
    fs.renameSync(tmp, this.file(record.release))
  }

  get(release: string): DeployedRecord | undefined {
    try {
      const r = JSON.parse(fs.readFileSync(this.file(release), 'utf8')) as DeployedRecord | null
      return r && r.release === release && r.root && typeof r.root === 'object' ? r : undefined
    } catch {
      return undefined
    }
  }

  /** Releases with a record, oldest first. */
  releases(): string[] {
    let names: string[]
    try {
      names = fs.readdirSync(this.dir)
    } catch {
      return []
    }
    return names
      .filter((n) => n.endsWith('.json') && ID_PATTERN.test(n.slice(0, -5)))
      .map((n) => n.slice(0, -5))
      .sort()
  }

  remove(release: string): void {
    fs.rmSync(this.file(release), {force: true})
  }
}
