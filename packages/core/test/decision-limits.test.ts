/**
 * Decision point limits from the orchestration settings (0007 `tasker.orchestration_settings`,
 * `applyOrchestrationSettings`), driven through the real hops as in dynamic-steps.test.ts: the
 * reference defaults when nothing is configured; max steps per decision and its warning; max decision
 * depth (max_depth_exceeded) and its warning; decision points disabled.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { JsonObject, RegisteredTemplate } from '@tasker/core';
import { BACKENDS, type TestDatabase } from '@tasker/db/testing';
import { Pgmq } from '@tasker/pgmq';
import { ValidationError } from '../src/errors.ts';
import {
  applyOrchestrationSettings,
  DECISION_POINT_DEFAULTS,
  resolveBatchProcessingSettings,
  resolveDecisionPointSettings,
} from '../src/settings.ts';
import { createCoreDatabase } from './db.ts';
import { workerHops } from './hops.ts';
import { type LifecycleTask, LifecycleTestManager, successResult } from './lifecycle.ts';

const APPROVAL_QUEUE = 'worker_conditional_approval_ts_queue';
const DEEP_QUEUE = 'worker_decision_limits_test_queue';
const DATASET_QUEUE = 'worker_data_processing_queue';

/** A batchable outcome of `count` workers of the large dataset template's worker `process_batch`. */
function batches(count: number): JsonObject {
  const cursorConfigs = Array.from({ length: count }, (_, i) => ({
    batch_id: String(i + 1).padStart(3, '0'),
    start_cursor: i * 10,
    end_cursor: (i + 1) * 10,
    batch_size: 10,
  }));
  return successResult({
    batch_processing_outcome: {
      type: 'create_batches',
      worker_template_name: 'process_batch',
      worker_count: count,
      cursor_configs: cursorConfigs,
      total_items: count * 10,
    },
  });
}

/** Three nested decisions: d1 (depth 1) → a → d2 (depth 2) → b → d3 (depth 3) → c. */
const DEEP_TEMPLATE = `
name: deep_decisions
namespace_name: decision_limits_test
version: 1.0.0
steps:
  - { name: start, handler: { callable: T.Start } }
  - { name: d1, type: decision, dependencies: [start], handler: { callable: T.D1 } }
  - { name: a, dependencies: [d1], handler: { callable: T.A } }
  - { name: d2, type: decision, dependencies: [a], handler: { callable: T.D2 } }
  - { name: b, dependencies: [d2], handler: { callable: T.B } }
  - { name: d3, type: decision, dependencies: [b], handler: { callable: T.D3 } }
  - { name: c, dependencies: [d3], handler: { callable: T.C } }
`;

/** What each step of DEEP_TEMPLATE reports: each decision asks for its one child. */
function deepResult(name: string): JsonObject {
  const child: Record<string, string> = { d1: 'a', d2: 'b', d3: 'c' };
  const next = child[name];
  return successResult(
    next === undefined
      ? { step: name }
      : { decision_point_outcome: { type: 'create_steps', step_names: [next] } },
  );
}

describe('batch processing settings: validation', () => {
  it('fills in the reference defaults and rejects a bad limit, an unknown key and a non-boolean switch', () => {
    assert.deepEqual(resolveBatchProcessingSettings(), { enabled: true, maxParallelBatches: 50 });
    for (const bad of [{ maxParallelBatches: 0 }, { maxBatches: 3 }, { enabled: 'no' }]) {
      assert.throws(
        () => resolveBatchProcessingSettings(bad as Parameters<typeof resolveBatchProcessingSettings>[0]),
        ValidationError,
      );
    }
  });
});

describe('decision point settings: validation', () => {
  it('fills in the reference defaults', () => {
    assert.deepEqual(resolveDecisionPointSettings(), {
      enabled: true,
      maxStepsPerDecision: 100,
      warnStepsPerDecision: 50,
      maxDecisionDepth: 20,
      warnDecisionDepth: 10,
    });
    assert.deepEqual(resolveDecisionPointSettings({ maxDecisionDepth: 30 }), {
      ...DECISION_POINT_DEFAULTS,
      maxDecisionDepth: 30,
    });
  });

  const invalid: Array<[string, JsonObject]> = [
    ['a limit of 0', { maxStepsPerDecision: 0 }],
    ['a fractional limit', { maxDecisionDepth: 2.5 }],
    ['a limit that is a string', { warnDecisionDepth: '3' }],
    ['enabled that is not a boolean', { enabled: 'yes' }],
    ['an unknown key', { maxDepth: 3 }],
    ['a step warning above its limit', { maxStepsPerDecision: 10 }],
    ['a depth warning above its limit', { maxDecisionDepth: 5, warnDecisionDepth: 6 }],
  ];
  for (const [label, input] of invalid) {
    it(`rejects ${label}`, () => {
      assert.throws(
        () => resolveDecisionPointSettings(input as Parameters<typeof resolveDecisionPointSettings>[0]),
        ValidationError,
      );
    });
  }
});

