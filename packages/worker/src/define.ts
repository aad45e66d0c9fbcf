/**
 * Functional handlers (reference C §2.4): `defineHandler(name, { depends, inputs }, fn)` returns a
 * `StepHandler` class whose `call` injects the named dependency results (unwrapped) and task inputs
 * into `fn`'s argument, next to `context`. The value `fn` returns is wrapped by the executor: a plain
 * value ⇒ success, a `StepHandlerResult` passes through, a throw ⇒ a classified failure.
 */
import { type JsonValue, ValidationError } from '@tasker/core';
import type { StepContext } from './context.ts';
import { type HandlerReturn, StepHandler, type StepHandlerClass } from './handler.ts';

export interface DefineHandlerOptions<D extends Record<string, string>, I extends Record<string, string>> {
  /** Argument name → ancestor step name whose `result` is injected (undefined when absent). */
  depends?: D;
  /** Argument name → task input key injected (undefined when absent). */
  inputs?: I;
  version?: string;
}

/** What a functional handler receives. */
export type HandlerArgs<D extends Record<string, string>, I extends Record<string, string>> = {
  [K in keyof D]: JsonValue | undefined;
} & { [K in keyof I]: JsonValue | undefined } & { context: StepContext };

export function defineHandler<
  D extends Record<string, string> = Record<never, string>,
  I extends Record<string, string> = Record<never, string>,
>(
  name: string,
  options: DefineHandlerOptions<D, I>,
  fn: (args: HandlerArgs<D, I>) => HandlerReturn,
): StepHandlerClass {
  const depends: Record<string, string> = options.depends ?? {};
  const inputs: Record<string, string> = options.inputs ?? {};
  const issues = [];
  if (name.trim() === '') issues.push({ field: 'name', message: 'must not be empty' });
  for (const param of [...Object.keys(depends), ...Object.keys(inputs)]) {
    if (param === 'context')
      issues.push({ field: param, message: '"context" is reserved for the step context' });
  }
  for (const param of Object.keys(depends)) {
    if (Object.hasOwn(inputs, param))
      issues.push({ field: param, message: 'named in both depends and inputs' });
  }
  if (issues.length > 0) throw new ValidationError(issues);

  const defined = class extends StepHandler {
    static override handlerName: string | undefined = name;
    static override handlerVersion = options.version ?? '1.0.0';

    call(context: StepContext): HandlerReturn {
      const args: Record<string, unknown> = { context };
      for (const [param, stepName] of Object.entries(depends))
        args[param] = context.getDependencyResult(stepName);
      for (const [param, key] of Object.entries(inputs)) args[param] = context.inputData[key];
      return fn(args as HandlerArgs<D, I>);
    }
  };
  Object.defineProperty(defined, 'name', { value: name });
  return defined;
}
