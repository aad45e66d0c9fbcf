/**
 * The task and step state machines (reference A §4), as pure data and functions: no I/O.
 *
 * Each machine is ONE table of allowed `(from, event, to)` rules. Every transition the system writes
 * (enqueuer, worker, result processing, finalizer, staleness detector, operators) is decided here,
 * and the database holds the same rows (migration 0002_state_rules.sql, kept equal by a test), so
 * its compare-and-swap enforces the same table. There are no side doors: the rows the original wrote
 * outside its guard (A §3.5, §4.2 notes, §9 #13) are in the tables, each marked "ADDED" below.
 *
 * Events carry no payload. Where the original's event had data (counts, uuids, messages, results),
 * the caller puts it into the transition's metadata.
 */
import { InvalidTransitionError, TaskerError } from './errors.ts';

// ---------------------------------------------------------------------------------------------------
// Task states (A §4.1)
// ---------------------------------------------------------------------------------------------------

export const TASK_STATES = [
  'pending',
  'initializing',
  'enqueuing_steps',
  'steps_in_process',
  'evaluating_results',
  'waiting_for_dependencies',
  'waiting_for_retry',
  'blocked_by_failures',
  'complete',
  'error',
  'cancelled',
  'resolved_manually',
] as const;
export type TaskState = (typeof TASK_STATES)[number];

const TASK_TERMINAL: ReadonlySet<TaskState> = new Set<TaskState>([
  'complete',
  'error',
  'cancelled',
  'resolved_manually',
]);
const TASK_ACTIVE: ReadonlySet<TaskState> = new Set<TaskState>([
  'initializing',
  'enqueuing_steps',
  'steps_in_process',
  'evaluating_results',
]);
const TASK_WAITING: ReadonlySet<TaskState> = new Set<TaskState>([
  'waiting_for_dependencies',
  'waiting_for_retry',
  'blocked_by_failures',
]);
const TASK_PROCESSABLE: ReadonlySet<TaskState> = new Set<TaskState>([
  'pending',
  'waiting_for_dependencies',
  'waiting_for_retry',
]);

/** complete, error, cancelled, resolved_manually: no transition leaves them. */
export function isTaskTerminal(state: TaskState): boolean {
  return TASK_TERMINAL.has(state);
}

/** The states task discovery offers: pending, waiting_for_dependencies, waiting_for_retry. */
export function canBeProcessed(state: TaskState): boolean {
  return TASK_PROCESSABLE.has(state);
}

/** initializing, enqueuing_steps, steps_in_process, evaluating_results. */
export function isTaskActive(state: TaskState): boolean {
  return TASK_ACTIVE.has(state);
}

/** waiting_for_dependencies, waiting_for_retry, blocked_by_failures. */
export function isTaskWaiting(state: TaskState): boolean {
  return TASK_WAITING.has(state);
}

export function isTaskState(value: unknown): value is TaskState {
  return typeof value === 'string' && (TASK_STATES as readonly string[]).includes(value);
}

/** Reads a stored task state. Accepts the legacy `in_progress` as `steps_in_process`. */
export function parseTaskState(text: unknown): TaskState {
  if (text === 'in_progress') return 'steps_in_process';
  if (isTaskState(text)) return text;
  throw new TaskerError('INVALID_STATE', `unknown task state ${describe(text)}`);
}

// ---------------------------------------------------------------------------------------------------
// Step states (A §4.3)
// ---------------------------------------------------------------------------------------------------

export const STEP_STATES = [
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
] as const;
export type StepState = (typeof STEP_STATES)[number];

const STEP_TERMINAL: ReadonlySet<StepState> = new Set<StepState>([
  'complete',
  'cancelled',
  'resolved_manually',
]);
const STEP_SATISFIES_DEPENDENCIES: ReadonlySet<StepState> = new Set<StepState>([
  'complete',
  'resolved_manually',
]);
const STEP_IN_PIPELINE: ReadonlySet<StepState> = new Set<StepState>([
  'enqueued',
  'in_progress',
  'enqueued_for_orchestration',
  'enqueued_as_error_for_orchestration',
]);

