import { pino, type Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { formatDuration, formatEventLine, logDeployEvent } from '../../src/report/event-log.js';
import type { DeployEvent } from '../../src/core/types.js';

const COMMIT = '025838f3b1c2d4e5f60718293a4b5c6d7e8f9012';

function event(overrides: Partial<DeployEvent> = {}): DeployEvent {
  return {
    service: 'gapfish',
    kind: 'deploy',
    commit: COMMIT,
    tag: 'v1.4.0',
    result: 'success',
    durationMs: 4200,
    author: 'Jane Doe',
    insertions: 12,
    deletions: 3,
    caller: { token: 'ci', userAgent: 'curl/8.5.0' },
    requestId: 'req-1',
    ...overrides,
  };
}

function memoryLogger(): { logger: Logger; lines: () => Array<Record<string, unknown>> } {
  const out: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void out.push(s) });
  return { logger, lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('formatEventLine', () => {
  it('keeps the original grep-able form', () => {
    expect(formatEventLine(event())).toBe('gapfish;025838f;deploy success;4.200s;Jane Doe;+12;-3');
  });

  it.each<[string, Partial<DeployEvent>, string]>([
    ['a failed canary', { kind: 'canary', result: 'failure' }, 'gapfish;025838f;canary fail;4.200s;Jane Doe;+12;-3'],
    ['a rollback without commit facts', { kind: 'rollback', commit: undefined, author: undefined, insertions: undefined, deletions: undefined }, 'gapfish;?;rollback success;4.200s;?;+?;-?'],
    ['a promote', { kind: 'promote' }, 'gapfish;025838f;promote success;4.200s;Jane Doe;+12;-3'],
    ['an empty commit and a blank author', { commit: '', author: '  ' }, 'gapfish;?;deploy success;4.200s;?;+12;-3'],
    ['an svn revision, kept whole', { commit: '1234' }, 'gapfish;1234;deploy success;4.200s;Jane Doe;+12;-3'],
    ['a short git commit, kept whole', { commit: 'abc12' }, 'gapfish;abc12;deploy success;4.200s;Jane Doe;+12;-3'],
    ['no changes', { insertions: 0, deletions: 0 }, 'gapfish;025838f;deploy success;4.200s;Jane Doe;+0;-0'],
    ['only deletions known', { insertions: undefined }, 'gapfish;025838f;deploy success;4.200s;Jane Doe;+?;-3'],
    ['a sub-millisecond-rounded duration', { durationMs: 1234.5678 }, 'gapfish;025838f;deploy success;1.235s;Jane Doe;+12;-3'],
    ['a zero duration', { durationMs: 0 }, 'gapfish;025838f;deploy success;0.000s;Jane Doe;+12;-3'],
    ['an author with ";" and a line break', { author: 'Doe; Jane\nINJECTED' }, 'gapfish;025838f;deploy success;4.200s;Doe, Jane INJECTED;+12;-3'],
    ['a negative count', { deletions: -1 }, 'gapfish;025838f;deploy success;4.200s;Jane Doe;+12;-?'],
  ])('%s', (_name, overrides, line) => {
    expect(formatEventLine(event(overrides))).toBe(line);
  });

  it('always has exactly seven parts', () => {
    const line = formatEventLine(event({ author: ';;;', service: 'a;b', commit: 'x;y' }));
    expect(line.split(';')).toHaveLength(7);
  });
});

describe('formatDuration', () => {
  it.each<[number, string]>([
    [4200, '4.200s'],
    [59_999, '59.999s'],
    [61_000, '61.000s'],
    [-1, '?s'],
    [Number.NaN, '?s'],
  ])('%d ms → %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe('logDeployEvent', () => {
  it('writes one info line with every fact and the grep-able message', () => {
    const { logger, lines } = memoryLogger();

    logDeployEvent(logger, event());

    expect(lines()).toHaveLength(1);
    expect(lines()[0]).toMatchObject({
      level: 30,
      msg: 'gapfish;025838f;deploy success;4.200s;Jane Doe;+12;-3',
      event: 'deploy',
      service: 'gapfish',
      commit: COMMIT,
      tag: 'v1.4.0',
      kind: 'deploy',
      result: 'success',
      durationMs: 4200,
      author: 'Jane Doe',
      insertions: 12,
      deletions: 3,
      caller: 'ci',
      userAgent: 'curl/8.5.0',
      requestId: 'req-1',
    });
    expect(lines()[0]).not.toHaveProperty('error');
  });

  it('writes a failure as a warning with the error the caller was answered', () => {
    const { logger, lines } = memoryLogger();

    logDeployEvent(
      logger,
      event({
        kind: 'canary',
        result: 'failure',
        error: { name: 'NotFoundError', message: 'no tag for commit 025838f', status: 404 },
      }),
    );

    expect(lines()).toHaveLength(1);
    expect(lines()[0]).toMatchObject({
      level: 40,
      // The original's word in the line old readers grep; the field keeps ours.
      msg: 'gapfish;025838f;canary fail;4.200s;Jane Doe;+12;-3',
      kind: 'canary',
      result: 'failure',
      error: { name: 'NotFoundError', message: 'no tag for commit 025838f', status: 404 },
    });
  });

  it('leaves unknown facts out of the fields and marks them "?" in the message', () => {
    const { logger, lines } = memoryLogger();

    logDeployEvent(
      logger,
      event({
        kind: 'rollback',
        commit: undefined,
        tag: undefined,
        author: undefined,
        insertions: undefined,
        deletions: undefined,
        caller: { token: 'auth_token' },
      }),
    );

    const line = lines()[0];
    expect(line?.['msg']).toBe('gapfish;?;rollback success;4.200s;?;+?;-?');
    for (const key of ['commit', 'tag', 'author', 'insertions', 'deletions', 'userAgent']) {
      expect(line).not.toHaveProperty(key);
    }
    expect(line).toMatchObject({ caller: 'auth_token', requestId: 'req-1' });
  });
});
