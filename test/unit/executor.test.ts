import { describe, expect, it } from 'vitest';
import { formatEventLine } from '../../src/report/event-log.js';
import { deployMetadata } from '../../src/report/bugsnag.js';
import { failureText, successText } from '../../src/report/slack.js';
import { EXECUTOR_MAX_LENGTH, executorOf } from '../../src/http/executor.js';
import type { DeployEvent } from '../../src/core/types.js';

const event = (executor?: string): DeployEvent => ({
  service: 'shop',
  kind: 'deploy',
  commit: '0123456789abcdef0123456789abcdef01234567',
  tag: 'main-0123456',
  result: 'success',
  durationMs: 1234,
  author: 'Jane Doe',
  insertions: 12,
  deletions: 3,
  caller: { token: 'ops', userAgent: 'depctl/1.0', executor },
  requestId: 'r-1',
});

describe('executorOf: the claimed executor, cleaned and bounded', () => {
  it.each([
    ['jane', 'jane'],
    ['  jane@example.com \t', 'jane@example.com'],
    ['a;b;;c', 'abc'],
    ['line\nbreak\r\u2028x', 'line break x'],
    ['bell\u0007 and \u009b csi', 'bell and csi'],
    ['', undefined],
    [' ;; \n ', undefined],
  ])('%j → %j', (header, expected) => {
    expect(executorOf(header)).toBe(expected);
  });

  it('is undefined without the header, and takes the first of repeated ones', () => {
    expect(executorOf(undefined)).toBeUndefined();
    expect(executorOf(['first', 'second'])).toBe('first');
  });

  it(`keeps at most ${EXECUTOR_MAX_LENGTH} characters, counting code points`, () => {
    expect(executorOf('x'.repeat(1000))).toHaveLength(EXECUTOR_MAX_LENGTH);
    expect([...(executorOf('é'.repeat(1000)) ?? '')]).toHaveLength(EXECUTOR_MAX_LENGTH);
  });
});

describe('the executor in the reports', () => {
  it('is the event line eighth field, after the seven original ones', () => {
    expect(formatEventLine(event('jane@example.com'))).toBe('shop;0123456;deploy success;1.234s;Jane Doe;+12;-3;jane@example.com');
    expect(formatEventLine(event())).toBe('shop;0123456;deploy success;1.234s;Jane Doe;+12;-3');
  });

  it('is in Bugsnag metadata and the Slack text', () => {
    expect(deployMetadata(event('jane'))).toMatchObject({ caller: 'ops', executor: 'jane' });
    expect(successText(event('<!channel> jane'))).toContain('(caller ops, executor &lt;!channel&gt; jane, request r-1)');
    expect(failureText(event(), new Error('boom'))).toContain('(caller ops, request r-1)');
  });
});
