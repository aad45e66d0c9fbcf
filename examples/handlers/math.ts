/**
 * Arithmetic DAG shapes (reference C §6.1, §6.2):
 * - #1 `linear_workflow_ts/mathematical_sequence_ts` (`LinearWorkflow.*`): n² → +10 → ×3 → ÷2
 *   (10 ⇒ 100 → 110 → 330 → 165);
 * - #2 `diamond_workflow_ts/parallel_computation_ts` (`DiamondWorkflow.*`): n², b = n² + 25, c = 2n²,
 *   end = (b + c) / 2 (4 ⇒ 16, 41, 32, 36.5);
 * - #3 `rust_e2e_tree/hierarchical_tree` (`TreeWorkflow.*`): every step squares its parent; the
 *   convergence multiplies the four leaves and squares (n⁶⁴);
 * - #4 `rust_e2e_mixed_dag/complex_dag` (`MixedDagWorkflow.*`): squares, `validate` = (left × right)²,
 *   `finalize` = (validate × transform × analyze)² (n⁶⁴);
 * - #19 `rust_e2e_linear/mathematical_sequence` (`MathematicalSequence.*`): four squarings (n¹⁶).
 *
 * The first step of each rejects a missing, non-integer or odd `even_number` with a permanent
 * `validation_error`. #3, #4 and #19 grow past 2⁵³, where JSON numbers (doubles) stop being exact, so
 * they compute with BigInt and store `result` as a number while it is a safe integer and as a decimal
 * string beyond that; readers accept both.
 */
import type { JsonValue } from '@tasker/core';
import { defineHandler, type StepContext, StepHandler, type StepHandlerClass } from '@tasker/worker';
import { configNumber, invalid, isObject, requireNumber } from './support.ts';

/** The task's `even_number`, checked (the reference rejects odd input as non-retryable). */
function evenNumber(ctx: StepContext): number {
  const value = ctx.getInput('even_number');
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw invalid('even_number must be an integer', { field: 'even_number', input: value });
  }
  if (value % 2 !== 0) throw invalid(`even_number must be even, got ${value}`, { input: value });
  return value;
}

function dependencyNumber(ctx: StepContext, step: string, field: string): number {
  return requireNumber(ctx.getDependencyField(step, field), `${step}.${field}`);
}

// ---------------------------------------------------------------------------------------------------
// #1 linear: class-style, one class per step; the constants come from `handler.initialization`.

export class LinearStep1Handler extends StepHandler {
  static override handlerName = 'LinearWorkflow.StepHandlers.LinearStep1Handler';

  call(ctx: StepContext) {
    const n = evenNumber(ctx);
    return { squared_value: n * n, operation: 'square', input: n };
  }
}

export class LinearStep2Handler extends StepHandler {
  static override handlerName = 'LinearWorkflow.StepHandlers.LinearStep2Handler';

  call(ctx: StepContext) {
    const input = dependencyNumber(ctx, 'linear_step_1', 'squared_value');
    const constant = configNumber(ctx.getConfig('constant'), 10);
    return { added_value: input + constant, operation: 'add', constant, input };
  }
}

export class LinearStep3Handler extends StepHandler {
  static override handlerName = 'LinearWorkflow.StepHandlers.LinearStep3Handler';

  call(ctx: StepContext) {
    const input = dependencyNumber(ctx, 'linear_step_2', 'added_value');
    const factor = configNumber(ctx.getConfig('factor'), 3);
    return { multiplied_value: input * factor, operation: 'multiply', factor, input };
  }
}

export class LinearStep4Handler extends StepHandler {
  static override handlerName = 'LinearWorkflow.StepHandlers.LinearStep4Handler';

  call(ctx: StepContext) {
    const input = dependencyNumber(ctx, 'linear_step_3', 'multiplied_value');
    const divisor = configNumber(ctx.getConfig('divisor'), 2);
    if (divisor === 0) throw invalid('divisor must not be 0', { field: 'divisor' });
    return { final_value: input / divisor, operation: 'divide', divisor, input };
  }
}

// ---------------------------------------------------------------------------------------------------
// #2 diamond: functional style, dependency results injected by `depends`.

export const DiamondStartHandler = defineHandler(
  'DiamondWorkflow.StepHandlers.DiamondStartHandler',
  {},
  ({ context }) => {
    const n = evenNumber(context);
    return { squared_value: n * n, operation: 'square', input: n };
  },
);

export const DiamondBranchBHandler = defineHandler(
  'DiamondWorkflow.StepHandlers.DiamondBranchBHandler',
  { depends: { start: 'diamond_start_ts' } },
  ({ start, context }) => {
    const input = requireNumber(isObject(start) ? start.squared_value : undefined, 'squared_value');
    const constant = configNumber(context.getConfig('constant'), 25);
    return { branch_b_value: input + constant, operation: 'add', constant, input };
  },
);

export const DiamondBranchCHandler = defineHandler(
  'DiamondWorkflow.StepHandlers.DiamondBranchCHandler',
  { depends: { start: 'diamond_start_ts' } },
  ({ start, context }) => {
    const input = requireNumber(isObject(start) ? start.squared_value : undefined, 'squared_value');
    const factor = configNumber(context.getConfig('factor'), 2);
    return { branch_c_value: input * factor, operation: 'multiply', factor, input };
  },
);

