/**
 * The customer success team's refund (reference C §6.1; `CustomerSuccess.*`):
 * #10 `customer_success_ts/customer_success_process_refund_ts` and the second half of #11,
 * `customer_success/process_refund`. validate_refund_request → check_refund_policy →
 * get_manager_approval → execute_refund_workflow → update_ticket_status. Class-style handlers.
 *
 * Policy per customer tier (from the customer id: `vip`/`premium` ⇒ premium, `gold` ⇒ gold, else
 * standard): window 30/60/90 days, approval required for standard only, limit 10 000/50 000/100 000.
 * The purchase is simulated as 30 days old. A request with `requires_approval: true` always needs a
 * manager. Ticket ids drive the simulated failures: `ticket_closed` / `ticket_cancelled` /
 * `ticket_duplicate` / `ticket_denied` are permanent, `ticket_pending` / `ticket_locked` retryable.
 */
import {
  PermanentError,
  RetryableError,
  type StepContext,
  StepHandler,
  type StepHandlerResult,
} from '@tasker/worker';
import { deterministicId, invalid, requireNumber, requireString } from './support.ts';

const POLICIES: Record<string, { windowDays: number; requiresApproval: boolean; maxAmount: number }> = {
  standard: { windowDays: 30, requiresApproval: true, maxAmount: 10_000 },
  gold: { windowDays: 60, requiresApproval: false, maxAmount: 50_000 },
  premium: { windowDays: 90, requiresApproval: false, maxAmount: 100_000 },
};
const SIMULATED_DAYS_SINCE_PURCHASE = 30;

function customerTier(customerId: string): string {
  const id = customerId.toLowerCase();
  if (id.includes('vip') || id.includes('premium')) return 'premium';
  return id.includes('gold') ? 'gold' : 'standard';
}

export class ValidateRefundRequestHandler extends StepHandler {
  static override handlerName = 'CustomerSuccess.StepHandlers.ValidateRefundRequestHandler';

  call(ctx: StepContext) {
    const ticketId = requireString(ctx.getInput('ticket_id'), 'ticket_id');
    const customerId = requireString(ctx.getInput('customer_id'), 'customer_id');
    const amount = requireNumber(ctx.getInput('refund_amount'), 'refund_amount');
    if (amount <= 0)
      throw invalid(`refund_amount must be positive, got ${amount}`, { field: 'refund_amount' });
    for (const state of ['closed', 'cancelled', 'duplicate']) {
      if (ticketId.includes(`ticket_${state}`)) {
        throw new PermanentError(`cannot refund a ${state} ticket`, { errorCode: 'TICKET_STATE' });
      }
    }
    const tier = customerTier(customerId);
    return this.success(
      {
        request_validated: true,
        ticket_id: ticketId,
        customer_id: customerId,
        refund_amount: amount,
        ticket_status: 'open',
        customer_tier: tier,
        days_since_purchase: SIMULATED_DAYS_SINCE_PURCHASE,
        payment_id: deterministicId('pay', ticketId),
        namespace: 'customer_success',
      },
      { operation: 'validate_refund_request', customer_tier: tier },
    );
  }
}

export class CheckRefundPolicyHandler extends StepHandler {
  static override handlerName = 'CustomerSuccess.StepHandlers.CheckRefundPolicyHandler';

  call(ctx: StepContext): StepHandlerResult {
    if (ctx.getDependencyField('validate_refund_request', 'request_validated') !== true) {
      throw new PermanentError('the refund request was not validated');
    }
    const tier = requireString(
      ctx.getDependencyField('validate_refund_request', 'customer_tier'),
      'customer_tier',
    );
    const days = requireNumber(
      ctx.getDependencyField('validate_refund_request', 'days_since_purchase'),
      'days_since_purchase',
    );
    const amount = requireNumber(ctx.getInput('refund_amount'), 'refund_amount');
    const policy = POLICIES[tier] ?? { windowDays: 30, requiresApproval: true, maxAmount: 10_000 };
    if (days > policy.windowDays) {
      return this.failure(`refund requested ${days} days after purchase (window: ${policy.windowDays})`, {
        retryable: false,
        errorCode: 'OUTSIDE_WINDOW',
      });
    }
    if (amount > policy.maxAmount) {
      return this.failure(`refund amount ${amount} exceeds the ${tier} limit ${policy.maxAmount}`, {
        retryable: false,
        errorCode: 'OVER_LIMIT',
      });
    }
    const requiresApproval = policy.requiresApproval || ctx.getInputOr('requires_approval', false) === true;
    return this.success({
      policy_checked: true,
      policy_compliant: true,
      customer_tier: tier,
      refund_window_days: policy.windowDays,
      days_since_purchase: days,
      max_allowed_amount: policy.maxAmount,
      requires_approval: requiresApproval,
      namespace: 'customer_success',
    });
  }
}

