/**
 * The one quoting function for text a remote shell parses (ssh joins its arguments into one
 * command line for the login shell on the host). Every value hotctl puts into a remote command —
 * a path, a file name, an env value, a user's command — goes through `shq`; the script text around
 * it is fixed. POSIX single quotes keep every byte literal except `'` itself, written as `'\''`.
 * File names are bytes (see file-names.ts): a string holding escaped bytes is quoted as those bytes.
 */
import {encodeName, hasEscapedBytes} from '../file-names.js'

export function shq(value: string): string {
  if (value.includes('\0')) throw new Error('a NUL byte cannot be passed through a shell')
  return `'${value.replace(/'/g, `'\\''`)}'`
}

/** `shq` over a name's exact bytes (latin1 carries one byte per character to the wire), or over bytes as they are. */
export function shqBytes(name: string | Buffer): Buffer {
  return Buffer.concat(shqParts(name))
}

/** shqBytes as the pieces it joins (views of `name`'s bytes: a script of megabytes is joined once, in remoteScript). */
function shqParts(name: string | Buffer): Buffer[] {
  const bytes = typeof name === 'string' ? encodeName(name) : name
  if (bytes.includes(0)) throw new Error('a NUL byte cannot be passed through a shell')
  const parts: Buffer[] = [Buffer.from("'")]
  let at = 0
  for (let i = bytes.indexOf(0x27); i !== -1; i = bytes.indexOf(0x27, at)) {
    parts.push(bytes.subarray(at, i), Buffer.from(`'\\''`))
    at = i + 1
  }
  parts.push(bytes.subarray(at), Buffer.from("'"))
  return parts
}

/**
 * A remote script as what `sh -s` on the host reads from stdin: fixed POSIX sh `script` with
 * `args` as its positional parameters ($1, $2, …), each quoted by `shq` (bytes, such as a large
 * base64 argument kept out of the JS heap: by `shqBytes`). Nothing of it is on
 * ssh's command line (which is only `sh -s`), so there is no length limit and file names that
 * are not UTF-8 reach the host byte for byte. The whole script is one `{ … }` group: the shell
 * parses all of it before running any of it, so a cut connection never runs half a script, and
 * stdin is /dev/null for what it runs.
 */
export function remoteScript(script: string, args: (string | Buffer)[] = [], preludes: Prelude[] = []): Buffer {
  // One buffer per run of plain values (shq's text is their bytes), not one per value: a batch
  // of 8000 names is otherwise some 40,000 small buffers.
  const setArgs = (a: (string | Buffer)[]) => {
    const out: Buffer[] = []
    let text = ['set --']
    for (const x of a) {
      if (typeof x === 'string' && !hasEscapedBytes(x)) text.push(shq(x))
      else {
        out.push(Buffer.from(`${text.join(' ')} `), ...shqParts(x))
        text = ['']
      }
    }
    out.push(Buffer.from(text.join(' ')))
    return out
  }
  return Buffer.concat([
    Buffer.from('{ exec </dev/null\n'),
    ...preludes.flatMap((p) => [
      ...setArgs(p.args),
      Buffer.from(`\n(\n${p.script}\n) || { echo ${PRELUDE_FAILED} >&2; exit ${PRELUDE_EXIT}; }\n`),
    ]),
    ...setArgs(args),
    Buffer.from(`\n${script}\n}\n`),
  ])
}

/**
 * A short script that has to run on the host before the next one (a journal line to make durable
 * before the action it guards): it rides in front of that script, in the same round trip, each in
 * a subshell; when one fails the script does not run and exits PRELUDE_EXIT saying PRELUDE_FAILED.
 */
export interface Prelude {
  script: string
  args: string[]
  /** What it does, for the error message. */
  what: string
}
export const PRELUDE_FAILED = 'hotctl-prelude-failed'
export const PRELUDE_EXIT = 198

/**
 * An argument for rsync's `-e` (rsync splits that string itself, on spaces, honouring single and
 * double quotes but no backslashes).
 */
export function rshWord(arg: string): string {
  if (/^[\w@%+=:,./-]+$/.test(arg)) return arg
  if (!arg.includes("'")) return `'${arg}'`
  if (!arg.includes('"')) return `"${arg}"`
  throw new Error(`cannot pass ${JSON.stringify(arg)} to rsync -e: it holds both quote characters`)
}
