/**
 * #23 `conditional_approval_ts/approval_routing_ts` (reference C §6.4, §4.1, §4.2;
 * `ConditionalApproval.*`): validate_request_ts → routing_decision_ts (decision) → the approvals it
 * chooses → finalize_approval_ts (deferred convergence over whichever approvals exist).
 *
 * Routing by amount against the decision's `thresholds` (`handler.initialization`, default small 1000,
 * large 5000): amount < small ⇒ auto_approve_ts; small ≤ amount < large ⇒ manager_approval_ts;
 * amount ≥ large ⇒ manager_approval_ts + finance_review_ts. Functional handlers.
 */
import type { JsonObject } from '@tasker/core';
import { Decision, defineDecisionHandler, defineHandler, type StepContext } from '@tasker/worker';
import { configNumber, invalid, isObject, requireNumber, requireString } from './support.ts';

const AUTO = 'auto_approve_ts';
const MANAGER = 'manager_approval_ts';
const FINANCE = 'finance_review_ts';
const APPROVAL_STEPS = [AUTO, MANAGER, FINANCE] as const;

function amountOf(ctx: StepContext): number {
  const amount = requireNumber(ctx.getInput('amount'), 'amount');
  if (amount <= 0) throw invalid(`amount must be positive, got ${amount}`, { field: 'amount' });
  return amount;
}

export const ValidateRequestHandler = defineHandler(
  'ConditionalApproval.StepHandlers.ValidateRequestHandler',
  { inputs: { requester: 'requester', purpose: 'purpose' } },
  ({ requester, purpose, context }) => ({
    validated: true,
    amount: amountOf(context),
    requester: requireString(requester, 'requester'),
    purpose: requireString(purpose, 'purpose'),
  }),
);

/** The approval steps for `amount`: the tiers are half-open, a threshold itself is the higher tier. */
function approvalRoute(amount: number, small: number, large: number): string[] {
  if (amount < small) return [AUTO];
  if (amount < large) return [MANAGER];
  return [MANAGER, FINANCE];
}

export const RoutingDecisionHandler = defineDecisionHandler(
  'ConditionalApproval.StepHandlers.RoutingDecisionHandler',
  { depends: { request: 'validate_request_ts' } },
  ({ request, context }) => {
    const amount = requireNumber(
      isObject(request) ? request.amount : undefined,
      'validate_request_ts.amount',
    );
    const thresholds = context.getConfig('thresholds');
    const small = configNumber(isObject(thresholds) ? thresholds.small : undefined, 1000);
    const large = configNumber(isObject(thresholds) ? thresholds.large : undefined, 5000);
    const steps = approvalRoute(amount, small, large);
    return Decision.route(steps, {
      routing_context: { amount, thresholds: { small, large }, approval_steps: steps },
    });
  },
);

function approval(type: string, approver: string) {
  return ({ context }: { context: StepContext }): JsonObject => ({
    approved: true,
    approval_type: type,
    approver,
    amount: amountOf(context),
  });
}

export const AutoApproveHandler = defineHandler(
  'ConditionalApproval.StepHandlers.AutoApproveHandler',
  {},
  approval('automatic', 'system'),
);

export const ManagerApprovalHandler = defineHandler(
  'ConditionalApproval.StepHandlers.ManagerApprovalHandler',
  {},
  approval('manager', 'manager'),
);

export const FinanceReviewHandler = defineHandler(
  'ConditionalApproval.StepHandlers.FinanceReviewHandler',
  {},
  approval('finance', 'finance'),
);

/** Every approval step that ran must have approved; the chain lists them in routing order. */
export const FinalizeApprovalHandler = defineHandler(
  'ConditionalApproval.StepHandlers.FinalizeApprovalHandler',
  {},
  ({ context }) => {
    const chain = APPROVAL_STEPS.filter((name) => context.getDependencyResult(name) !== undefined);
    if (chain.length === 0) throw invalid('no approval step ran before finalize_approval_ts');
    const approved = chain.every((name) => context.getDependencyField(name, 'approved') === true);
    return {
      approved,
      status: approved ? 'approved' : 'rejected',
      approval_chain: chain,
      amount: amountOf(context),
    };
  },
);
