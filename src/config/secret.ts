/**
 * A secret value read from the environment or a file. It never serializes: JSON, pino and string conversion all
 * see "[redacted]", so a secret cannot reach a log or a response body by accident. Only `reveal()` gives it out.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toJSON(): string {
    return '[redacted]';
  }

  toString(): string {
    return '[redacted]';
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'Secret([redacted])';
  }
}
