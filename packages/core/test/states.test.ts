import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { InvalidTransitionError, TaskerError } from '../src/errors.ts';
import {
  canBeProcessed,
  decideStepTransition,
  decideTaskTransition,
  isInProcessingPipeline,
  isStepTerminal,
  isTaskActive,
  isTaskTerminal,
  isTaskWaiting,
  parseStepState,
  parseTaskState,
  STEP_EVENTS,
  STEP_STATES,
  STEP_TRANSITIONS,
  type StepState,
  satisfiesDependencies,
  stepLifecycleEvent,
  stepTransitionPairs,
  TASK_EVENTS,
  TASK_STATES,
  TASK_TRANSITIONS,
  type TaskState,
  taskLifecycleEvent,
  taskTransitionPairs,
} from '../src/states.ts';

// The expected machines, written independently of src/states.ts from reference A §4.2 / §4.4 / §4.5
// plus the rows added there (marked ADDED). One line: from, event, to, lifecycle event ("-": none).

const TASK_NON_TERMINAL = [
  'pending',
  'initializing',
  'enqueuing_steps',
  'steps_in_process',
  'evaluating_results',
  'waiting_for_dependencies',
  'waiting_for_retry',
  'blocked_by_failures',
];
const TASK_TERMINAL = ['complete', 'error', 'cancelled', 'resolved_manually'];

const EXPECTED_TASK_ROWS: readonly string[] = [
  '(none)                   initialize            pending                   -', // ADDED: creation
  'pending                  start                 initializing              task.initialize_requested',
  'initializing             ready_steps_found     enqueuing_steps           task.steps_discovery_completed',
  'initializing             no_steps_found        complete                  task.completed',
  'initializing             no_dependencies_ready waiting_for_dependencies  task.awaiting_dependencies',
  'enqueuing_steps          steps_enqueued        steps_in_process          task.steps_enqueued',
  'enqueuing_steps          enqueue_failed        error                     task.failed',
  'steps_in_process         all_steps_completed   evaluating_results        task.step_results_received',
  'steps_in_process         step_completed        evaluating_results        task.step_results_received',
  'steps_in_process         step_failed           waiting_for_retry         task.retry_backoff_started',
  'steps_in_process         complete              complete                  task.completed',
  'steps_in_process         fail                  error                     task.failed',
  'steps_in_process         permanent_failure     blocked_by_failures       task.blocked_by_failures', // ADDED
  'steps_in_process         staleness_timeout     error                     task.failed', // ADDED
  'evaluating_results       all_steps_successful  complete                  task.completed',
  'evaluating_results       ready_steps_found     enqueuing_steps           -',
  'evaluating_results       no_dependencies_ready waiting_for_dependencies  task.awaiting_dependencies',
  'evaluating_results       permanent_failure     blocked_by_failures       task.blocked_by_failures',
  'evaluating_results       steps_in_flight       steps_in_process          -', // ADDED (0006)
  'evaluating_results       step_failed           waiting_for_retry         task.retry_backoff_started', // ADDED (0006)
  'waiting_for_dependencies dependencies_ready    evaluating_results        task.dependencies_satisfied',
  'waiting_for_dependencies staleness_timeout     error                     task.failed', // ADDED
  'waiting_for_retry        retry_ready           enqueuing_steps           -',
  'waiting_for_retry        staleness_timeout     error                     task.failed', // ADDED
  'blocked_by_failures      give_up               error                     task.failed',
  'blocked_by_failures      manual_resolution     resolved_manually         task.resolved_manually',
  'blocked_by_failures      resume                evaluating_results        -', // ADDED
  ...TASK_NON_TERMINAL.map((from) => `${from} cancel cancelled task.cancelled`),
  ...TASK_NON_TERMINAL.map((from) => `${from} resolve_manually resolved_manually task.resolved_manually`),
];

const STEP_ALL = [
  'pending',
  'enqueued',
  'in_progress',
  'enqueued_for_orchestration',
  'enqueued_as_error_for_orchestration',
  'waiting_for_retry',
  'complete',
  'error',
  'cancelled',
  'resolved_manually',
];
const STEP_CANCELLABLE = STEP_ALL.filter((s) => !['complete', 'cancelled', 'resolved_manually'].includes(s));