/** complete, cancelled, resolved_manually. NOT error: an errored step can still be retried or resolved. */
export function isStepTerminal(state: StepState): boolean {
  return STEP_TERMINAL.has(state);
}

/** complete and resolved_manually let dependents run; cancelled does not. */
export function satisfiesDependencies(state: StepState): boolean {
  return STEP_SATISFIES_DEPENDENCIES.has(state);
}

/** enqueued, in_progress and the two enqueued_*_for_orchestration states. */
export function isInProcessingPipeline(state: StepState): boolean {
  return STEP_IN_PIPELINE.has(state);
}

export function isStepState(value: unknown): value is StepState {
  return typeof value === 'string' && (STEP_STATES as readonly string[]).includes(value);
}

/** Reads a stored step state. */
export function parseStepState(text: unknown): StepState {
  if (isStepState(text)) return text;
  throw new TaskerError('INVALID_STATE', `unknown step state ${describe(text)}`);
}

function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value.slice(0, 64)) : `(${typeof value})`;
}

// ---------------------------------------------------------------------------------------------------
// Task events and transitions (A §4.2)
// ---------------------------------------------------------------------------------------------------

/**
 * The original's `Timeout` and `ProcessorCrashed` map to no transition, and its `Reset` only to the
 * unreachable `error → pending` (see below), so none of the three exists here.
 */
export const TASK_EVENTS = [
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
] as const;
export type TaskEvent = (typeof TASK_EVENTS)[number];

export interface TaskTransitionRule {
  /** `null`: the task has no transition yet (creation). */
  readonly from: TaskState | null;
  readonly event: TaskEvent;
  readonly to: TaskState;
}

/**
 * Every allowed task transition. Nothing leaves a terminal state (complete, error, cancelled,
 * resolved_manually): the original declared `error -reset-> pending`, but its guard rejected
 * anything out of a terminal state first, so that row never applied and is left out (A §9 #7).
 */
