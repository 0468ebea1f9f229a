import {describe, expect, it} from 'vitest'
import {INITIAL, releaseCatalog, resolvePrevious, resolveTo} from '../../src/pipeline/releases.js'
import type {BackupMeta} from '../../src/state/backups.js'
import {type JournalEvent, type OpResult, operations} from '../../src/state/journal.js'
import {catchHotctl} from './helpers.js'

/**
 * A target's history as the pipelines write it: every deploy and rollback snapshots the live tree
 * first (named by the operation's id), then journals its end; `live` follows what really happens.
 */
class History {
  live: string | null = null
  backups: BackupMeta[] = []
  events: JournalEvent[] = []
  private n = 0

  /** Deploy `id`: 'ok' makes it live; 'restored'/'failed'/'interrupted' leave the old tree; 'attention' leaves `leftMarker`. */
  deploy(id: string, result: OpResult = 'ok', opts: {error?: string; leftMarker?: string | null} = {}): this {
    this.start(id, 'deploy', {backup: id, release: id, from: this.live})
    this.snapshot(id, 'deploy')
    if (result === 'ok') this.live = id
    if (result === 'attention') this.live = opts.leftMarker === undefined ? id : opts.leftMarker
    this.end(id, result, opts.error)
    return this
  }

  /** Rollback `undo` restoring snapshot `restores` (as the pipeline does after choosing it). */
  rollback(undo: string, restores: string, result: OpResult = 'ok'): this {
    const release = this.backups.find((b) => b.id === restores)!.release
    this.start(undo, 'rollback', {backup: undo, release: release ?? undefined, restores, from: this.live})
    this.snapshot(undo, 'rollback')
    if (result === 'ok') this.live = release
    this.end(undo, result)
    return this
  }

  catalog() {
    return releaseCatalog(this.backups, operations(this.events), this.live)
  }

  private start(opId: string, op: 'deploy' | 'rollback', extra: Record<string, unknown>): void {
    this.events.push({event: 'start', op, opId, t: this.t(), user: 'u', host: 'h', pid: 1, argv: [], ...extra})
  }

  private end(opId: string, result: OpResult, error?: string): void {
    this.events.push({
      event: 'end',
      opId,
      t: this.t(),
      result,
      exitCode: result === 'ok' ? 0 : 3,
      durationMs: 1,
      ...(error ? {error} : {}),
    })
  }

  private snapshot(id: string, reason: BackupMeta['reason']): void {
    const root = {chunks: [], entries: 0} as unknown as BackupMeta['root']
    this.backups.push({
      id,
      time: this.t(),
      reason,
      release: this.live,
      gitSha: null,
      files: 1,
      bytes: 1,
      added: 1,
      root,
    })
  }

  private t(): string {
    return new Date(Date.UTC(2025, 0, 15, 12, 0, this.n++)).toISOString()
  }
}

const A = '20250115120000'
const B = '20250115130000'
const C = '20250115140000'
const D = '20250115150000'
const U1 = '20250115160000'
const U2 = '20250115170000'

/** A, B, C deployed over a tree hotctl found without marker. */
const abc = () => new History().deploy(A).deploy(B).deploy(C)

const message = (fn: () => unknown) => {
  const err = catchHotctl(fn)
  expect(err.exitCode).toBe(2)
  return `${err.message}\n${err.hint}`
}

describe('releaseCatalog: which release each snapshot holds', () => {
  it('a deploy snapshot holds the release before it; --to names releases, newest first; the live one is no target', () => {
    const c = abc().catalog()
    expect(c.snapshots.map((s) => [s.id, s.release, s.to])).toEqual([
      [A, null, INITIAL],
      [B, A, A],
      [C, B, B],
    ])
    expect(c.targets.map((t) => [t.to, t.snapshot])).toEqual([
      [B, C],
      [A, B],
      [INITIAL, A],
    ])
    expect(c.snapshots.filter((s) => s.next).map((s) => s.id)).toEqual([C])
  })

  it('several snapshots of one release: --to uses the newest, the older one says so', () => {
    // C → B (undo U1 holds C), then back to C (undo U2 holds B): snapshots C and U2 both hold B.
    const h = abc().rollback(U1, C).rollback(U2, U1)
    expect(h.live).toBe(C)
    const c = h.catalog()
    expect(c.snapshots.find((s) => s.id === U2)).toMatchObject({release: B, to: B})
    expect(c.snapshots.find((s) => s.id === C)).toMatchObject({
      release: B,
      to: null,
      note: expect.stringContaining('older copy'),
    })
    expect(c.snapshots.find((s) => s.id === U1)).toMatchObject({release: C, to: null, note: 'holds the live release'})
  })
})