const EXPECTED_STEP_ROWS: readonly string[] = [
  '(none)                              initialize                         pending                             -', // ADDED
  'pending                             enqueue                            enqueued                            step.enqueue_requested',
  'enqueued                            start                              in_progress                         step.execution_requested',
  'pending                             start                              in_progress                         step.handle',
  'in_progress                         enqueue_for_orchestration          enqueued_for_orchestration          step.enqueued_for_orchestration',
  'in_progress                         enqueue_as_error_for_orchestration enqueued_as_error_for_orchestration step.enqueued_as_error_for_orchestration',
  'enqueued_for_orchestration          complete                           complete                            step.completed',
  'enqueued_for_orchestration          fail                               error                               step.failed',
  'enqueued_as_error_for_orchestration fail                               error                               step.failed',
  'enqueued_as_error_for_orchestration complete                           complete                            step.completed',
  'enqueued_as_error_for_orchestration wait_for_retry                     waiting_for_retry                   step.retry_requested',
  'pending                             wait_for_retry                     waiting_for_retry                   step.retry_requested',
  'enqueued                            wait_for_retry                     waiting_for_retry                   step.retry_requested',
  'in_progress                         wait_for_retry                     waiting_for_retry                   step.retry_requested',
  'in_progress                         complete                           complete                            step.completed',
  'in_progress                         fail                               error                               step.failed',
  'in_progress                         reclaim                            in_progress                         step.handle', // ADDED (0006)
  'pending                             fail                               error                               step.failed',
  'enqueued                            fail                               error                               step.failed',
  'waiting_for_retry                   retry                              pending                             step.retry_requested',
  'error                               retry                              pending                             step.retry_requested',
  'error                               reset_for_retry                    pending                             step.retry_requested',
  ...STEP_CANCELLABLE.map((from) => `${from} cancel cancelled step.cancelled`),
  ...STEP_ALL.map((from) => `${from} complete_manually complete step.completed`),
  ...STEP_ALL.map((from) => `${from} resolve_manually resolved_manually step.resolved_manually`),
];

interface Expected {
  to: string;
  lifecycleEvent: string | null;
}

function key(from: string | null, event: string): string {
  return `${from ?? '(none)'} ${event}`;
}

function parseExpected(rows: readonly string[]): Map<string, Expected> {
  const map = new Map<string, Expected>();
  for (const row of rows) {
    const [from, event, to, lifecycle, ...rest] = row.trim().split(/\s+/);
    assert.ok(from && event && to && lifecycle && rest.length === 0, `bad expected row: ${row}`);
    const k = `${from} ${event}`;
    assert.ok(!map.has(k), `duplicate expected row: ${k}`);
    map.set(k, { to, lifecycleEvent: lifecycle === '-' ? null : lifecycle });
  }
  return map;
}

const EXPECTED_TASK = parseExpected(EXPECTED_TASK_ROWS);
const EXPECTED_STEP = parseExpected(EXPECTED_STEP_ROWS);

function assertInvalid(fn: () => unknown, from: string | null, event: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(
      error instanceof InvalidTransitionError,
      `expected InvalidTransitionError, got ${String(error)}`,
    );
    assert.equal(error.code, 'INVALID_TRANSITION');
    assert.equal(error.from, from);
    assert.equal(error.event, event);
    return true;
  });
}

describe('states and events', () => {
  it('has the 12 task states and 10 step states of A §4.1 / §4.3', () => {
    assert.deepEqual([...TASK_STATES], [...TASK_NON_TERMINAL, ...TASK_TERMINAL]);
    assert.deepEqual([...STEP_STATES], STEP_ALL);
  });

  it('has the task events', () => {
    assert.deepEqual(
      [...TASK_EVENTS].sort(),
      [
        'initialize',
        'start',
        'ready_steps_found',
        'no_steps_found',
        'no_dependencies_ready',
        'steps_enqueued',
        'enqueue_failed',
        'all_steps_completed',
        'step_completed',
        'step_failed',
        'all_steps_successful',
        'permanent_failure',
        'dependencies_ready',
        'retry_ready',
        'give_up',
        'manual_resolution',
        'cancel',
        'resolve_manually',
        'complete',
        'fail',
        'staleness_timeout',
        'resume',
        'steps_in_flight',
      ].sort(),
    );
  });

  it('has the step events', () => {
    assert.deepEqual(
      [...STEP_EVENTS].sort(),
      [
        'initialize',
        'enqueue',
        'start',
        'enqueue_for_orchestration',
        'enqueue_as_error_for_orchestration',
        'complete',
        'fail',
        'wait_for_retry',
        'retry',
        'reset_for_retry',
        'cancel',
        'complete_manually',
        'resolve_manually',
        'reclaim',
      ].sort(),
    );
  });
});