export const TASK_TRANSITIONS: readonly TaskTransitionRule[] = Object.freeze([
  // ADDED: creation writes the first row (from NULL) in the task's creation transaction (A §3.1).
  { from: null, event: 'initialize', to: 'pending' },

  { from: 'pending', event: 'start', to: 'initializing' },

  { from: 'initializing', event: 'ready_steps_found', to: 'enqueuing_steps' },
  { from: 'initializing', event: 'no_steps_found', to: 'complete' },
  { from: 'initializing', event: 'no_dependencies_ready', to: 'waiting_for_dependencies' },

  { from: 'enqueuing_steps', event: 'steps_enqueued', to: 'steps_in_process' },
  { from: 'enqueuing_steps', event: 'enqueue_failed', to: 'error' },

  { from: 'steps_in_process', event: 'all_steps_completed', to: 'evaluating_results' },
  { from: 'steps_in_process', event: 'step_completed', to: 'evaluating_results' },
  { from: 'steps_in_process', event: 'step_failed', to: 'waiting_for_retry' },
  { from: 'steps_in_process', event: 'complete', to: 'complete' }, // legacy
  { from: 'steps_in_process', event: 'fail', to: 'error' }, // legacy
  // ADDED: the finalizer's error path from any state but blocked_by_failures/error (A §3.5, §9 #13).
  // Only steps_in_process is added: result processing moves the task to evaluating_results first,
  // which already has this event, and waiting states go through evaluating_results too.
  { from: 'steps_in_process', event: 'permanent_failure', to: 'blocked_by_failures' },
  // ADDED: staleness detector's CAS to error (A §2.5, §5.4), from the three staleness-eligible states.
  { from: 'steps_in_process', event: 'staleness_timeout', to: 'error' },

  { from: 'evaluating_results', event: 'all_steps_successful', to: 'complete' },
  { from: 'evaluating_results', event: 'ready_steps_found', to: 'enqueuing_steps' },
  { from: 'evaluating_results', event: 'no_dependencies_ready', to: 'waiting_for_dependencies' },
  { from: 'evaluating_results', event: 'permanent_failure', to: 'blocked_by_failures' },
  // ADDED (0006): results were applied but other steps still run; the original had no way back and
  // left such tasks in evaluating_results, which staleness detection does not watch.
  { from: 'evaluating_results', event: 'steps_in_flight', to: 'steps_in_process' },
  // ADDED (0006): nothing runs and the only work left is a step waiting for its retry; discovery's
  // due-retry branch looks at waiting_for_retry tasks.
  { from: 'evaluating_results', event: 'step_failed', to: 'waiting_for_retry' },

  { from: 'waiting_for_dependencies', event: 'dependencies_ready', to: 'evaluating_results' },
  // ADDED: staleness detector (see steps_in_process).
  { from: 'waiting_for_dependencies', event: 'staleness_timeout', to: 'error' },

  { from: 'waiting_for_retry', event: 'retry_ready', to: 'enqueuing_steps' },
  // ADDED: staleness detector (see steps_in_process).
  { from: 'waiting_for_retry', event: 'staleness_timeout', to: 'error' },

  { from: 'blocked_by_failures', event: 'give_up', to: 'error' }, // finalizer, second pass
  { from: 'blocked_by_failures', event: 'manual_resolution', to: 'resolved_manually' }, // operator
  // ADDED: operator resume once failed steps are fixed (reset / resolved / completed manually):
  // the task is evaluated again instead of staying blocked (A §5.4 #6; error itself stays terminal).
  { from: 'blocked_by_failures', event: 'resume', to: 'evaluating_results' },

  // API cancel, from every non-terminal state ("any non-terminal" in A §4.2, written out).
  { from: 'pending', event: 'cancel', to: 'cancelled' },
  { from: 'initializing', event: 'cancel', to: 'cancelled' },
  { from: 'enqueuing_steps', event: 'cancel', to: 'cancelled' },
  { from: 'steps_in_process', event: 'cancel', to: 'cancelled' },
  { from: 'evaluating_results', event: 'cancel', to: 'cancelled' },
  { from: 'waiting_for_dependencies', event: 'cancel', to: 'cancelled' },
  { from: 'waiting_for_retry', event: 'cancel', to: 'cancelled' },
  { from: 'blocked_by_failures', event: 'cancel', to: 'cancelled' },

  // Legacy manual resolution, from every non-terminal state (written out likewise).
  { from: 'pending', event: 'resolve_manually', to: 'resolved_manually' },
  { from: 'initializing', event: 'resolve_manually', to: 'resolved_manually' },
  { from: 'enqueuing_steps', event: 'resolve_manually', to: 'resolved_manually' },
  { from: 'steps_in_process', event: 'resolve_manually', to: 'resolved_manually' },
  { from: 'evaluating_results', event: 'resolve_manually', to: 'resolved_manually' },
  { from: 'waiting_for_dependencies', event: 'resolve_manually', to: 'resolved_manually' },
  { from: 'waiting_for_retry', event: 'resolve_manually', to: 'resolved_manually' },
  { from: 'blocked_by_failures', event: 'resolve_manually', to: 'resolved_manually' },
] satisfies TaskTransitionRule[]);

// ---------------------------------------------------------------------------------------------------
// Step events and transitions (A §4.4)
// ---------------------------------------------------------------------------------------------------

export const STEP_EVENTS = [
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
] as const;
export type StepEvent = (typeof STEP_EVENTS)[number];

/** A check beyond the table: `dependencies_met` needs every parent complete or resolved_manually. */
export type StepGuard = 'dependencies_met';

export interface StepTransitionRule {
  /** `null`: the step has no transition yet (creation). */
  readonly from: StepState | null;
  readonly event: StepEvent;
  readonly to: StepState;
  readonly guard?: StepGuard;
}

/**
 * Every allowed step transition. Unlike tasks there is no terminal rule: manual completion and
 * resolution apply from any state, and `error` is not terminal (retry, reset, cancel).
 */
