/**
 * `@tasker/worker`: the step handler SDK — handlers (class and functional), the step context, results,
 * errors and their classification, the handler registry and resolvers, and `executeHandler` — and the
 * worker runtime (`TaskerWorker`) that claims steps from the namespace queues and runs them, and
 * domain events (the in-process bus, the publisher, the durable queue's consumer).
 */
export {
  aggregateBatchResults,
  type BatchAggregation,
  type BatchAnalyzerOptions,
  type BatchCursorConfig,
  type BatchPlan,
  type BatchProcessingOutcome,
  type BatchWorkerContext,
  type BatchWorkerResult,
  batchSuccess,
  createCursorConfigs,
  defineBatchAnalyzer,
  defineBatchWorker,
  getBatchContext,
  NO_OP_BATCH_ID,
  noBatchesResult,
  noOpWorkerResult,
} from './batch.ts';
export {
  CHECKPOINT_ERROR_TYPE,
  CHECKPOINT_LIMIT_ERROR_TYPE,
  CHECKPOINT_YIELD_TYPE,
  type CheckpointYieldData,
  checkpointYield,
  parseCheckpointYield,
} from './checkpoint.ts';
export { type ClaimedStep, parseClaimedStep } from './claim.ts';
export { StepContext, type StepContextData } from './context.ts';
export {
  DECISION_ERROR_TYPE,
  Decision,
  type DecisionFailureOptions,
  type DecisionPointOutcome,
  type DecisionReturn,
  decisionFailure,
  decisionSuccess,
  defineDecisionHandler,
  skipBranches,
} from './decision.ts';
export { type DefineHandlerOptions, defineHandler, type HandlerArgs } from './define.ts';
export {
  classifyError,
  ERROR_TYPES,
  type ErrorClassification,
  HandlerNotFoundError,
  HandlerTimeoutError,
  MissingInputError,
  PermanentError,
  type PermanentErrorOptions,
  RetryableError,
  type RetryableErrorOptions,
} from './errors.ts';
export {
  type CompletedStep,
  type ConsumeDomainEventsOptions,
  compilePayloadSchema,
  conditionMatches,
  consumeDomainEvents,
  type DeliveryPath,
  DOMAIN_EVENT_DEFAULTS,
  DOMAIN_EVENTS_KEY,
  type DomainEvent,
  DomainEventBus,
  type DomainEventBusStats,
  type DomainEventConsumer,
  type DomainEventConsumerStats,
  type DomainEventCounters,
  type DomainEventMetadata,
  type DomainEventMetrics,
  DomainEventPublisher,
  type DomainEventPublisherOptions,
  type DomainEventSubscriber,
  domainEventQueueName,
  type EventDeclarationInput,
  eventDeclarations,
  eventPayload,
  matchesEventPattern,
  uuidv7,
} from './events.ts';
export { type ExecutableStep, type ExecuteOptions, executeHandler } from './execute.ts';
export { type HandlerReturn, StepHandler, type StepHandlerClass } from './handler.ts';
export {
  type HandlerEntry,
  HandlerRegistry,
  type HandlerRegistryOptions,
  type HandlerResolver,
  type HandlerSpec,
  parseModuleCallable,
  type ResolvedHandler,
} from './registry.ts';
export {
  BACKOFF_HINT_TYPES,
  type BackoffHint,
  type BackoffHintType,
  type FailureDetails,
  type FailureResultInput,
  failureResult,
  type OrchestrationMetadata,
  parseStepExecutionResult,
  STEP_RESULT_STATUSES,
  type StepExecutionError,
  type StepExecutionMetadata,
  type StepExecutionResult,
  StepHandlerResult,
  type StepResultStatus,
  type SuccessResultInput,
  successResult,
} from './results.ts';
export {
  CLAIM_OUTCOMES,
  CLAIM_SOURCES,
  type ClaimOutcome,
  type ClaimSource,
  INVALID_CLAIM_ERROR_TYPE,
  TaskerWorker,
  type TaskerWorkerOptions,
  WORKER_DEFAULTS,
  WORKER_MODES,
  type WorkerHealth,
  type WorkerMetrics,
  type WorkerMode,
  type WorkerState,
  WorkerStateError,
} from './runtime.ts';