for (const backend of BACKENDS) {
  describe(`decision point limits from the settings (${backend})`, () => {
    let t: TestDatabase;
    let manager: LifecycleTestManager;
    let pgmq: Pgmq;
    let approval: RegisteredTemplate;
    let deep: RegisteredTemplate;
    const worker = randomUUID();

    let dataset: RegisteredTemplate;

    before(async () => {
      t = await createCoreDatabase(backend);
      manager = new LifecycleTestManager(t.db);
      pgmq = new Pgmq(t.db);
      await pgmq.createQueue('orchestration_step_results');
      approval = await manager.registerExample('conditional_approval_ts/approval_routing_ts');
      deep = await manager.registerYaml(DEEP_TEMPLATE);
      dataset = await manager.registerExample('data_processing/large_dataset_processor');
    });
    after(() => t.dispose());
    // each test states its settings: none is the reference defaults
    beforeEach(async () => {
      await t.db.query('DELETE FROM tasker.orchestration_settings');
    });

    async function start(registered: RegisteredTemplate, context: JsonObject): Promise<LifecycleTask> {
      for (const queue of [APPROVAL_QUEUE, DEEP_QUEUE, DATASET_QUEUE]) {
        await pgmq.createQueue(queue);
        await pgmq.purgeQueue(queue);
      }
      const task = await manager.createTask(registered, context);
      await t.db.query('SELECT tasker.evaluate_task($1, $2, 50)', [task.uuid, worker]);
      return task;
    }

    const { claim, complete, drain } = workerHops(() => t.db, worker);

    async function stepNames(task: LifecycleTask): Promise<string[]> {
      const { rows } = await t.db.query<{ name: string }>(
        `SELECT ns.name FROM tasker.workflow_steps ws
         JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid WHERE ws.task_uuid = $1 ORDER BY 1`,
        [task.uuid],
      );
      return rows.map((row) => row.name);
    }

    /** The step's state, its results' error and its latest transition's metadata. */
    async function outcomeOf(task: LifecycleTask, name: string) {
      const { rows } = await t.db.query<{
        current_state: string;
        results: { error?: { error_type?: string; context?: JsonObject } };
        metadata: JsonObject;
      }>(
        `SELECT ws.current_state, ws.results, tr.metadata FROM tasker.workflow_steps ws
         JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
         JOIN tasker.workflow_step_transitions tr ON tr.workflow_step_uuid = ws.workflow_step_uuid AND tr.most_recent
         WHERE ws.task_uuid = $1 AND ns.name = $2`,
        [task.uuid, name],
      );
      assert.ok(rows[0], `step ${name}`);
      return rows[0];
    }

    /** Runs validate_request_ts, then completes the decision with `names` to create. */
    async function decideApproval(names: string[]): Promise<LifecycleTask> {
      const task = await start(approval, { amount: 2500, requester: 'a', purpose: 'b' });
      const [validate] = await claim(APPROVAL_QUEUE);
      assert.equal(validate?.context?.step_name, 'validate_request_ts');
      await complete(APPROVAL_QUEUE, validate, successResult({ valid: true }));
      const [decide] = await claim(APPROVAL_QUEUE);
      assert.equal(decide?.context?.step_name, 'routing_decision_ts');
      await complete(
        APPROVAL_QUEUE,
        decide,
        successResult({ decision_point_outcome: { type: 'create_steps', step_names: names } }),
      );
      return task;
    }

    it('reads the reference defaults when nothing is configured', async () => {
      const { rows } = await t.db.query<Record<string, number | boolean>>(
        `SELECT tasker.setting_bool('decision_points.enabled', true) AS enabled,
                tasker.setting_int('decision_points.max_steps_per_decision', 100) AS max_steps,
                tasker.setting_int('decision_points.max_decision_depth', 20) AS max_depth`,
      );
      assert.deepEqual(rows[0], { enabled: true, max_steps: 100, max_depth: 20 });
      // a mistyped value reads as the default
      await t.db.query(
        `INSERT INTO tasker.orchestration_settings (key, value) VALUES
           ('decision_points.enabled', '"no"'), ('decision_points.max_decision_depth', '2.5')`,
      );
      const { rows: mistyped } = await t.db.query<Record<string, number | boolean>>(
        `SELECT tasker.setting_bool('decision_points.enabled', true) AS enabled,
                tasker.setting_int('decision_points.max_decision_depth', 20) AS max_depth`,
      );
      assert.deepEqual(mistyped[0], { enabled: true, max_depth: 20 });
      // three nested decisions and two steps per decision are far below the defaults: no warnings
      const task = await start(deep, {});
      const ran = await drain(DEEP_QUEUE, deepResult);
      assert.deepEqual(ran, ['start', 'd1', 'a', 'd2', 'b', 'd3', 'c']);
      for (const name of ['d1', 'd2', 'd3']) {
        const { current_state, metadata } = await outcomeOf(task, name);
        assert.equal(current_state, 'complete');
        assert.equal(metadata.warnings, undefined, name);
      }
      assert.equal(await task.taskState(), 'complete');
      const approvalTask = await decideApproval(['manager_approval_ts', 'finance_review_ts']);
      assert.deepEqual((await outcomeOf(approvalTask, 'routing_decision_ts')).metadata, {
        created_steps: ['manager_approval_ts', 'finance_review_ts', 'finalize_approval_ts'],
      });
    });

    it('writes every key, with the defaults for those not given, and replaces earlier values', async () => {
      await applyOrchestrationSettings(t.db, {
        decisionPoints: { maxStepsPerDecision: 7, warnStepsPerDecision: 3 },
      });
      await applyOrchestrationSettings(t.db, {
        decisionPoints: { maxStepsPerDecision: 8, warnStepsPerDecision: 3 },
      });
      const { rows } = await t.db.query<{ key: string; value: unknown }>(
        'SELECT key, value FROM tasker.orchestration_settings ORDER BY key',
      );
      assert.deepEqual(
        rows,
        [
          { key: 'decision_points.enabled', value: true },
          { key: 'decision_points.max_decision_depth', value: 20 },
          { key: 'decision_points.max_steps_per_decision', value: 8 },
          { key: 'decision_points.warn_threshold_depth', value: 10 },
          { key: 'decision_points.warn_threshold_steps', value: 3 },
          { key: 'batch_processing.enabled', value: true },
          { key: 'batch_processing.max_parallel_batches', value: 50 },
        ].sort((a, b) => a.key.localeCompare(b.key)),
      );
      // invalid settings write nothing
      await assert.rejects(
        applyOrchestrationSettings(t.db, { decisionPoints: { maxStepsPerDecision: 2 } }),
        ValidationError,
      );
      const { rows: after } = await t.db.query<{ value: unknown }>(
        `SELECT value FROM tasker.orchestration_settings WHERE key = 'decision_points.max_steps_per_decision'`,
      );
      assert.equal(after[0]?.value, 8);
    });

    it('fails a decision asking for more than max steps per decision (too_many_steps)', async () => {
      await applyOrchestrationSettings(t.db, {
        decisionPoints: { maxStepsPerDecision: 1, warnStepsPerDecision: 1 },
      });
      const task = await decideApproval(['manager_approval_ts', 'finance_review_ts']);
      const { current_state, results, metadata } = await outcomeOf(task, 'routing_decision_ts');
      assert.equal(current_state, 'error');
      assert.equal(results.error?.error_type, 'invalid_decision_outcome');
      assert.equal(metadata.code, 'too_many_steps');
      assert.match(String(metadata.message), /at most 1 are allowed/);
      assert.deepEqual(await stepNames(task), ['routing_decision_ts', 'validate_request_ts']);
      assert.equal(await task.taskState(), 'error');
    });

    it('proceeds above the step warning threshold, with a warning in the transition metadata', async () => {
      await applyOrchestrationSettings(t.db, { decisionPoints: { warnStepsPerDecision: 1 } });
      const task = await decideApproval(['manager_approval_ts', 'finance_review_ts']);
      const { current_state, metadata } = await outcomeOf(task, 'routing_decision_ts');
      assert.equal(current_state, 'complete');
      assert.deepEqual(metadata.created_steps, [
        'manager_approval_ts',
        'finance_review_ts',
        'finalize_approval_ts',
      ]);
      assert.ok(Array.isArray(metadata.warnings));
      assert.equal(metadata.warnings.length, 1);
      assert.match(String(metadata.warnings[0]), /asked for 2 steps, above the warning threshold of 1/);
      await drain(APPROVAL_QUEUE, (name) => successResult({ step: name }));
      assert.equal(await task.taskState(), 'complete');
    });

    it('fails a decision deeper than max decision depth (max_depth_exceeded)', async () => {
      await applyOrchestrationSettings(t.db, {
        decisionPoints: { maxDecisionDepth: 2, warnDecisionDepth: 2 },
      });
      const task = await start(deep, {});
      const ran = await drain(DEEP_QUEUE, deepResult);
      assert.deepEqual(ran, ['start', 'd1', 'a', 'd2', 'b', 'd3']);
      for (const name of ['d1', 'd2']) {
        const { current_state, metadata } = await outcomeOf(task, name);
        assert.equal(current_state, 'complete');
        assert.equal(metadata.warnings, undefined, name);
      }
      const { current_state, results, metadata } = await outcomeOf(task, 'd3');
      assert.equal(current_state, 'error');
      assert.equal(results.error?.error_type, 'invalid_decision_outcome');
      assert.equal(results.error?.context?.code, 'max_depth_exceeded');
      assert.equal(results.error?.context?.depth, 3);
      assert.equal(metadata.code, 'max_depth_exceeded');
      assert.match(String(metadata.message), /decision depth 3; at most 2/);
      assert.equal((await stepNames(task)).includes('c'), false);
      assert.equal(await task.taskState(), 'error');
    });

    it('proceeds above the depth warning threshold, with a warning in the transition metadata', async () => {
      await applyOrchestrationSettings(t.db, { decisionPoints: { warnDecisionDepth: 1 } });
      const task = await start(deep, {});
      await drain(DEEP_QUEUE, deepResult);
      assert.equal((await outcomeOf(task, 'd1')).metadata.warnings, undefined);
      for (const [name, depth] of [
        ['d2', 2],
        ['d3', 3],
      ] as const) {
        const { current_state, metadata } = await outcomeOf(task, name);
        assert.equal(current_state, 'complete');
        assert.ok(Array.isArray(metadata.warnings), name);
        assert.match(
          String(metadata.warnings[0]),
          new RegExp(`decision depth ${depth}, above the warning threshold of 1`),
        );
      }
      assert.equal(await task.taskState(), 'complete');
    });

    /** Runs the analyzer of a large dataset task with the given result. */
    async function analyze(result: JsonObject): Promise<LifecycleTask> {
      const task = await start(dataset, { dataset_size: 100 });
      const [analyzer] = await claim(DATASET_QUEUE);
      assert.equal(analyzer?.context?.step_name, 'analyze_dataset');
      await complete(DATASET_QUEUE, analyzer, result);
      return task;
    }

    it('fails a batchable outcome asking for more workers than max parallel batches', async () => {
      await applyOrchestrationSettings(t.db, { batchProcessing: { maxParallelBatches: 2 } });
      const task = await analyze(batches(3));
      const { current_state, metadata } = await outcomeOf(task, 'analyze_dataset');
      assert.equal(current_state, 'error');
      assert.equal(metadata.code, 'too_many_batches');
      assert.deepEqual(await stepNames(task), ['analyze_dataset']);
      const within = await analyze(batches(2));
      assert.deepEqual(await stepNames(within), [
        'aggregate_results',
        'analyze_dataset',
        'process_batch_001',
        'process_batch_002',
      ]);
    });

    it('ignores a batchable outcome when batch processing is disabled: the step completes with a warning', async () => {
      await applyOrchestrationSettings(t.db, { batchProcessing: { enabled: false } });
      const task = await analyze(batches(2));
      const { current_state, metadata } = await outcomeOf(task, 'analyze_dataset');
      assert.equal(current_state, 'complete');
      assert.equal(metadata.skipped, true);
      assert.match(String((metadata.warnings as unknown[])[0]), /batch processing is disabled/);
      assert.deepEqual(await stepNames(task), ['analyze_dataset']);
    });

    it('ignores the outcome when decision points are disabled: the step completes with a warning', async () => {
      await applyOrchestrationSettings(t.db, { decisionPoints: { enabled: false } });
      const task = await decideApproval(['manager_approval_ts', 'finance_review_ts']);
      const { current_state, metadata } = await outcomeOf(task, 'routing_decision_ts');
      assert.equal(current_state, 'complete');
      assert.deepEqual(metadata.created_steps, []);
      assert.equal(metadata.skipped, true);
      assert.ok(Array.isArray(metadata.warnings));
      assert.match(String(metadata.warnings[0]), /decision points are disabled/);
      assert.deepEqual(await stepNames(task), ['routing_decision_ts', 'validate_request_ts']);
      assert.equal(await task.taskState(), 'complete');
      // enabled again, decisions create their steps
      await applyOrchestrationSettings(t.db, { decisionPoints: { enabled: true } });
      const again = await decideApproval(['auto_approve_ts']);
      assert.equal((await stepNames(again)).includes('auto_approve_ts'), true);
    });
  });
}