describe('task transitions: every (state, event)', () => {
  for (const from of [null, ...TASK_STATES]) {
    for (const event of TASK_EVENTS) {
      const expected = EXPECTED_TASK.get(key(from, event));
      it(`${key(from, event)} → ${expected?.to ?? 'rejected'}`, () => {
        if (expected === undefined) {
          assertInvalid(() => decideTaskTransition(from, event), from, event);
        } else {
          assert.deepEqual(decideTaskTransition(from, event), expected);
        }
      });
    }
  }

  it('the table holds exactly the expected rows', () => {
    assert.equal(TASK_TRANSITIONS.length, EXPECTED_TASK.size);
  });

  it('terminal states reject every event, saying so', () => {
    for (const from of TASK_STATES.filter(isTaskTerminal)) {
      for (const event of TASK_EVENTS) {
        assert.throws(() => decideTaskTransition(from, event), /terminal state/);
      }
    }
    assert.equal(
      TASK_TRANSITIONS.filter((rule) => rule.from !== null && isTaskTerminal(rule.from)).length,
      0,
    );
  });
});

describe('step transitions: every (state, event)', () => {
  for (const from of [null, ...STEP_STATES]) {
    for (const event of STEP_EVENTS) {
      const expected = EXPECTED_STEP.get(key(from, event));
      it(`${key(from, event)} → ${expected?.to ?? 'rejected'}`, () => {
        if (expected === undefined) {
          assertInvalid(() => decideStepTransition(from, event, { dependenciesMet: true }), from, event);
          assertInvalid(() => decideStepTransition(from, event), from, event);
        } else {
          assert.deepEqual(decideStepTransition(from, event, { dependenciesMet: true }), expected);
        }
      });
    }
  }

  it('the table holds exactly the expected rows', () => {
    assert.equal(STEP_TRANSITIONS.length, EXPECTED_STEP.size);
  });
});

describe('step guards', () => {
  const STEP_TO: Record<'enqueue' | 'start', StepState> = { enqueue: 'enqueued', start: 'in_progress' };
  for (const event of ['enqueue', 'start'] as const) {
    it(`pending -${event}-> needs dependencies met`, () => {
      assertInvalid(
        () => decideStepTransition('pending', event, { dependenciesMet: false }),
        'pending',
        event,
      );
      assert.throws(
        () => decideStepTransition('pending', event, { dependenciesMet: false }),
        /dependencies are not met/,
      );
      assert.equal(decideStepTransition('pending', event, { dependenciesMet: true }).to, STEP_TO[event]);
    });

    it(`pending -${event}-> without the dependency check is a programming error`, () => {
      assert.throws(
        () => decideStepTransition('pending', event),
        (error: unknown) =>
          error instanceof TaskerError &&
          !(error instanceof InvalidTransitionError) &&
          error.code === 'GUARD_CONTEXT_MISSING',
      );
    });
  }

  it('only pending -enqueue-> and pending -start-> are guarded', () => {
    const guarded = STEP_TRANSITIONS.filter((rule) => rule.guard !== undefined).map((r) =>
      key(r.from, r.event),
    );
    assert.deepEqual(guarded.sort(), ['pending enqueue', 'pending start']);
  });

  it('enqueued -start-> (the worker claim) needs no dependency check', () => {
    assert.equal(decideStepTransition('enqueued', 'start').to, 'in_progress');
    assert.equal(decideStepTransition('enqueued', 'start', { dependenciesMet: false }).to, 'in_progress');
  });

  it('retry leaves only error and waiting_for_retry; reset_for_retry only error', () => {
    for (const from of STEP_STATES) {
      const retry = from === 'error' || from === 'waiting_for_retry';
      if (retry) assert.equal(decideStepTransition(from, 'retry').to, 'pending');
      else assertInvalid(() => decideStepTransition(from, 'retry'), from, 'retry');
      if (from === 'error') assert.equal(decideStepTransition(from, 'reset_for_retry').to, 'pending');
      else assertInvalid(() => decideStepTransition(from, 'reset_for_retry'), from, 'reset_for_retry');
    }
  });

  it('complete_manually and resolve_manually apply from every step state', () => {
    for (const from of STEP_STATES) {
      assert.equal(decideStepTransition(from, 'complete_manually').to, 'complete');
      assert.equal(decideStepTransition(from, 'resolve_manually').to, 'resolved_manually');
    }
  });
});