export class GetManagerApprovalHandler extends StepHandler {
  static override handlerName = 'CustomerSuccess.StepHandlers.GetManagerApprovalHandler';

  call(ctx: StepContext) {
    if (ctx.getDependencyField('check_refund_policy', 'policy_checked') !== true) {
      throw new PermanentError('the refund policy was not checked');
    }
    const ticketId = requireString(
      ctx.getDependencyField('validate_refund_request', 'ticket_id'),
      'ticket_id',
    );
    if (ctx.getDependencyField('check_refund_policy', 'requires_approval') !== true) {
      return {
        approval_obtained: true,
        approval_required: false,
        auto_approved: true,
        approval_id: null,
        manager_id: null,
        namespace: 'customer_success',
      };
    }
    if (ticketId.includes('ticket_denied')) {
      throw new PermanentError('the manager denied the refund', { errorCode: 'APPROVAL_DENIED' });
    }
    if (ticketId.includes('ticket_pending')) {
      throw new RetryableError('waiting for manager approval', { errorCode: 'APPROVAL_PENDING' });
    }
    return {
      approval_obtained: true,
      approval_required: true,
      auto_approved: false,
      approval_id: deterministicId('appr', ticketId),
      manager_id: 'mgr_1',
      namespace: 'customer_success',
    };
  }
}

export class ExecuteRefundWorkflowHandler extends StepHandler {
  static override handlerName = 'CustomerSuccess.StepHandlers.ExecuteRefundWorkflowHandler';

  call(ctx: StepContext) {
    if (ctx.getDependencyField('get_manager_approval', 'approval_obtained') !== true) {
      throw new PermanentError('the refund was not approved');
    }
    const paymentId = requireString(
      ctx.getDependencyField('validate_refund_request', 'payment_id'),
      'payment_id',
    );
    // The refund itself is the payments team's workflow (#11's other half): this step hands it over.
    return {
      task_delegated: true,
      target_namespace: 'payments',
      target_workflow: 'process_refund',
      delegated_task_id: deterministicId('task', ctx.taskUuid),
      delegated_task_status: 'created',
      payment_id: paymentId,
      refund_amount: requireNumber(ctx.getInput('refund_amount'), 'refund_amount'),
      correlation_id: ctx.correlationId,
      namespace: 'customer_success',
    };
  }
}

export class UpdateTicketStatusHandler extends StepHandler {
  static override handlerName = 'CustomerSuccess.StepHandlers.UpdateTicketStatusHandler';

  call(ctx: StepContext) {
    if (ctx.getDependencyField('execute_refund_workflow', 'task_delegated') !== true) {
      throw new PermanentError('the refund workflow was not started');
    }
    const ticketId = requireString(
      ctx.getDependencyField('validate_refund_request', 'ticket_id'),
      'ticket_id',
    );
    if (ticketId.includes('ticket_locked')) {
      throw new RetryableError('ticket is locked by another agent', { errorCode: 'TICKET_LOCKED' });
    }
    const notes = ctx.getInputOr('agent_notes', '');
    return {
      ticket_updated: true,
      ticket_id: ticketId,
      previous_status: 'in_progress',
      new_status: 'resolved',
      refund_completed: true,
      delegated_task_id: ctx.getDependencyField('execute_refund_workflow', 'delegated_task_id') ?? null,
      agent_notes: typeof notes === 'string' ? notes : '',
      namespace: 'customer_success',
    };
  }
}