describe('resolveTo: --to RELEASE ends with RELEASE live', () => {
  it('after A, B, C: --to A restores the snapshot taken at deploy B; --to initial the one taken at deploy A', () => {
    const c = abc().catalog()
    expect(resolveTo(c, A)).toEqual({to: A, release: A, snapshot: B})
    expect(resolveTo(c, B)).toEqual({to: B, release: B, snapshot: C})
    expect(resolveTo(c, INITIAL)).toEqual({to: INITIAL, release: null, snapshot: A})
  })

  it('the live release resolves to no snapshot (already live); so does `initial` on a tree without marker', () => {
    expect(resolveTo(abc().catalog(), C)).toEqual({to: C, release: C, snapshot: null})
    const fresh = new History().deploy(A).rollback(U1, A)
    expect(fresh.live).toBeNull()
    expect(resolveTo(fresh.catalog(), INITIAL)).toEqual({to: INITIAL, release: null, snapshot: null})
  })

  it('a rollback can be undone: --to the replaced release uses the rollback undo snapshot', () => {
    const h = abc().rollback(U1, C)
    expect(h.live).toBe(B)
    expect(resolveTo(h.catalog(), C)).toEqual({to: C, release: C, snapshot: U1})
    expect(resolvePrevious(h.catalog())).toEqual({to: A, release: A, snapshot: B})
  })

  it('a release whose deploy was restored was never live: refused, saying when and why', () => {
    const c = abc().deploy(D, 'restored', {error: 'smoke failed: calc: expected status 200, got 500\nmore'}).catalog()
    const text = message(() => resolveTo(c, D))
    expect(text).toContain(`release ${D} was never live: its deploy was restored at 2025-01-15 12:00:`)
    expect(text).toContain('(smoke failed: calc: expected status 200, got 500)')
    expect(text).toContain(`${D} is also the id of the backup taken before deploy ${D}, which holds release ${C}`)
    expect(text).toContain(
      `Valid --to targets, newest first: ${B}, ${A}, initial (the tree from before hotctl); release ${C} is live`,
    )
    expect(c.neverLive).toMatchObject([{release: D, result: 'restored'}])
  })

  it('a never-live release stays refused even if some snapshot holds its marker (a tree copied by hand)', () => {
    const h = abc().deploy(D, 'restored')
    h.backups.push({...h.backups.at(-1)!, id: U1, reason: 'rollback', release: D})
    const c = h.catalog()
    expect(c.snapshots.at(-1)).toMatchObject({to: null, note: `release ${D} was never live`})
    expect(message(() => resolveTo(c, D))).toContain(`release ${D} was never live`)
  })

  it.each([
    ['failed', 'failed at'],
    ['interrupted', 'was interrupted at'],
    ['attention', 'the restore could not be verified'],
  ] as const)('a deploy that ended %s was never live either', (result, says) => {
    const c = abc().deploy(D, result, {leftMarker: C}).catalog()
    expect(message(() => resolveTo(c, D))).toContain(says)
  })

  it('a snapshot id that is not a release (a rollback undo) is refused, naming what it holds and the --to that reaches it', () => {
    const c = abc().rollback(U1, C).catalog()
    const text = message(() => resolveTo(c, U1))
    expect(text).toContain(
      `no release ${U1} on this target; ${U1} is also the id of the undo snapshot of rollback ${U1}, which holds release ${C} (\`--to ${C}\`)`,
    )
  })

  it('a release that was live but whose snapshots were all pruned', () => {
    const h = abc()
    h.backups = h.backups.filter((b) => b.id === C) // keep 1
    const text = message(() => resolveTo(h.catalog(), A))
    expect(text).toContain(`release ${A} was live, but no snapshot of it is left (pruned`)
    expect(text).toContain(`Valid --to targets, newest first: ${B};`)
    expect(message(() => resolveTo(h.catalog(), INITIAL))).toContain('no snapshot holds the tree from before hotctl')
  })

  it('an unknown release, a malformed id and an impossible date are usage errors listing the targets', () => {
    const c = abc().catalog()
    expect(message(() => resolveTo(c, '20250101000000'))).toContain('no release 20250101000000 on this target')
    for (const bad of ['../x', '2025', 'Initial', '20251301000000']) {
      const text = message(() => resolveTo(c, bad))
      expect(text).toContain(bad)
      expect(text).toContain(`Valid --to targets, newest first: ${B}, ${A}, initial`)
    }
  })

  it('no targets at all: the hint says so', () => {
    const c = new History().catalog()
    expect(message(() => resolveTo(c, B))).toContain(
      'There is no release to roll back to (the tree from before hotctl is live)',
    )
  })
})