describe('tables', () => {
  it('each (from, event) has one rule', () => {
    for (const rules of [TASK_TRANSITIONS, STEP_TRANSITIONS]) {
      const keys = rules.map((r) => key(r.from, r.event));
      assert.equal(new Set(keys).size, keys.length);
    }
  });

  it('creation is NULL -initialize-> pending only', () => {
    assert.deepEqual(
      TASK_TRANSITIONS.filter((r) => r.from === null),
      [{ from: null, event: 'initialize', to: 'pending' }],
    );
    assert.deepEqual(
      STEP_TRANSITIONS.filter((r) => r.from === null),
      [{ from: null, event: 'initialize', to: 'pending' }],
    );
  });

  it('transition pairs are the distinct (from, to) of the tables', () => {
    const cases = [
      { pairs: taskTransitionPairs(), rules: TASK_TRANSITIONS },
      { pairs: stepTransitionPairs(), rules: STEP_TRANSITIONS },
    ];
    for (const { pairs, rules } of cases) {
      const pairKeys = pairs.map((p) => `${p.from ?? ''}/${p.to}`);
      assert.equal(new Set(pairKeys).size, pairKeys.length, 'pairs are distinct');
      assert.deepEqual(new Set(pairKeys), new Set(rules.map((r) => `${r.from ?? ''}/${r.to}`)));
    }
    assert.ok(taskTransitionPairs().some((p) => p.from === null && p.to === 'pending'));
    // steps_in_process reaches evaluating_results by two events, but that is one pair
    assert.equal(
      taskTransitionPairs().filter((p) => p.from === 'steps_in_process' && p.to === 'evaluating_results')
        .length,
      1,
    );
  });
});

describe('predicates', () => {
  const taskCases: [string, (s: TaskState) => boolean, string[]][] = [
    ['isTaskTerminal', isTaskTerminal, TASK_TERMINAL],
    ['canBeProcessed', canBeProcessed, ['pending', 'waiting_for_dependencies', 'waiting_for_retry']],
    [
      'isTaskActive',
      isTaskActive,
      ['initializing', 'enqueuing_steps', 'steps_in_process', 'evaluating_results'],
    ],
    [
      'isTaskWaiting',
      isTaskWaiting,
      ['waiting_for_dependencies', 'waiting_for_retry', 'blocked_by_failures'],
    ],
  ];
  for (const [name, predicate, expected] of taskCases) {
    it(name, () => {
      assert.deepEqual(TASK_STATES.filter(predicate), expected);
    });
  }

  const stepCases: [string, (s: StepState) => boolean, string[]][] = [
    ['isStepTerminal (not error)', isStepTerminal, ['complete', 'cancelled', 'resolved_manually']],
    ['satisfiesDependencies', satisfiesDependencies, ['complete', 'resolved_manually']],
    [
      'isInProcessingPipeline',
      isInProcessingPipeline,
      ['enqueued', 'in_progress', 'enqueued_for_orchestration', 'enqueued_as_error_for_orchestration'],
    ],
  ];
  for (const [name, predicate, expected] of stepCases) {
    it(name, () => {
      assert.deepEqual(STEP_STATES.filter(predicate), expected);
    });
  }
});

