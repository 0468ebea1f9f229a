/** The longest line kept in a tail: one 5 MB line must not become a 5 MB message. */
export const MAX_LINE_CHARS = 400

/**
 * The last lines of a stream, bounded in lines and in characters per line, whatever the stream's
 * size: what a failed command shows (the full output goes to its log file).
 */
export class OutputTail {
  private lines: string[] = []
  private partial = ''
  private partialDropped = 0
  total = 0

  constructor(private readonly keep: number) {}

  push(chunk: string): void {
    this.total += chunk.length
    const parts = chunk.split('\n')
    this.append(parts[0]!)
    for (const part of parts.slice(1)) {
      this.flush()
      this.append(part)
    }
  }

  /** The kept lines, the unfinished last one included. */
  text(): string {
    const all = [...this.lines]
    if (this.partial || this.partialDropped) all.push(cut(this.partial, this.partialDropped))
    while (all.length > 0 && all.at(-1)!.trim() === '') all.pop()
    return all.slice(-this.keep).join('\n')
  }

  private append(s: string): void {
    const room = MAX_LINE_CHARS - this.partial.length
    if (s.length <= room) this.partial += s
    else {
      this.partial += s.slice(0, Math.max(0, room))
      this.partialDropped += s.length - Math.max(0, room)
    }
  }

  private flush(): void {
    this.lines.push(cut(this.partial, this.partialDropped))
    if (this.lines.length > this.keep * 2) this.lines = this.lines.slice(-this.keep)
    this.partial = ''
    this.partialDropped = 0
  }
}

const cut = (line: string, dropped: number) => (dropped > 0 ? `${line}… (${dropped} more characters)` : line)
