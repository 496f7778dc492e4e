// Compiled by pkg/build.test.ts with the release's build options: prints what a compiled
// executable sees of its working directory's .env and bunfig.toml. Never imported by the product.
const seen = globalThis as { qstoraProbePreloaded?: boolean };
console.log(JSON.stringify({ fromDotenv: process.env.QSTORA_PROBE ?? null, preloaded: seen.qstoraProbePreloaded === true }));