describe('parsing', () => {
  function assertInvalidState(fn: () => unknown): void {
    assert.throws(fn, (error: unknown) => error instanceof TaskerError && error.code === 'INVALID_STATE');
  }

  it('parses every task state and the legacy in_progress', () => {
    for (const state of TASK_STATES) assert.equal(parseTaskState(state), state);
    assert.equal(parseTaskState('in_progress'), 'steps_in_process');
  });

  it('parses every step state', () => {
    for (const state of STEP_STATES) assert.equal(parseStepState(state), state);
    assert.equal(parseStepState('in_progress'), 'in_progress');
  });

  it('rejects anything else with INVALID_STATE', () => {
    for (const bad of ['', 'PENDING', ' pending', 'started', 'StepsInProcess', 42, null, undefined, {}]) {
      assertInvalidState(() => parseTaskState(bad));
      assertInvalidState(() => parseStepState(bad));
    }
    assertInvalidState(() => parseStepState('steps_in_process'));
    assertInvalidState(() => parseTaskState('enqueued'));
  });
});

// A §4.5, row by row. `from: '*'` is any state (and no state); `except` leaves some out.
interface LifecycleRow {
  from: readonly string[] | '*';
  except?: readonly string[];
  to: string;
  name: string;
}

const TASK_LIFECYCLE_ROWS: readonly LifecycleRow[] = [
  { from: ['pending'], to: 'initializing', name: 'task.initialize_requested' },
  { from: ['initializing'], to: 'enqueuing_steps', name: 'task.steps_discovery_completed' },
  { from: ['enqueuing_steps'], to: 'steps_in_process', name: 'task.steps_enqueued' },
  { from: ['steps_in_process'], to: 'evaluating_results', name: 'task.step_results_received' },
  { from: '*', to: 'waiting_for_dependencies', name: 'task.awaiting_dependencies' },
  { from: ['waiting_for_dependencies'], to: 'evaluating_results', name: 'task.dependencies_satisfied' },
  { from: '*', to: 'waiting_for_retry', name: 'task.retry_backoff_started' },
  { from: '*', to: 'blocked_by_failures', name: 'task.blocked_by_failures' },
  { from: '*', to: 'complete', name: 'task.completed' },
  { from: '*', to: 'error', name: 'task.failed' },
  { from: '*', to: 'cancelled', name: 'task.cancelled' },
  { from: '*', to: 'resolved_manually', name: 'task.resolved_manually' },
  { from: ['error', 'waiting_for_retry'], to: 'pending', name: 'task.retry_requested' },
];

const STEP_LIFECYCLE_ROWS: readonly LifecycleRow[] = [
  { from: ['pending'], to: 'enqueued', name: 'step.enqueue_requested' },
  { from: ['enqueued'], to: 'in_progress', name: 'step.execution_requested' },
  { from: '*', except: ['enqueued'], to: 'in_progress', name: 'step.handle' },
  { from: '*', to: 'enqueued_for_orchestration', name: 'step.enqueued_for_orchestration' },
  { from: '*', to: 'enqueued_as_error_for_orchestration', name: 'step.enqueued_as_error_for_orchestration' },
  { from: '*', to: 'waiting_for_retry', name: 'step.retry_requested' },
  { from: ['error', 'waiting_for_retry'], to: 'pending', name: 'step.retry_requested' },
  { from: '*', to: 'complete', name: 'step.completed' },
  { from: '*', to: 'error', name: 'step.failed' },
  { from: '*', to: 'cancelled', name: 'step.cancelled' },
  { from: '*', to: 'resolved_manually', name: 'step.resolved_manually' },
];

function rowMatches(row: LifecycleRow, from: string | null, to: string): boolean {
  if (row.to !== to) return false;
  if (row.from === '*') return from === null || !(row.except ?? []).includes(from);
  return from !== null && row.from.includes(from);
}

function checkLifecycleTable<S extends string>(
  rows: readonly LifecycleRow[],
  states: readonly S[],
  lifecycle: (from: S | null, to: S) => string | null,
): void {
  for (const from of [null, ...states]) {
    for (const to of states) {
      const matching = rows.filter((row) => rowMatches(row, from, to));
      assert.ok(matching.length <= 1, `rows overlap for ${from} → ${to}`);
      assert.equal(lifecycle(from, to), matching[0]?.name ?? null, `${from ?? '(none)'} → ${to}`);
    }
  }
}