describe('trust: snapshots taken while the target needed attention', () => {
  it('are never what --to restores; an older trusted copy of the release is used instead', () => {
    // D's restore failed with B's marker back but unverified; a rollback then snapshots that tree.
    const h = abc().rollback(U1, C) // live B, U1 holds C
    h.deploy(D, 'attention', {leftMarker: B}).rollback(U2, B) // U2 holds the doubtful "B" tree; live A
    const c = h.catalog()
    expect(c.snapshots.find((s) => s.id === U2)).toMatchObject({
      release: B,
      to: null,
      suspect: expect.stringContaining(`deploy ${D} could not restore and verify it`),
    })
    // D was taken before deploy D, while B was live and trusted: the newest good copy of B.
    expect(resolveTo(c, B)).toEqual({to: B, release: B, snapshot: D})
  })

  it('when only doubtful copies are left, the release is refused with the reason', () => {
    const h = new History().deploy(A).deploy(B, 'attention', {leftMarker: A}).deploy(C)
    // Snapshot C holds the doubtful "A" tree; snapshot B (trusted) is pruned.
    h.backups = h.backups.filter((b) => b.id !== B)
    expect(message(() => resolveTo(h.catalog(), A))).toContain(
      `the only snapshots holding release ${A} (${C}) were taken while the target needed attention`,
    )
    expect(message(() => resolvePrevious(h.catalog()))).toContain(
      `the release before ${C} was release ${A}, which cannot be restored`,
    )
  })

  it('--to the live release while the target needs attention restores a trusted snapshot of it (the marker proves nothing)', () => {
    // C's restore put B's marker back but could not verify the tree: `--to B` must restore, not "already live".
    const h = abc().deploy(D, 'attention', {leftMarker: C})
    const c = h.catalog()
    expect(c.doubt).toContain(`deploy ${D} could not restore and verify it`)
    expect(resolveTo(c, C)).toEqual({to: C, release: C, snapshot: D})
    // Once a deploy succeeds, the live release is live again: --to it confirms and changes nothing.
    const ok = abc()
    expect(resolveTo(ok.catalog(), C)).toEqual({to: C, release: C, snapshot: null})
  })

  it('a successful deploy ends the doubt; a rollback to a doubtful snapshot does not', () => {
    const h = new History().deploy(A).deploy(B, 'attention', {leftMarker: A}).deploy(C).deploy(D)
    expect(h.catalog().snapshots.find((s) => s.id === D)?.suspect).toBeUndefined()
    // Force a rollback onto the doubtful snapshot C (as an older hotctl would have): what follows is doubtful.
    h.rollback(U1, C)
    h.deploy('20250115180000', 'restored')
    expect(h.catalog().snapshots.find((s) => s.id === '20250115180000')?.suspect).toBeDefined()
  })
})

describe('resolvePrevious: plain rollback goes one step back', () => {
  it('C → B → A → initial, then refuses on a tree without marker', () => {
    const h = abc()
    let undo = 0
    const step = () => {
      const choice = resolvePrevious(h.catalog())
      h.rollback(`2025011600000${undo++}`, choice.snapshot!)
      return choice
    }
    expect(step()).toMatchObject({release: B, snapshot: C})
    expect(step()).toMatchObject({release: A, snapshot: B})
    expect(step()).toMatchObject({release: null, to: INITIAL, snapshot: A})
    expect(message(() => resolvePrevious(h.catalog()))).toContain('the live tree has no release marker')
  })

  it('refuses a previous release that was never live, naming it', () => {
    // D failed with its own marker left in place and unverified; E deploys fine over it.
    const E = '20250115190000'
    const h = abc().deploy(D, 'attention').deploy(E)
    expect(message(() => resolvePrevious(h.catalog()))).toContain(
      `the release before ${E} was release ${D}, which cannot be restored: release ${D} was never live`,
    )
  })

  it('refuses when the snapshot from before the live release was pruned', () => {
    const h = abc()
    h.backups = h.backups.filter((b) => b.id !== C)
    expect(message(() => resolvePrevious(h.catalog()))).toContain(`no snapshot from before release ${C}`)
  })
})
