import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computeBackoffSeconds, DEFAULT_BACKOFF } from '../src/backoff.ts';
import { ValidationError } from '../src/errors.ts';
import { canonicalJson, computeIdentityHash } from '../src/identity.ts';
import { checkJsonLimits, JSON_LIMITS } from '../src/json-limits.ts';
import { validateTaskRequest } from '../src/task-request.ts';

const valid = {
  name: 'linear_workflow',
  namespace: 'linear',
  version: '1.0.0',
  context: { even_number: 10 },
};

function issuesOf(input: unknown): string[] {
  try {
    validateTaskRequest(input);
  } catch (error) {
    assert.ok(error instanceof ValidationError, `expected a ValidationError, got ${String(error)}`);
    return error.issues.map((issue) => issue.field);
  }
  assert.fail('expected the request to be rejected');
}

function nested(depth: number): unknown {
  let value: unknown = 'leaf';
  for (let i = 0; i < depth; i++) value = { child: value };
  return value;
}

describe('task request validation', () => {
  it('accepts a minimal request and fills the documented defaults', () => {
    const request = validateTaskRequest(valid);
    assert.deepEqual(request, {
      ...valid,
      initiator: 'system',
      source_system: 'tasker',
      reason: 'Task requested',
      tags: [],
      requested_at: null,
      options: null,
      priority: 0,
      correlation_id: null,
      parent_correlation_id: null,
      idempotency_key: null,
    });
  });

  it('keeps the context exactly as given', () => {
    const context = {
      onboarding_id: 1,
      script: '<script>x</script>',
      online: true,
      nested: { eval: 'javascript:1' },
    };
    assert.deepEqual(validateTaskRequest({ ...valid, context }).context, context);
  });

  it('reports every problem at once, naming each field', () => {
    assert.deepEqual(issuesOf({ context: [] }).sort(), ['context', 'name', 'namespace', 'version']);
    assert.deepEqual(
      issuesOf({ ...valid, priority: 101, correlation_id: 'nope', tags: [1], surprise: true }).sort(),
      ['correlation_id', 'priority', 'surprise', 'tags'],
    );
    assert.deepEqual(issuesOf('not an object'), ['body']);
    assert.deepEqual(issuesOf(null), ['body']);
  });

  it('enforces lengths and ranges at and over each boundary', () => {
    const cases: [Record<string, unknown>, boolean][] = [
      [{ name: 'n'.repeat(255) }, true],
      [{ name: 'n'.repeat(256) }, false],
      [{ name: '' }, false],
      [{ name: '   ' }, false],
      [{ version: 'v'.repeat(50) }, true],
      [{ version: 'v'.repeat(51) }, false],
      [{ reason: 'r'.repeat(500) }, true],
      [{ reason: 'r'.repeat(501) }, false],
      [{ initiator: 'i'.repeat(255) }, true],
      [{ initiator: 'i'.repeat(256) }, false],
      [{ source_system: 's'.repeat(256) }, false],
      [{ priority: -100 }, true],
      [{ priority: 100 }, true],
      [{ priority: -101 }, false],
      [{ priority: 1.5 }, false],
      [{ priority: '1' }, false],
      [{ namespace: 'a'.repeat(29) }, true],
      [{ namespace: 'a'.repeat(30) }, false],
      [{ namespace: ';DROP TABLE x' }, false],
      [{ requested_at: '2026-11-26T10:00:00Z' }, true],
      [{ requested_at: '2026-11-26T10:00:00.123456+02:00' }, true],
      [{ requested_at: 'not a date' }, false],
      [{ requested_at: 0 }, false],
      [{ requested_at: '1' }, false],
      [{ requested_at: 'May 1' }, false],
      [{ requested_at: '2026-11-26' }, false],
      [{ requested_at: '2024-02-30T00:00:00Z' }, false],
      [{ requested_at: '2026-11-26T10:00:00' }, false],
      [{ initiator: 'a\u0000b' }, false],
      [{ reason: 'x\ud800' }, false],
      [{ name: 'n\u0000' }, false],
      [{ correlation_id: '0195a3b8-1111-7222-8333-444455556666' }, true],
      [{ idempotency_key: 'k'.repeat(255) }, true],
      [{ idempotency_key: 'k'.repeat(256) }, false],
      [{ options: { a: 1 } }, true],
      [{ options: [1] }, false],
    ];
    for (const [patch, ok] of cases) {
      const input = { ...valid, ...patch };
      if (ok) assert.doesNotThrow(() => validateTaskRequest(input), JSON.stringify(patch).slice(0, 80));
      else assert.deepEqual(issuesOf(input), Object.keys(patch), JSON.stringify(patch).slice(0, 80));
    }
  });

  it('enforces the JSON limits on context at and over each boundary', () => {
    const wide = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
    const cases: [unknown, boolean][] = [
      [nested(9), true], // context itself is level 1: 10 levels in all
      [nested(10), false],
      [wide(1000), true],
      [wide(1001), false],
      [{ list: Array.from({ length: 1000 }, () => 1) }, true],
      [{ list: Array.from({ length: 1001 }, () => 1) }, false],
      [{ s: 'x'.repeat(10_000) }, true],
      [{ s: 'x'.repeat(10_001) }, false],
      [{ ['k'.repeat(10_000)]: 1 }, true],
      [{ ['k'.repeat(10_001)]: 1 }, false],
      [{ nul: 'a\u0000b' }, false],
    ];
    for (const [context, ok] of cases) {
      const input = { ...valid, context: { payload: context } };
      if (ok) assert.doesNotThrow(() => validateTaskRequest(input));
      else assert.deepEqual(issuesOf(input)[0]?.startsWith('context'), true);
    }
    // 1 MiB in bytes: 200 strings of 5,300 two-byte characters is over; of 2,600 is under.
    const big = (chars: number) => ({ parts: Array.from({ length: 200 }, () => 'é'.repeat(chars)) });
    assert.doesNotThrow(() => validateTaskRequest({ ...valid, context: big(2600) }));
    assert.deepEqual(issuesOf({ ...valid, context: big(5300) }), ['context']);
  });

  it('checks JSON limits on any value and rejects non-JSON values', () => {
    assert.deepEqual(checkJsonLimits({ a: [1, 'two', null, true] }, 'x'), []);
    assert.equal(checkJsonLimits({ a: Number.NaN }, 'x')[0]?.field, 'x.a');
    assert.equal(checkJsonLimits({ a: () => 1 }, 'x')[0]?.field, 'x.a');
    assert.equal(checkJsonLimits({ a: new Date() }, 'x')[0]?.field, 'x.a');
    assert.equal(JSON_LIMITS.maxBytes, 1024 * 1024);
  });
});