export const DiamondEndHandler = defineHandler(
  'DiamondWorkflow.StepHandlers.DiamondEndHandler',
  { depends: { b: 'diamond_branch_b_ts', c: 'diamond_branch_c_ts' } },
  ({ b, c }) => {
    const branchB = requireNumber(isObject(b) ? b.branch_b_value : undefined, 'branch_b_value');
    const branchC = requireNumber(isObject(c) ? c.branch_c_value : undefined, 'branch_c_value');
    return {
      final_value: (branchB + branchC) / 2,
      operation: 'average',
      branch_b_value: branchB,
      branch_c_value: branchC,
    };
  },
);

// ---------------------------------------------------------------------------------------------------
// Exact integers for #3, #4 and #19.

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A JSON integer that stays exact: a number while it is safe, a decimal string past 2⁵³. */
function toExactJson(value: bigint): number | string {
  return value <= MAX_SAFE && value >= -MAX_SAFE ? Number(value) : value.toString();
}

/** Reads what `toExactJson` wrote. */
function fromExactJson(value: JsonValue | undefined, field: string): bigint {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value);
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value);
  throw invalid(`${field} must be an exact integer`, { field });
}

function dependencyResult(ctx: StepContext, step: string): bigint {
  return fromExactJson(ctx.getDependencyField(step, 'result'), `${step}.result`);
}

/** A root step: squares the task's `even_number`. */
function squareRoot(name: string): StepHandlerClass {
  return defineHandler(name, {}, ({ context }) => {
    const n = evenNumber(context);
    return { result: toExactJson(BigInt(n) * BigInt(n)), operation: 'square', input: n };
  });
}

/** A single-parent step: squares `parent`'s result. */
function squareOf(name: string, parent: string): StepHandlerClass {
  return defineHandler(name, {}, ({ context }) => {
    const input = dependencyResult(context, parent);
    return { result: toExactJson(input * input), operation: 'square', input: toExactJson(input) };
  });
}

/** A convergence step: multiplies the parents' results, then squares the product. */
function multiplyAndSquare(name: string, parents: readonly string[], operation: string): StepHandlerClass {
  return defineHandler(name, {}, ({ context }) => {
    const product = parents.reduce((acc, parent) => acc * dependencyResult(context, parent), 1n);
    return { result: toExactJson(product * product), operation, multiplied: toExactJson(product) };
  });
}

// #3 tree
export const TreeRootHandler = squareRoot('TreeWorkflow.StepHandlers.TreeRootHandler');
export const TreeBranchLeftHandler = squareOf('TreeWorkflow.StepHandlers.TreeBranchLeftHandler', 'tree_root');
export const TreeBranchRightHandler = squareOf(
  'TreeWorkflow.StepHandlers.TreeBranchRightHandler',
  'tree_root',
);
export const TreeLeafDHandler = squareOf('TreeWorkflow.StepHandlers.TreeLeafDHandler', 'tree_branch_left');
export const TreeLeafEHandler = squareOf('TreeWorkflow.StepHandlers.TreeLeafEHandler', 'tree_branch_left');
export const TreeLeafFHandler = squareOf('TreeWorkflow.StepHandlers.TreeLeafFHandler', 'tree_branch_right');
export const TreeLeafGHandler = squareOf('TreeWorkflow.StepHandlers.TreeLeafGHandler', 'tree_branch_right');
export const TreeFinalConvergenceHandler = multiplyAndSquare(
  'TreeWorkflow.StepHandlers.TreeFinalConvergenceHandler',
  ['tree_leaf_d', 'tree_leaf_e', 'tree_leaf_f', 'tree_leaf_g'],
  'multiply_all_and_square',
);

// #4 mixed DAG
export const DagInitHandler = squareRoot('MixedDagWorkflow.StepHandlers.DagInitHandler');
export const DagProcessLeftHandler = squareOf(
  'MixedDagWorkflow.StepHandlers.DagProcessLeftHandler',
  'dag_init',
);
export const DagProcessRightHandler = squareOf(
  'MixedDagWorkflow.StepHandlers.DagProcessRightHandler',
  'dag_init',
);
export const DagValidateHandler = multiplyAndSquare(
  'MixedDagWorkflow.StepHandlers.DagValidateHandler',
  ['dag_process_left', 'dag_process_right'],
  'multiply_and_square',
);
export const DagTransformHandler = squareOf(
  'MixedDagWorkflow.StepHandlers.DagTransformHandler',
  'dag_process_left',
);
export const DagAnalyzeHandler = squareOf(
  'MixedDagWorkflow.StepHandlers.DagAnalyzeHandler',
  'dag_process_right',
);
export const DagFinalizeHandler = multiplyAndSquare(
  'MixedDagWorkflow.StepHandlers.DagFinalizeHandler',
  ['dag_validate', 'dag_transform', 'dag_analyze'],
  'multiply_three_and_square',
);

// #19 linear (Rust fixture): four squarings
export const MathSequenceStep1Handler = squareRoot('MathematicalSequence.StepHandlers.LinearStep1Handler');
export const MathSequenceStep2Handler = squareOf(
  'MathematicalSequence.StepHandlers.LinearStep2Handler',
  'linear_step_1',
);
export const MathSequenceStep3Handler = squareOf(
  'MathematicalSequence.StepHandlers.LinearStep3Handler',
  'linear_step_2',
);
export const MathSequenceStep4Handler = squareOf(
  'MathematicalSequence.StepHandlers.LinearStep4Handler',
  'linear_step_3',
);
