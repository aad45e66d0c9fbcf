/**
 * The payments team's refund (reference C §6.1; `Payments.*`): #9 `payments_ts/payments_process_refund_ts`
 * and the first half of #11, `payments/process_refund` (same handlers, another namespace).
 * validate_payment_eligibility → process_gateway_refund → update_payment_records → notify_customer.
 * Functional handlers.
 *
 * Test payment ids of the reference's mock gateway: `pay_test_insufficient` and `pay_test_ineligible`
 * fail permanently, `pay_test_processing` retryably (the payment has not settled yet),
 * `pay_test_gateway_error` fails the gateway call retryably.
 */
import { defineHandler, PermanentError, RetryableError } from '@tasker/worker';
import {
  deterministicId,
  invalid,
  isObject,
  requireNumber,
  requireObject,
  requireString,
} from './support.ts';

const PAYMENT_ID = /^pay_[A-Za-z0-9_]+$/;

export const ValidatePaymentEligibilityHandler = defineHandler(
  'Payments.StepHandlers.ValidatePaymentEligibilityHandler',
  {
    inputs: {
      paymentId: 'payment_id',
      refundAmount: 'refund_amount',
      refundReason: 'refund_reason',
      partialRefund: 'partial_refund',
    },
  },
  ({ paymentId, refundAmount, refundReason, partialRefund }) => {
    const payment = requireString(paymentId, 'payment_id');
    const amount = requireNumber(refundAmount, 'refund_amount');
    if (amount <= 0)
      throw invalid(`refund_amount must be positive, got ${amount}`, { field: 'refund_amount' });
    if (!PAYMENT_ID.test(payment)) throw invalid(`invalid payment id "${payment}"`, { field: 'payment_id' });
    if (payment.includes('pay_test_insufficient')) {
      throw new PermanentError('insufficient funds available for the refund', {
        errorCode: 'INSUFFICIENT_FUNDS',
      });
    }
    if (payment.includes('pay_test_ineligible')) {
      throw new PermanentError('payment is past its refund window', { errorCode: 'INELIGIBLE' });
    }
    if (payment.includes('pay_test_processing')) {
      throw new RetryableError('payment is still processing', {
        errorCode: 'PAYMENT_PROCESSING',
        retryAfterSeconds: 5,
      });
    }
    return {
      payment_validated: true,
      payment_id: payment,
      refund_amount: amount,
      refund_reason: typeof refundReason === 'string' ? refundReason : 'not_specified',
      partial_refund: partialRefund === true,
      payment_method: 'credit_card',
      eligibility_status: 'eligible',
      namespace: 'payments',
    };
  },
);

export const ProcessGatewayRefundHandler = defineHandler(
  'Payments.StepHandlers.ProcessGatewayRefundHandler',
  { depends: { validation: 'validate_payment_eligibility' } },
  ({ validation, context }) => {
    const v = requireObject(validation, 'validate_payment_eligibility');
    if (v.payment_validated !== true) throw new PermanentError('payment eligibility was not validated');
    const payment = requireString(v.payment_id, 'payment_id');
    if (payment.includes('pay_test_gateway_error')) {
      throw new RetryableError('payment gateway error', { errorCode: 'GATEWAY_ERROR' });
    }
    return {
      refund_processed: true,
      refund_id: deterministicId('rfnd', context.taskUuid),
      payment_id: payment,
      refund_amount: requireNumber(v.refund_amount, 'refund_amount'),
      gateway_transaction_id: deterministicId('gw', context.taskUuid),
      refund_status: 'processed',
      estimated_arrival_days: 5,
      namespace: 'payments',
    };
  },
);

export const UpdatePaymentRecordsHandler = defineHandler(
  'Payments.StepHandlers.UpdatePaymentRecordsHandler',
  { depends: { refund: 'process_gateway_refund', validation: 'validate_payment_eligibility' } },
  ({ refund, validation, context }) => {
    const r = requireObject(refund, 'process_gateway_refund');
    if (r.refund_processed !== true) throw new PermanentError('the gateway refund was not processed');
    const partial = isObject(validation) && validation.partial_refund === true;
    return {
      records_updated: true,
      payment_id: requireString(r.payment_id, 'payment_id'),
      refund_id: requireString(r.refund_id, 'refund_id'),
      record_id: deterministicId('rec', context.taskUuid),
      payment_status: partial ? 'partially_refunded' : 'refunded',
      refund_status: 'completed',
      namespace: 'payments',
    };
  },
);

export const NotifyCustomerHandler = defineHandler(
  'Payments.StepHandlers.NotifyCustomerHandler',
  { inputs: { customerEmail: 'customer_email' }, depends: { records: 'update_payment_records' } },
  ({ customerEmail, records, context }) => {
    const r = requireObject(records, 'update_payment_records');
    if (r.records_updated !== true) throw new PermanentError('payment records were not updated');
    const refundId = requireString(r.refund_id, 'refund_id');
    // The email is optional in the template (and absent from #11's contexts): no address, no mail.
    if (typeof customerEmail !== 'string' || customerEmail === '') {
      return {
        notification_sent: false,
        reason: 'no_customer_email',
        refund_id: refundId,
        namespace: 'payments',
      };
    }
    return {
      notification_sent: true,
      customer_email: customerEmail,
      message_id: deterministicId('msg', context.taskUuid),
      notification_type: 'refund_confirmation',
      refund_id: refundId,
      refund_amount: context.getDependencyField('validate_payment_eligibility', 'refund_amount') ?? null,
      namespace: 'payments',
    };
  },
);