export const STEP_TRANSITIONS: readonly StepTransitionRule[] = Object.freeze([
  // ADDED: creation writes the first row (from NULL) in the task's creation transaction (A §3.1).
  { from: null, event: 'initialize', to: 'pending' },

  { from: 'pending', event: 'enqueue', to: 'enqueued', guard: 'dependencies_met' },
  { from: 'pending', event: 'start', to: 'in_progress', guard: 'dependencies_met' }, // legacy claim
  { from: 'pending', event: 'wait_for_retry', to: 'waiting_for_retry' },
  { from: 'pending', event: 'fail', to: 'error' },

  { from: 'enqueued', event: 'start', to: 'in_progress' }, // worker claim
  { from: 'enqueued', event: 'wait_for_retry', to: 'waiting_for_retry' },
  { from: 'enqueued', event: 'fail', to: 'error' },

  { from: 'in_progress', event: 'enqueue_for_orchestration', to: 'enqueued_for_orchestration' },
  {
    from: 'in_progress',
    event: 'enqueue_as_error_for_orchestration',
    to: 'enqueued_as_error_for_orchestration',
  },
  { from: 'in_progress', event: 'wait_for_retry', to: 'waiting_for_retry' },
  { from: 'in_progress', event: 'complete', to: 'complete' }, // legacy
  { from: 'in_progress', event: 'fail', to: 'error' },
  // ADDED (0006): a worker takes over a step whose previous worker's lease (its message's visibility
  // timeout) ran out without a result; attempts + 1 like any claim.
  { from: 'in_progress', event: 'reclaim', to: 'in_progress' },

  { from: 'enqueued_for_orchestration', event: 'complete', to: 'complete' },
  { from: 'enqueued_for_orchestration', event: 'fail', to: 'error' },

  { from: 'enqueued_as_error_for_orchestration', event: 'complete', to: 'complete' },
  { from: 'enqueued_as_error_for_orchestration', event: 'fail', to: 'error' },
  { from: 'enqueued_as_error_for_orchestration', event: 'wait_for_retry', to: 'waiting_for_retry' },

  { from: 'waiting_for_retry', event: 'retry', to: 'pending' }, // enqueuer, right before re-enqueueing

  { from: 'error', event: 'retry', to: 'pending' },
  { from: 'error', event: 'reset_for_retry', to: 'pending' }, // operator; the caller sets attempts = 0

  // Cancel, from every state that is not terminal (error included).
  { from: 'pending', event: 'cancel', to: 'cancelled' },
  { from: 'enqueued', event: 'cancel', to: 'cancelled' },
  { from: 'in_progress', event: 'cancel', to: 'cancelled' },
  { from: 'enqueued_for_orchestration', event: 'cancel', to: 'cancelled' },
  { from: 'enqueued_as_error_for_orchestration', event: 'cancel', to: 'cancelled' },
  { from: 'waiting_for_retry', event: 'cancel', to: 'cancelled' },
  { from: 'error', event: 'cancel', to: 'cancelled' },

  // Operator manual completion, from ANY state (even complete or cancelled).
  { from: 'pending', event: 'complete_manually', to: 'complete' },
  { from: 'enqueued', event: 'complete_manually', to: 'complete' },
  { from: 'in_progress', event: 'complete_manually', to: 'complete' },
  { from: 'enqueued_for_orchestration', event: 'complete_manually', to: 'complete' },
  { from: 'enqueued_as_error_for_orchestration', event: 'complete_manually', to: 'complete' },
  { from: 'waiting_for_retry', event: 'complete_manually', to: 'complete' },
  { from: 'complete', event: 'complete_manually', to: 'complete' },
  { from: 'error', event: 'complete_manually', to: 'complete' },
  { from: 'cancelled', event: 'complete_manually', to: 'complete' },
  { from: 'resolved_manually', event: 'complete_manually', to: 'complete' },

  // Operator manual resolution, from ANY state.
  { from: 'pending', event: 'resolve_manually', to: 'resolved_manually' },
  { from: 'enqueued', event: 'resolve_manually', to: 'resolved_manually' },
  { from: 'in_progress', event: 'resolve_manually', to: 'resolved_manually' },
  { from: 'enqueued_for_orchestration', event: 'resolve_manually', to: 'resolved_manually' },
  { from: 'enqueued_as_error_for_orchestration', event: 'resolve_manually', to: 'resolved_manually' },
  { from: 'waiting_for_retry', event: 'resolve_manually', to: 'resolved_manually' },
  { from: 'complete', event: 'resolve_manually', to: 'resolved_manually' },
  { from: 'error', event: 'resolve_manually', to: 'resolved_manually' },
  { from: 'cancelled', event: 'resolve_manually', to: 'resolved_manually' },
  { from: 'resolved_manually', event: 'resolve_manually', to: 'resolved_manually' },
] satisfies StepTransitionRule[]);