describe('lifecycle event names (A §4.5)', () => {
  for (const row of TASK_LIFECYCLE_ROWS) {
    it(`task ${row.from === '*' ? '*' : row.from.join('|')} → ${row.to}: ${row.name}`, () => {
      const froms = row.from === '*' ? [null, ...TASK_STATES] : row.from.map(parseTaskState);
      for (const from of froms) assert.equal(taskLifecycleEvent(from, parseTaskState(row.to)), row.name);
    });
  }
  for (const row of STEP_LIFECYCLE_ROWS) {
    const except = row.except ?? [];
    const fromLabel = row.from === '*' ? '*' : row.from.join('|');
    const exceptLabel = except.length > 0 ? ` (not ${except.join('|')})` : '';
    it(`step ${fromLabel}${exceptLabel} → ${row.to}: ${row.name}`, () => {
      const froms =
        row.from === '*'
          ? [null, ...STEP_STATES.filter((s) => !except.includes(s))]
          : row.from.map(parseStepState);
      for (const from of froms) assert.equal(stepLifecycleEvent(from, parseStepState(row.to)), row.name);
    });
  }

  it('every other task pair publishes nothing', () => {
    checkLifecycleTable(TASK_LIFECYCLE_ROWS, TASK_STATES, taskLifecycleEvent);
    assert.equal(taskLifecycleEvent('evaluating_results', 'enqueuing_steps'), null);
    assert.equal(taskLifecycleEvent(null, 'pending'), null);
  });

  it('every other step pair publishes nothing', () => {
    checkLifecycleTable(STEP_LIFECYCLE_ROWS, STEP_STATES, stepLifecycleEvent);
    assert.equal(stepLifecycleEvent(null, 'pending'), null);
  });
});

describe('transition rules in the migrations', () => {
  // 0002 holds the tables; later migrations add rows (migrations are immutable once applied).
  const directory = new URL('../migrations/', import.meta.url);
  const sql = readdirSync(directory)
    .filter((file) => file.endsWith('.sql'))
    .sort()
    .map((file) => readFileSync(new URL(file, directory), 'utf8'))
    .join('\n')
    .split('\n')
    .map((line) => line.replace(/--.*$/, ''))
    .join('\n');

  function sqlRows(table: string): string[] {
    const statement = new RegExp(
      `INSERT INTO tasker\\.${table} \\(from_state, event, to_state\\) VALUES([^;]*);`,
      'g',
    );
    const bodies = [...sql.matchAll(statement)].map((match) => match[1] ?? '');
    assert.ok(bodies.length >= 1, `an INSERT into ${table}`);
    const tuple = /\(\s*(NULL|'[a-z_]+')\s*,\s*'([a-z_]+)'\s*,\s*'([a-z_]+)'\s*\)/g;
    return bodies.flatMap((body) => {
      // Nothing but tuples, commas and blanks: no row escapes the regex.
      assert.match(body.replace(tuple, ''), /^[\s,]*$/);
      return [...body.matchAll(tuple)].map(([, from, event, to]) => {
        const fromState = from === 'NULL' ? null : (from ?? '').slice(1, -1);
        return `${fromState ?? '(none)'} ${event} ${to}`;
      });
    });
  }

  function tsRows(rules: readonly { from: string | null; event: string; to: string }[]): string[] {
    return rules.map((r) => `${r.from ?? '(none)'} ${r.event} ${r.to}`);
  }

  it('task_transition_rules holds exactly TASK_TRANSITIONS', () => {
    const rows = sqlRows('task_transition_rules');
    assert.equal(new Set(rows).size, rows.length, 'no duplicate rows');
    assert.deepEqual(new Set(rows), new Set(tsRows(TASK_TRANSITIONS)));
  });

  it('step_transition_rules holds exactly STEP_TRANSITIONS', () => {
    const rows = sqlRows('step_transition_rules');
    assert.equal(new Set(rows).size, rows.length, 'no duplicate rows');
    assert.deepEqual(new Set(rows), new Set(tsRows(STEP_TRANSITIONS)));
  });
});
