import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  extractQueueNamespace,
  InvalidNameError,
  messageChannelForQueue,
  validateChannel,
  validateNamespace,
  validateQueueName,
  workerQueueName,
} from '../src/index.ts';
import { BAD_NAMES, NAMESPACE_CASES } from './helpers.ts';

describe('queue names', () => {
  it('accepts identifiers up to 47 characters', () => {
    for (const name of ['a', '_', 'worker_orders_queue', 'A1_b2', 'a'.repeat(47)]) {
      assert.equal(validateQueueName(name), name);
    }
  });

  it('rejects anything else with a typed error', () => {
    for (const name of BAD_NAMES) {
      assert.throws(
        () => validateQueueName(name),
        (error: unknown) => error instanceof InvalidNameError && error.code === 'INVALID_QUEUE_NAME',
        `expected ${JSON.stringify(name)} to be rejected`,
      );
    }
  });

  it('limits namespaces to 29 characters', () => {
    assert.equal(validateNamespace('a'.repeat(29)), 'a'.repeat(29));
    assert.throws(() => validateNamespace('a'.repeat(30)), { code: 'INVALID_NAMESPACE' });
    assert.throws(() => validateNamespace('bad-namespace'), { code: 'INVALID_NAMESPACE' });
    assert.throws(() => workerQueueName(';DROP TABLE x'), { code: 'INVALID_NAMESPACE' });
    assert.equal(workerQueueName('payments'), 'worker_payments_queue');
  });

  it('allows dots in channels, up to 63 characters', () => {
    assert.equal(validateChannel('pgmq_message_ready.orders'), 'pgmq_message_ready.orders');
    assert.equal(validateChannel('c'.repeat(63)), 'c'.repeat(63));
    for (const bad of ['c'.repeat(64), '', '.a', 'a-b', 'a"b', 'ñ', "a'; NOTIFY x"]) {
      assert.throws(() => validateChannel(bad), { code: 'INVALID_CHANNEL' });
    }
  });
});

describe('namespace extraction', () => {
  it('follows the reference rules', () => {
    for (const [queue, namespace] of NAMESPACE_CASES) {
      assert.equal(extractQueueNamespace(queue), namespace, queue);
    }
  });

  it('gives each queue its notification channel', () => {
    assert.equal(messageChannelForQueue('test_complete_queue'), 'pgmq_message_ready.test_complete');
    assert.equal(messageChannelForQueue('worker_orders_queue'), 'pgmq_message_ready.orders');
    assert.equal(messageChannelForQueue('orchestration_step_results'), 'pgmq_message_ready.orchestration');
    assert.equal(messageChannelForQueue('orchestration_task_requests'), 'pgmq_message_ready.orchestration');
    assert.throws(() => messageChannelForQueue('a-b'), { code: 'INVALID_QUEUE_NAME' });
  });
});