// ---------------------------------------------------------------------------------------------------
// Lifecycle event names (A §4.5)
// ---------------------------------------------------------------------------------------------------

export const TASK_LIFECYCLE_EVENTS = [
  'task.initialize_requested',
  'task.steps_discovery_completed',
  'task.steps_enqueued',
  'task.step_results_received',
  'task.awaiting_dependencies',
  'task.dependencies_satisfied',
  'task.retry_backoff_started',
  'task.blocked_by_failures',
  'task.completed',
  'task.failed',
  'task.cancelled',
  'task.resolved_manually',
  'task.retry_requested',
] as const;
export type TaskLifecycleEvent = (typeof TASK_LIFECYCLE_EVENTS)[number];

export const STEP_LIFECYCLE_EVENTS = [
  'step.enqueue_requested',
  'step.execution_requested',
  'step.handle',
  'step.enqueued_for_orchestration',
  'step.enqueued_as_error_for_orchestration',
  'step.retry_requested',
  'step.completed',
  'step.failed',
  'step.cancelled',
  'step.resolved_manually',
] as const;
export type StepLifecycleEvent = (typeof STEP_LIFECYCLE_EVENTS)[number];

/** The event a task transition publishes, keyed by the pair of states; `null`: none. */
export function taskLifecycleEvent(from: TaskState | null, to: TaskState): TaskLifecycleEvent | null {
  if (from === 'pending' && to === 'initializing') return 'task.initialize_requested';
  if (from === 'initializing' && to === 'enqueuing_steps') return 'task.steps_discovery_completed';
  if (from === 'enqueuing_steps' && to === 'steps_in_process') return 'task.steps_enqueued';
  if (from === 'steps_in_process' && to === 'evaluating_results') return 'task.step_results_received';
  if (from === 'waiting_for_dependencies' && to === 'evaluating_results')
    return 'task.dependencies_satisfied';
  if ((from === 'error' || from === 'waiting_for_retry') && to === 'pending') return 'task.retry_requested';
  switch (to) {
    case 'waiting_for_dependencies':
      return 'task.awaiting_dependencies';
    case 'waiting_for_retry':
      return 'task.retry_backoff_started';
    case 'blocked_by_failures':
      return 'task.blocked_by_failures';
    case 'complete':
      return 'task.completed';
    case 'error':
      return 'task.failed';
    case 'cancelled':
      return 'task.cancelled';
    case 'resolved_manually':
      return 'task.resolved_manually';
    default:
      return null; // e.g. evaluating_results → enqueuing_steps, or creation (null → pending)
  }
}

/** The event a step transition publishes, keyed by the pair of states; `null`: none. */
export function stepLifecycleEvent(from: StepState | null, to: StepState): StepLifecycleEvent | null {
  if (from === 'pending' && to === 'enqueued') return 'step.enqueue_requested';
  if (from === 'enqueued' && to === 'in_progress') return 'step.execution_requested';
  if ((from === 'error' || from === 'waiting_for_retry') && to === 'pending') return 'step.retry_requested';
  switch (to) {
    case 'in_progress':
      return 'step.handle'; // any other → in_progress (the legacy pending claim)
    case 'enqueued_for_orchestration':
      return 'step.enqueued_for_orchestration';
    case 'enqueued_as_error_for_orchestration':
      return 'step.enqueued_as_error_for_orchestration';
    case 'waiting_for_retry':
      return 'step.retry_requested';
    case 'complete':
      return 'step.completed';
    case 'error':
      return 'step.failed';
    case 'cancelled':
      return 'step.cancelled';
    case 'resolved_manually':
      return 'step.resolved_manually';
    default:
      return null; // e.g. creation (null → pending)
  }
}

