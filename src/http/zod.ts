import type { FastifySchemaCompiler, FastifyTypeProvider } from 'fastify';
import { z } from 'zod';
import { InputError } from '../errors.js';

/**
 * Route schemas are zod schemas (STYLE.md habit 4): this compiler validates a request part with one, and the type
 * provider gives handlers the parsed types. A failure becomes an `InputError` naming the field at fault.
 */
export interface ZodTypeProvider extends FastifyTypeProvider {
  readonly validator: this['schema'] extends z.ZodType ? z.output<this['schema']> : unknown;
  readonly serializer: this['schema'] extends z.ZodType ? z.input<this['schema']> : unknown;
}

export const zodValidatorCompiler: FastifySchemaCompiler<z.ZodType> = ({ schema, httpPart }) => {
  return (data: unknown) => {
    const result = schema.safeParse(data);
    if (result.success) return { value: result.data };
    return { error: inputErrorOf(result.error, httpPart === 'querystring' ? 'query' : (httpPart ?? 'body')) };
  };
};

/** The first issue decides: its top-level key is the field (or the whole part, for a body that is no object). */
export function inputErrorOf(error: z.ZodError, part: string): InputError {
  const issue = error.issues[0];
  const key = issue?.path[0];
  const field = typeof key === 'string' ? key : part;
  return new InputError(issue?.message ?? `${field} is invalid`, { field, cause: error });
}
