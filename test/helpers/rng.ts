// The seeded generator for fuzz and simulation tests lives in core/util/rng.ts (core code uses it
// too); tests import it from here as before.
export { seededRng } from "../../core/util/rng.ts";
