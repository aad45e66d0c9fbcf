/**
 * The example step handlers of the acceptance workflows #1–#30 (reference C §6; templates in
 * `examples/templates`), keyed by the templates' `handler.callable`, plus the test-support
 * `TestSupport.StepHandlers.SleepHandler`.
 *
 * `registerExampleHandlers(registry)` registers them all; `registry.loadDirectory('examples/handlers')`
 * finds the same handlers (every module exports its handler classes).
 */
import {
  type HandlerEntry,
  type HandlerRegistry,
  type HandlerResolver,
  StepHandler,
  type StepHandlerClass,
} from '@tasker/worker';
import * as checkpoint from './checkpoint.ts';
import * as combined from './combined.ts';
import * as conditionalApproval from './conditional-approval.ts';
import * as csvProcessing from './csv-processing.ts';
import * as customerSuccess from './customer-success.ts';
import * as dataPipeline from './data-pipeline.ts';
import * as dataProcessing from './data-processing.ts';
import * as domainEvents from './domain-events.ts';
import * as ecommerce from './ecommerce.ts';
import * as math from './math.ts';
import * as microservices from './microservices.ts';
import * as orderFulfillment from './order-fulfillment.ts';
import * as payments from './payments.ts';
import * as resolverTests from './resolver-tests.ts';
import * as testScenarios from './test-scenarios.ts';

const MODULES: ReadonlyArray<Record<string, unknown>> = [
  math,
  orderFulfillment,
  ecommerce,
  dataPipeline,
  microservices,
  payments,
  customerSuccess,
  testScenarios,
  resolverTests,
  conditionalApproval,
  dataProcessing,
  checkpoint,
  csvProcessing,
  combined,
  domainEvents,
];

function isHandlerClass(value: unknown): value is StepHandlerClass {
  return typeof value === 'function' && value.prototype instanceof StepHandler;
}

/** Every exported handler class by its `handlerName`; a missing or repeated name is a bug here. */
function collect(modules: ReadonlyArray<Record<string, unknown>>): Record<string, HandlerEntry> {
  const entries: Record<string, HandlerEntry> = {};
  for (const module of modules) {
    for (const [exportName, value] of Object.entries(module)) {
      if (!isHandlerClass(value)) continue;
      const name = value.handlerName;
      if (name === undefined) throw new Error(`example handler ${exportName} has no handlerName`);
      if (Object.hasOwn(entries, name)) throw new Error(`example handler name ${name} is used twice`);
      entries[name] = value;
    }
  }
  return entries;
}

/** Template callable → handler class. */
export const exampleHandlers: Record<string, HandlerEntry> = collect(MODULES);

/**
 * Custom resolvers the templates name. None so far: #22's hints name the built-in `explicit_mapping`
 * resolver. Kept so a worker wires examples the same way whatever they need.
 */
export const exampleResolvers: HandlerResolver[] = [];

export function registerExampleHandlers(registry: HandlerRegistry): void {
  for (const [name, entry] of Object.entries(exampleHandlers)) registry.register(name, entry);
  for (const resolver of exampleResolvers) registry.addResolver(resolver);
}
