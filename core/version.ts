// The version and build commit. pkg/build.ts sets QSTORA_BUILD_VERSION and QSTORA_BUILD_COMMIT
// with `bun build --define`; from source they fall back to package.json and "source".
import packageJson from "../package.json" with { type: "json" };

declare const QSTORA_BUILD_VERSION: string | undefined;
declare const QSTORA_BUILD_COMMIT: string | undefined;

export const version: string = typeof QSTORA_BUILD_VERSION === "string" ? QSTORA_BUILD_VERSION : packageJson.version;
export const buildCommit: string = typeof QSTORA_BUILD_COMMIT === "string" ? QSTORA_BUILD_COMMIT : "source";
