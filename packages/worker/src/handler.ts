/**
 * Class-style handlers (reference C §2.1). A handler extends `StepHandler`, sets `static handlerName`
 * (the template's `handler.callable`) and implements `call(ctx)`. Extra methods with the same signature
 * (`validate`, `refund`, …) are selected by the template's `handler.method`.
 */
import type { JsonObject, JsonValue } from '@tasker/core';
import type { StepContext } from './context.ts';
import { type FailureDetails, StepHandlerResult } from './results.ts';

/**
 * What a handler entry point may return (or resolve to): a `StepHandlerResult`, or any other value,
 * which the executor wraps as a success after converting it to JSON (`undefined`/`null` ⇒ `{}`, a
 * non-object ⇒ `{ result: value }`). A value JSON cannot hold (a cycle, a BigInt) becomes a failure.
 */
export type HandlerReturn = unknown;

export abstract class StepHandler<
  Input extends object = JsonObject,
  Deps extends Record<string, unknown> = Record<string, JsonValue>,
> {
  /** Registry key; must equal the template's `handler.callable`. Defaults to the class name. */
  static handlerName: string | undefined;
  static handlerVersion = '1.0.0';

  abstract call(ctx: StepContext<Input, Deps>): HandlerReturn;

  /** The handler's registry name (`static handlerName`, else the class name). */
  get name(): string {
    const ctor = this.constructor as typeof StepHandler;
    return ctor.handlerName ?? ctor.name;
  }

  get version(): string {
    return (this.constructor as typeof StepHandler).handlerVersion;
  }

  protected success(result: JsonValue = {}, metadata?: JsonObject): StepHandlerResult {
    return StepHandlerResult.success(result, metadata);
  }

  /** A declared failure; `retryable` defaults to true (as in the reference SDKs). */
  protected failure(message: string, details: Partial<FailureDetails> = {}): StepHandlerResult {
    return StepHandlerResult.failure(message, { ...details, retryable: details.retryable ?? true });
  }
}

/** A concrete handler class (`new () => handler`) with its static registry name. */
export type StepHandlerClass = (new () => StepHandler) & {
  handlerName: string | undefined;
  handlerVersion: string;
};

/** True for a class that extends `StepHandler`. */
export function isStepHandlerClass(value: unknown): value is StepHandlerClass {
  return typeof value === 'function' && value.prototype instanceof StepHandler;
}

/** An entry point of a handler: `call`, or a user-defined method of its class. */
type EntryPoint = (ctx: StepContext) => HandlerReturn;

/**
 * Finds `method` on `handler`: only methods defined by the handler's own classes (below `StepHandler`)
 * or own function properties, never `constructor`, the SDK helpers or `Object.prototype` members.
 */
export function findEntryPoint(handler: StepHandler, method: string): EntryPoint | undefined {
  if (method === 'constructor') return undefined;
  let found: unknown;
  if (Object.hasOwn(handler, method)) {
    found = Reflect.get(handler, method);
  } else {
    for (
      let proto: unknown = Object.getPrototypeOf(handler);
      typeof proto === 'object' && proto !== null && proto !== StepHandler.prototype;
      proto = Object.getPrototypeOf(proto)
    ) {
      if (Object.hasOwn(proto, method)) {
        found = Reflect.get(proto, method);
        break;
      }
    }
  }
  if (typeof found !== 'function') return undefined;
  const fn = found;
  return (ctx) => Reflect.apply(fn, handler, [ctx]);
}
