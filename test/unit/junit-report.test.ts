import {describe, expect, it} from 'vitest'
import {junitInput, junitXml} from '../../src/report/junit.js'
import {registerSecret} from '../../src/secrets.js'

describe('JUnit XML', () => {
  it('one testsuite per group, one testcase per entry; failures carry their text, escaped; secrets masked', () => {
    registerSecret('s3cr3t-token')
    const xml = junitXml('deploy', {
      checks: [
        {name: 'lint', ok: false, detail: 'x.py:1 <bad> & "worse"\nusing s3cr3t-token\u0007'},
        {name: 'test', ok: true, detail: 'passed'},
      ],
      smoke: [
        {name: 'cmd', ok: false, skipped: true, detail: 'skipped: command checks are not run after an interrupt'},
      ],
    })
    expect(xml).toBe(
      [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<testsuites name="hotctl deploy" tests="3" failures="1" skipped="1">',
        '  <testsuite name="checks" tests="2" failures="1" skipped="0">',
        '    <testcase classname="hotctl.checks" name="lint"><failure message="x.py:1 &lt;bad&gt; &amp; &quot;worse&quot;">x.py:1 &lt;bad&gt; &amp; "worse"\nusing ***?</failure></testcase>',
        '    <testcase classname="hotctl.checks" name="test"/>',
        '  </testsuite>',
        '  <testsuite name="smoke" tests="1" failures="0" skipped="1">',
        '    <testcase classname="hotctl.smoke" name="cmd"><skipped message="skipped: command checks are not run after an interrupt"/></testcase>',
        '  </testsuite>',
        '</testsuites>',
        '',
      ].join('\n'),
    )
  })

  it("reads the groups from a deploy's result and from a failure's details", () => {
    const smoke = [{name: 'health', ok: true, detail: 'ok'}]
    expect(junitInput({checks: [], proof: {smoke}, restore: {proof: {smoke}}})).toEqual({
      preflight: undefined,
      checks: [],
      smoke,
      restoreSmoke: smoke,
    })
    expect(junitInput(undefined)).toEqual({})
  })
})
