// Reading back JSON that this program wrote but that a crash, an older version or another writer
// may have left otherwise: the caller checks the shape of what comes back.

/** The value of a JSON text, or undefined when the text is not JSON. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
