/**
 * The creation answer (`POST /v1/tasks`) without reading the task back. When a task was created and
 * started in one pass (`create_and_start_task(s)`, 0010: its steps without parents enqueued, every
 * other step pending behind them), its TaskResponse follows from what creation wrote and returned:
 * no step has run, failed or completed. The readiness and execution-context rules below are those
 * of `step_readiness_rows` and `task_execution_context_rows` (0003) applied to that state, and a
 * test holds this answer equal to `GET /v1/tasks/{uuid}` for every example template. Any other
 * creation (the general path) returns undefined and the route reads the task.
 */
import type { CreatedTask } from '@tasker/core';

const RECOMMENDED_ACTION: Record<string, string> = {
  blocked_by_failures: 'handle_failures',
  has_ready_steps: 'execute_ready_steps',
  processing: 'wait_for_completion',
  all_complete: 'finalize_task',
  waiting_for_dependencies: 'wait_for_dependencies',
};

export function startedTaskResponse(created: CreatedTask): Record<string, unknown> | undefined {
  const { evaluation, record } = created;
  const started = evaluation?.created;
  if (evaluation?.state === undefined || started === undefined) return undefined;
  const specs = new Map(record.steps.map((step) => [step.name, step]));
  const steps: Record<string, unknown>[] = [];
  for (const step of started.steps) {
    const spec = specs.get(step.name);
    if (spec === undefined) return undefined;
    // no parent has completed yet, and no step has had an attempt
    const dependenciesSatisfied = spec.parents === 0;
    steps.push({
      workflow_step_uuid: step.workflow_step_uuid,
      task_uuid: created.taskUuid,
      named_step_uuid: step.named_step_uuid,
      name: step.name,
      current_state: step.current_state,
      dependencies_satisfied: dependenciesSatisfied,
      retry_eligible: true,
      ready_for_execution: step.current_state === 'pending' && dependenciesSatisfied,
      last_failure_at: null,
      next_retry_at: null,
      total_parents: spec.parents,
      completed_parents: 0,
      attempts: 0,
      max_attempts: spec.max_attempts,
      backoff_request_seconds: null,
      last_attempted_at: null,
    });
  }
  const count = (predicate: (step: Record<string, unknown>) => boolean) => steps.filter(predicate).length;
  const ready = count((step) => step.ready_for_execution === true);
  const enqueued = count((step) => step.current_state === 'enqueued');
  const executionStatus =
    ready > 0 ? 'has_ready_steps' : enqueued > 0 ? 'processing' : 'waiting_for_dependencies';
  return {
    task_uuid: created.taskUuid,
    name: record.name,
    namespace: record.namespace,
    version: record.version,
    status: evaluation.state,
    created_at: started.created_at,
    updated_at: started.updated_at,
    completed_at: null,
    context: record.context,
    initiator: record.initiator,
    source_system: record.source_system,
    reason: record.reason,
    priority: record.priority,
    tags: record.tags,
    correlation_id: created.correlationId,
    parent_correlation_id: record.parent_correlation_id,
    total_steps: steps.length,
    pending_steps: count((step) => step.current_state === 'pending'),
    in_progress_steps: 0,
    completed_steps: 0,
    failed_steps: 0,
    ready_steps: ready,
    execution_status: executionStatus,
    recommended_action: RECOMMENDED_ACTION[executionStatus],
    completion_percentage: 0,
    health_status: 'healthy',
    steps,
  };
}
