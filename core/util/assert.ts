// Assertions for bugs: they stay on in production and crash loudly (house style, errors kind 1).
// Never use these for operating errors (bad input, missing files): those are QstoraError.

export class AssertionError extends Error {
  override name = "AssertionError";
}

export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function unreachable(value: never, message = "unreachable"): never {
  throw new AssertionError(`${message}: ${String(value)}`);
}
