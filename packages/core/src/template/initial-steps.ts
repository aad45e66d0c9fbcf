/**
 * The initial step set (reference C §3.2): the steps created with the task, and the edges among them.
 * Everything else is created later by orchestration: decision branches when the decision step
 * completes (C §4.1), batch workers and their convergence step when the batchable step completes
 * (C §4.3).
 */
import { type StepDefinition, type StepType, stepsByName, type TaskTemplate } from './model.ts';

/** Edge name for template dependencies (A §1.7: `provides`). */
export const TEMPLATE_EDGE_NAME = 'provides';

export interface TemplateEdge {
  /** The parent (runs first). */
  from: string;
  /** The child (depends on `from`). */
  to: string;
  name: typeof TEMPLATE_EDGE_NAME;
}

/** Step types never created at task creation: worker templates and convergence steps. */
export function isCreatedAtInitialization(type: StepType): boolean {
  return type !== 'batch_worker' && type !== 'deferred_convergence';
}

/**
 * Steps created at task creation, in template order: every step except `batch_worker` templates, `deferred_convergence`
 * steps, and steps that (transitively) depend on a `decision` step. A decision step itself is
 * created. The set is also closed under dependencies: a step whose parent is not created is not
 * created either, so every initial step has all its parents (for a template that passed validation
 * this adds nothing, since such steps are rejected there).
 */
export function initialStepSet(template: Pick<TaskTemplate, 'steps'>): StepDefinition[] {
  const byName = stepsByName(template.steps);
  const memo = new Map<string, boolean>();
  const created = (step: StepDefinition): boolean => {
    const known = memo.get(step.name);
    if (known !== undefined) return known;
    memo.set(step.name, false); // a cycle never qualifies
    const result =
      isCreatedAtInitialization(step.type) &&
      step.dependencies.every((name) => {
        const parent = byName.get(name);
        return parent !== undefined && parent.type !== 'decision' && created(parent);
      });
    memo.set(step.name, result);
    return result;
  };
  return template.steps.filter(created);
}

/** The edges among the initial steps: one per declared dependency, parent → child. */
export function initialStepEdges(template: Pick<TaskTemplate, 'steps'>): TemplateEdge[] {
  return initialStepSet(template).flatMap((step) =>
    step.dependencies.map((from): TemplateEdge => ({ from, to: step.name, name: TEMPLATE_EDGE_NAME })),
  );
}