describe('identity', () => {
  it('canonical JSON ignores key order but not array order', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [2, 1], c: null } }), '{"a":{"c":null,"d":[2,1]},"b":1}');
    assert.equal(canonicalJson({ a: 1, b: 2 }), canonicalJson({ b: 2, a: 1 }));
    assert.notEqual(canonicalJson([1, 2]), canonicalJson([2, 1]));
  });

  it('computes hashes per strategy', () => {
    const base = { namedTaskUuid: '0195a3b8-1111-7222-8333-444455556666', context: { a: 1, b: [1, 2] } };
    const strict = computeIdentityHash({ ...base, strategy: 'strict' });
    assert.equal(strict, computeIdentityHash({ ...base, context: { b: [1, 2], a: 1 }, strategy: 'strict' }));
    assert.notEqual(
      strict,
      computeIdentityHash({ ...base, context: { a: 2, b: [1, 2] }, strategy: 'strict' }),
    );
    assert.notEqual(
      strict,
      computeIdentityHash({
        ...base,
        namedTaskUuid: '0195a3b8-1111-7222-8333-444455556667',
        strategy: 'strict',
      }),
    );
    const keyed = computeIdentityHash({ ...base, strategy: 'always_unique', idempotencyKey: 'order-1' });
    assert.equal(
      keyed,
      computeIdentityHash({ ...base, context: {}, strategy: 'strict', idempotencyKey: 'order-1' }),
    );
    assert.notEqual(
      computeIdentityHash({ ...base, strategy: 'always_unique' }),
      computeIdentityHash({ ...base, strategy: 'always_unique' }),
    );
    assert.throws(() => computeIdentityHash({ ...base, strategy: 'caller_provided' }), ValidationError);
    assert.ok(strict.length <= 128);
  });
});

describe('backoff', () => {
  const exact = { ...DEFAULT_BACKOFF, jitter: 0, baseMs: 1000, maxMs: 60_000 };
  it('grows per strategy and is capped', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 8].map((n) => computeBackoffSeconds({ ...exact, strategy: 'exponential' }, n)),
      [1, 2, 4, 8, 16, 32, 60, 60],
    );
    assert.deepEqual(
      [1, 2, 3, 4].map((n) => computeBackoffSeconds({ ...exact, strategy: 'linear' }, n)),
      [1, 2, 3, 4],
    );
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6].map((n) => computeBackoffSeconds({ ...exact, strategy: 'fibonacci' }, n)),
      [1, 1, 2, 3, 5, 8],
    );
    assert.equal(computeBackoffSeconds({ ...exact, strategy: 'none' }, 3), 0);
  });

  it('applies jitter within its bounds', () => {
    const policy = { ...exact, jitter: 0.5, baseMs: 10_000 };
    assert.equal(computeBackoffSeconds(policy, 1, { random: () => 0 }), 5);
    assert.equal(computeBackoffSeconds(policy, 1, { random: () => 1 }), 15);
    assert.equal(computeBackoffSeconds(policy, 1, { random: () => 0.5 }), 10);
  });

  it('lets a server-requested delay win, capped at the maximum', () => {
    assert.equal(computeBackoffSeconds(exact, 1, { retryAfterSeconds: 42 }), 42);
    assert.equal(computeBackoffSeconds(exact, 1, { retryAfterSeconds: 4200 }), 60);
    assert.equal(computeBackoffSeconds(exact, 1, { retryAfterSeconds: 0 }), 0);
    assert.throws(() => computeBackoffSeconds(exact, 1, { retryAfterSeconds: -1 }), {
      code: 'INVALID_ARGUMENT',
    });
    assert.throws(() => computeBackoffSeconds(exact, 0), { code: 'INVALID_ARGUMENT' });
  });
});