// ---------------------------------------------------------------------------------------------------
// Deciding a transition
// ---------------------------------------------------------------------------------------------------

export interface TaskDecision {
  readonly to: TaskState;
  readonly lifecycleEvent: TaskLifecycleEvent | null;
}

export interface StepDecision {
  readonly to: StepState;
  readonly lifecycleEvent: StepLifecycleEvent | null;
}

/** What the caller knows about the step when a guarded rule applies. */
export interface StepTransitionContext {
  /** Every parent step is complete or resolved_manually. */
  readonly dependenciesMet: boolean;
}

function ruleKey(from: string | null, event: string): string {
  return `${from ?? ''}/${event}`;
}

const TASK_RULES = new Map<string, TaskTransitionRule>(
  TASK_TRANSITIONS.map((r) => [ruleKey(r.from, r.event), r]),
);
const STEP_RULES = new Map<string, StepTransitionRule>(
  STEP_TRANSITIONS.map((r) => [ruleKey(r.from, r.event), r]),
);

/**
 * The target of `event` from `from` (`null`: a task with no transition yet) and the lifecycle event
 * it publishes. Throws InvalidTransitionError when the table has no such rule.
 */
export function decideTaskTransition(from: TaskState | null, event: TaskEvent): TaskDecision {
  if (from !== null && isTaskTerminal(from)) {
    throw new InvalidTransitionError('task', from, event, 'the task is in a terminal state');
  }
  const rule = TASK_RULES.get(ruleKey(from, event));
  if (rule === undefined) throw new InvalidTransitionError('task', from, event);
  return { to: rule.to, lifecycleEvent: taskLifecycleEvent(from, rule.to) };
}

/**
 * The target of `event` from `from` (`null`: a step with no transition yet) and the lifecycle event
 * it publishes. Throws InvalidTransitionError when the table has no such rule or its guard fails.
 * A guarded rule (pending → enqueued / in_progress) needs `context`; without it the call is a
 * programming error (TaskerError GUARD_CONTEXT_MISSING), never a silent pass.
 */
export function decideStepTransition(
  from: StepState | null,
  event: StepEvent,
  context?: StepTransitionContext,
): StepDecision {
  const rule = STEP_RULES.get(ruleKey(from, event));
  if (rule === undefined) throw new InvalidTransitionError('step', from, event);
  if (rule.guard === 'dependencies_met') {
    if (context === undefined) {
      throw new TaskerError(
        'GUARD_CONTEXT_MISSING',
        `step event ${event} from ${from ?? '(none)'} needs the dependency check (dependenciesMet)`,
      );
    }
    if (!context.dependenciesMet) {
      throw new InvalidTransitionError('step', from, event, 'its dependencies are not met');
    }
  }
  return { to: rule.to, lifecycleEvent: stepLifecycleEvent(from, rule.to) };
}

// ---------------------------------------------------------------------------------------------------
// Allowed (from, to) pairs, for the SQL compare-and-swap
// ---------------------------------------------------------------------------------------------------

export interface TaskTransitionPair {
  readonly from: TaskState | null;
  readonly to: TaskState;
}

export interface StepTransitionPair {
  readonly from: StepState | null;
  readonly to: StepState;
}

function distinctPairs<S extends string>(
  rules: readonly { readonly from: S | null; readonly to: S }[],
): { from: S | null; to: S }[] {
  const seen = new Set<string>();
  const pairs: { from: S | null; to: S }[] = [];
  for (const { from, to } of rules) {
    const key = `${from ?? ''}/${to}`;
    if (seen.has(key)) continue;
    seen.add(key);
    pairs.push({ from, to });
  }
  return pairs;
}

/** The distinct (from, to) pairs of TASK_TRANSITIONS, in table order (creation pair included). */
export function taskTransitionPairs(): TaskTransitionPair[] {
  return distinctPairs(TASK_TRANSITIONS);
}

/** The distinct (from, to) pairs of STEP_TRANSITIONS, in table order (creation pair included). */
export function stepTransitionPairs(): StepTransitionPair[] {
  return distinctPairs(STEP_TRANSITIONS);
}
