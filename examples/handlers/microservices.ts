/**
 * #8 `microservices_ts/user_registration_ts` (reference C §6.1; `Microservices.*`):
 * create_user_account → {setup_billing_profile, initialize_preferences} → send_welcome_sequence →
 * update_user_status. Class-style handlers.
 *
 * Plans: free (no billing), pro (29.99/month, 14-day trial), enterprise (299.99/month, 30-day trial).
 * An invalid email or an unknown plan is a permanent `validation_error`.
 */
import { type StepContext, StepHandler } from '@tasker/worker';
import { deterministicId, invalid, optionalString, requireObject, requireString } from './support.ts';

const PLANS: Record<string, { priceCents: number; trialDays: number; features: string[] }> = {
  free: { priceCents: 0, trialDays: 0, features: ['basic_dashboard'] },
  pro: { priceCents: 2999, trialDays: 14, features: ['basic_dashboard', 'advanced_analytics', 'api_access'] },
  enterprise: {
    priceCents: 29999,
    trialDays: 30,
    features: ['basic_dashboard', 'advanced_analytics', 'api_access', 'sso', 'dedicated_support'],
  },
};

function plan(name: string) {
  const found = PLANS[name];
  if (found === undefined) throw invalid(`unknown plan "${name}"`, { field: 'user_info.plan' });
  return found;
}

export class CreateUserAccountHandler extends StepHandler {
  static override handlerName = 'Microservices.StepHandlers.CreateUserAccountHandler';

  call(ctx: StepContext) {
    const user = requireObject(ctx.getInput('user_info'), 'user_info');
    const email = requireString(user.email, 'user_info.email');
    const name = requireString(user.name, 'user_info.name');
    if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) {
      throw invalid(`"${email}" is not a valid email address`, { field: 'user_info.email' });
    }
    const planName = optionalString(user.plan, 'free');
    plan(planName);
    return {
      user_id: deterministicId('usr', email.toLowerCase()),
      email: email.toLowerCase(),
      name,
      plan: planName,
      source: optionalString(user.source, 'web'),
      status: 'pending_activation',
    };
  }
}

export class SetupBillingProfileHandler extends StepHandler {
  static override handlerName = 'Microservices.StepHandlers.SetupBillingProfileHandler';

  call(ctx: StepContext) {
    const userId = requireString(ctx.getDependencyField('create_user_account', 'user_id'), 'user_id');
    const planName = requireString(ctx.getDependencyField('create_user_account', 'plan'), 'plan');
    const chosen = plan(planName);
    if (chosen.priceCents === 0) {
      return {
        user_id: userId,
        plan: planName,
        billing_required: false,
        billing_id: null,
        status: 'skipped_free_plan',
      };
    }
    return {
      user_id: userId,
      plan: planName,
      billing_required: true,
      billing_id: deterministicId('bill', userId),
      monthly_price: chosen.priceCents / 100,
      currency: 'USD',
      trial_days: chosen.trialDays,
      status: 'active',
    };
  }
}

export class InitializePreferencesHandler extends StepHandler {
  static override handlerName = 'Microservices.StepHandlers.InitializePreferencesHandler';

  call(ctx: StepContext) {
    const userId = requireString(ctx.getDependencyField('create_user_account', 'user_id'), 'user_id');
    const planName = requireString(ctx.getDependencyField('create_user_account', 'plan'), 'plan');
    return {
      user_id: userId,
      preferences_id: deterministicId('pref', userId),
      preferences: {
        email_notifications: true,
        marketing_emails: planName === 'free',
        theme: 'light',
        language: 'en',
        timezone: 'UTC',
      },
      enabled_features: plan(planName).features,
    };
  }
}

export class SendWelcomeSequenceHandler extends StepHandler {
  static override handlerName = 'Microservices.StepHandlers.SendWelcomeSequenceHandler';

  call(ctx: StepContext) {
    const email = requireString(ctx.getDependencyField('create_user_account', 'email'), 'email');
    const billingRequired = ctx.getDependencyField('setup_billing_profile', 'billing_required') === true;
    const preferencesId = requireString(
      ctx.getDependencyField('initialize_preferences', 'preferences_id'),
      'preferences_id',
    );
    // Paid plans also get the billing walkthrough; everyone gets the welcome and the getting-started mail.
    const messages = ['welcome', 'getting_started', ...(billingRequired ? ['billing_setup'] : [])];
    return {
      recipient: email,
      channels: ['email', 'in_app'],
      messages_sent: messages,
      message_count: messages.length,
      preferences_id: preferencesId,
      sequence_id: deterministicId('seq', email),
    };
  }
}

export class UpdateUserStatusHandler extends StepHandler {
  static override handlerName = 'Microservices.StepHandlers.UpdateUserStatusHandler';

  call(ctx: StepContext) {
    const userId = requireString(ctx.getDependencyField('create_user_account', 'user_id'), 'user_id');
    const sent = ctx.getDependencyField('send_welcome_sequence', 'message_count');
    return {
      user_id: userId,
      previous_status: 'pending_activation',
      new_status: 'active',
      registration_complete: true,
      welcome_messages_sent: typeof sent === 'number' ? sent : 0,
    };
  }
}
